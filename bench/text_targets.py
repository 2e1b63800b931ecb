"""What the transformer text bench times: genedge's ``TextGenerator`` and two baselines on the
bundle's source folder (a Hugging Face folder: ``config.json``, ``*.safetensors``,
``tokenizer.json``):

- ``transformers`` eager greedy ``generate`` (and ``torch.compile`` of the forward with a
  static cache), the export extra's own code path;
- onnxruntime-genai: its model builder run on the same folder (fp32 and int4, CPU) into a
  scratch folder, then its ``Generator`` loop (``append_tokens``, ``generate_next_token``),
  each token decoded to text by its ``TokenizerStream`` as genedge's ``step`` returns text.

Every target does one thing the same way: ``generate(prompt, n)`` runs greedy decoding
from the same prompt token ids (``Prompt``: genedge encodes its text to exactly these ids) for exactly ``n`` new tokens (no stop at EOS) on the same
number of threads, and returns the new token ids and each token's arrival time (ns since
the call). Prefill is inside the first arrival (time to first token). Heavy packages load
in ``preload``/``open``; a package that is missing is a ``SkipCase`` (a note in the report).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genedge.errors import printable

from .cases import SkipCase, describe, open_kwargs

GENAI_PRECISIONS = ("fp32", "int4")  # the builder's CPU precisions the bench compares with
BUILD_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Prompt:
    """A prompt as text and as the ids the bundle's tokenizer makes of it."""

    text: str
    ids: tuple[int, ...]


def baseline_folder(path: Path) -> bool:
    """Whether the baselines can read ``path``: a folder with a regular ``config.json`` and
    ``tokenizer.json`` and ``*.safetensors`` weights. Stricter than export's
    ``is_hf_folder`` (a ``config.json`` entry of any kind, then refused with its reason):
    a baseline is skipped with a note instead, and a FIFO or device where a file should be
    is never handed to ``transformers`` or genai's builder, which would block on it."""
    return (
        path.is_dir()
        and (path / "config.json").is_file()
        and (path / "tokenizer.json").is_file()
        and any(path.glob("*.safetensors"))
    )


class GenedgeTextTarget:
    """``TextGenerator`` on one backend x precision of the bundle: greedy, no EOS stop."""

    kind = "runtime"

    def __init__(self, bundle: Path, backend: str, precision: str, threads: int | None) -> None:
        self.bundle, self.backend, self.precision, self.threads = (
            bundle,
            backend,
            precision,
            threads,
        )
        self.label = f"genedge {backend} {precision}"
        self.info: dict[str, Any] = {}
        self._gen: Any = None

    def preload(self) -> None:
        from genedge.runtime import TextGenerator  # noqa: F401  (imports: part of the cold start)

    def open(self) -> None:
        from genedge.runtime import TextGenerator

        kwargs = open_kwargs(TextGenerator.open, self.backend, self.precision, self.threads)
        try:
            self._gen = TextGenerator.open(self.bundle, **kwargs)
        except Exception as e:  # a configuration this machine cannot run is a note
            raise SkipCase(f"{type(e).__name__}: {e}") from e
        self.info = describe(getattr(self._gen, "info", None))
        self.label = f"genedge {self.info.get('name') or self.backend} {self.precision}"

    def generate(self, prompt: Prompt, n: int) -> tuple[list[int], list[int]]:
        g = self._gen.start(prompt.text, max_new_tokens=n, temperature=0.0, eos=False)
        clock = time.perf_counter_ns
        t0, times = clock(), []
        while not g.done:
            g.step()
            times.append(clock() - t0)
        return list(g.tokens), times

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None


class TransformersTarget:
    """``model.generate`` of ``transformers`` on the source folder, greedy; with ``compile``,
    the forward under ``torch.compile`` and a static cache (compile time: the first call)."""

    kind = "baseline"

    def __init__(self, folder: Path, threads: int | None, compile: bool = False) -> None:
        self.folder, self.threads, self.compile = folder, threads, compile
        self.backend = "torch.compile" if compile else "transformers"
        self.precision = "fp32"
        self.label = f"{self.backend} fp32"
        self.info: dict[str, Any] = {}
        self._model: Any = None
        self._streamer_type: Any = None

    def preload(self) -> None:
        for name in ("torch", "transformers"):
            if importlib.util.find_spec(name) is None:
                raise SkipCase(f"{name} is not installed (pip install 'genedge[export]')")
        import torch  # noqa: F401
        import transformers  # noqa: F401

    def open(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.generation.streamers import BaseStreamer
        from transformers.utils import logging

        logging.disable_progress_bar()  # its loading bar would cut through the bench's output
        if self.threads:
            torch.set_num_threads(self.threads)
        self._model = AutoModelForCausalLM.from_pretrained(
            self.folder, local_files_only=True, trust_remote_code=False, dtype=torch.float32
        ).eval()
        if self.compile:
            self._model.forward = torch.compile(self._model.forward)
        self._streamer_type = _arrival_streamer(BaseStreamer)
        self.info = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    def generate(self, prompt: Prompt, n: int) -> tuple[list[int], list[int]]:
        import torch

        ids = torch.tensor([list(prompt.ids)], dtype=torch.long)
        streamer = self._streamer_type()
        extra = {"cache_implementation": "static"} if self.compile else {}
        pad = self._model.generation_config.pad_token_id
        pad = pad if pad is not None else _first(self._model.generation_config.eos_token_id)
        streamer.start()
        with torch.inference_mode():
            out = self._model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=n,
                min_new_tokens=n,  # no stop at EOS: every target makes exactly n tokens
                do_sample=False,
                streamer=streamer,
                pad_token_id=pad if pad is not None else 0,
                **extra,
            )
        return out[0, len(prompt.ids) :].tolist(), streamer.times

    def close(self) -> None:
        self._model = None


def _first(x: Any) -> Any:
    return x[0] if isinstance(x, (list, tuple)) and x else x


def _arrival_streamer(base: type) -> type:
    """A ``transformers`` streamer that timestamps each new token (the first ``put`` is the
    prompt); defined here so that importing this module never imports transformers."""

    class ArrivalStreamer(base):  # type: ignore[misc, valid-type]
        def start(self) -> None:
            self.t0, self.times, self._prompt_seen = time.perf_counter_ns(), [], False

        def put(self, value: Any) -> None:
            if not self._prompt_seen:
                self._prompt_seen = True
                return
            self.times.append(time.perf_counter_ns() - self.t0)

        def end(self) -> None:
            pass

    return ArrivalStreamer


class GenaiTarget:
    """onnxruntime-genai: its builder on the source folder (once, into ``work``), then its
    generate loop with ``threads`` intra-op threads set in the built ``genai_config.json``,
    each new token decoded to text through its ``TokenizerStream`` (as its examples stream
    text, and as genedge's ``step`` returns it)."""

    kind = "baseline"

    def __init__(self, folder: Path, precision: str, threads: int | None, work: Path) -> None:
        self.folder, self.precision, self.threads, self.work = folder, precision, threads, work
        self.backend = "onnxruntime-genai"
        self.label = f"onnxruntime-genai {precision}"
        self.info: dict[str, Any] = {}
        self._model: Any = None
        self._tokenizer: Any = None

    def preload(self) -> None:
        for name, extra in (("onnxruntime_genai", "genai"), ("onnx_ir", "genai")):
            if importlib.util.find_spec(name) is None:
                raise SkipCase(f"{name} is not installed (pip install 'genedge[{extra}]')")
        import onnxruntime_genai  # noqa: F401

    def open(self) -> None:
        import onnxruntime_genai as og

        out = self.work / f"genai-{self.precision}"
        t0 = time.perf_counter()
        build_genai(self.folder, out, self.precision, self.work / "cache")
        set_genai_threads(out / "genai_config.json", self.threads)
        self._model = og.Model(str(out))
        self._tokenizer = og.Tokenizer(self._model)
        try:  # some shapes build but do not run (CPU GroupQueryAttention: head size % 16 == 0)
            self.generate(Prompt("", (0,)), 2)
        except RuntimeError as e:
            self._model = None
            raise SkipCase(f"its model does not run here: {printable(str(e))[-200:]}") from e
        self.info = {
            "onnxruntime_genai": og.__version__,
            "build_s": round(time.perf_counter() - t0, 2),
            "threads": self.threads,
        }

    def generate(self, prompt: Prompt, n: int) -> tuple[list[int], list[int]]:
        import onnxruntime_genai as og

        total = len(prompt.ids) + n
        params = og.GeneratorParams(self._model)
        # min_length = max_length: no stop at EOS, exactly n new tokens
        params.set_search_options(do_sample=False, max_length=total, min_length=total)
        g = og.Generator(self._model, params)
        stream = self._tokenizer.create_stream()
        clock = time.perf_counter_ns
        t0, times = clock(), []
        g.append_tokens(list(prompt.ids))
        while not g.is_done():
            g.generate_next_token()
            stream.decode(g.get_next_tokens()[0])  # the text, piece by piece, as genedge's step
            times.append(clock() - t0)
        return [int(t) for t in g.get_sequence(0)[len(prompt.ids) :]], times

    def close(self) -> None:
        self._model = self._tokenizer = None


def build_genai(folder: Path, out: Path, precision: str, cache: Path) -> None:
    """``python -m onnxruntime_genai.models.builder -i FOLDER -o OUT -p PRECISION -e cpu``,
    offline; a failure is a ``SkipCase`` carrying the builder's last line."""
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(folder)]
    cmd += ["-o", str(out), "-p", precision, "-e", "cpu", "-c", str(cache)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        r = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise SkipCase(f"the genai builder ran past {BUILD_TIMEOUT_S:.0f} s") from e
    if r.returncode != 0 or not (out / "genai_config.json").is_file():
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SkipCase(
            f"the genai builder failed on {printable(str(folder))} (exit {r.returncode}): "
            f"{printable(tail[0])[:300]}"
        )


def set_genai_threads(config: Path, threads: int | None) -> None:
    """Pin the decoder session's intra-op threads (and one inter-op thread) in genai_config."""
    if not threads:
        return
    data = json.loads(config.read_text())
    options = data["model"]["decoder"].setdefault("session_options", {})
    options["intra_op_num_threads"] = int(threads)
    options["inter_op_num_threads"] = 1
    config.write_text(json.dumps(data, indent=4))

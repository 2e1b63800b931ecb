"""TensorRT engines of a transformer bundle's ``decoder`` graph (``--trt``). UNVERIFIED without a GPU.

Engines are built as the image engines are (``export.tensorrt.engine_from_onnx``: a strongly
typed network, so the precision is the ONNX file's): from ``model.onnx`` (fp32) and
``model.fp16.onnx`` when the perplexity gate kept it. The weight-only int8/int4 files hold
ONNX Runtime's ``MatMulNBits``, which TensorRT's ONNX parser does not know: they get no
engine. Nor does it know ``GroupQueryAttention``: when the bundle's decoder is the shared-cache
graph (docs/text.md), the same wrapper is traced again with the concatenated cache (standard
ops) into a temporary folder, and the engines are built from that trace (``engine_graphs``).

Every engine has two optimization profiles over the decoder's symbolic dimensions ``B``
(batch), ``S`` (new tokens) and ``P`` (cached positions), each (min, opt, max):

* ``prefill`` (profile 0): S in [1, max_context], tuned for ``PREFILL_OPT`` tokens, any P;
* ``decode`` (profile 1): S = 1, P in [0, max_context - 1], tuned for half the context.

An empty cache (P = 0) is an empty tensor, which TensorRT takes (the profiles start P at 0).
The profiles' shapes come from the graph's I/O in the manifest (``text_profile_shapes``, pure
and tested on CPU) and are recorded in the engine record as ``text_profiles``.

Export checks each engine with the perplexity gate's numbers: the engine scores the gate's
held-out text (prefill windows, ``TrtPrefillDecoder``) against ONNX Runtime's fp32 score, with
the bound of the engine's precision (fp32 engines: fp16's), and its first window's logits are
compared with ONNX Runtime fp32's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genedge.atomic import discard_staged
from genedge.errors import BadInputError, IncompatibleEnvironmentError
from genedge.export.checks.text_gate import PERPLEXITY_BOUNDS, gate_record
from genedge.export.context import save_bundle_file
from genedge.export.options import Profile
from genedge.export.routes.onnx_export import save_onnx
from genedge.export.stages.tensorrt import (
    STRONGLY_TYPED,
    EngineRequest,
    engine_file_name,
    engine_from_onnx,
    require_tensorrt,
)
from genedge.export.stages.tensorrt import engine_record as make_engine_record
from genedge.export.stages.text_precision import (
    fp16_text_from_onnx,
    fp32_score,
    gate_texts,
    guard_feeds,
    open_decoder,
    score_window,
    tokenizer_of,
)
from genedge.export.stages.trt_stage import build_environment
from genedge.precisions import onnx_file
from genedge.runtime import trt_backend

PREFILL_OPT = 128  # prompt tokens the prefill profile is tuned for (at most the context)
ENGINE_PRECISIONS = ("fp32", "fp16")  # the decoder files TensorRT can parse


@dataclass(frozen=True)
class TextProfile:
    """One optimization profile of a decoder engine: (min, opt, max) per symbolic dim."""

    name: str
    batch: Profile
    new_tokens: Profile
    cached: Profile

    def dims(self) -> dict[str, Profile]:
        return {"B": self.batch, "S": self.new_tokens, "P": self.cached}

    def record(self) -> dict[str, Any]:
        """The profile as the engine record keeps it (``text_profiles``)."""
        return {"name": self.name, **{k: list(v) for k, v in self.dims().items()}}


def text_profiles(max_context: int, batch: Profile = (1, 1, 1)) -> tuple[TextProfile, ...]:
    """The ``prefill`` and ``decode`` profiles of a decoder with ``max_context`` positions."""
    if max_context < 2:
        raise BadInputError(f"A decoder engine needs a context of 2 or more (got {max_context}).")
    last = max_context - 1
    return (
        TextProfile(
            "prefill", batch, (1, min(PREFILL_OPT, max_context), max_context), (0, 0, last)
        ),
        TextProfile("decode", batch, (1, 1, 1), (0, max_context // 2, last)),
    )


def text_profile_shapes(
    inputs: list[Mapping[str, Any]], profile: TextProfile
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Per graph input (manifest I/O records: ``name``, ``shape`` with ints and symbols): its
    (min, opt, max) shape under ``profile``. A symbol other than B, S and P is refused."""
    dims = profile.dims()
    out = {}
    for t in inputs:
        unknown = [d for d in t["shape"] if isinstance(d, str) and d not in dims]
        if unknown:
            raise BadInputError(
                f"Input '{t['name']}' of the decoder has dimension {unknown[0]!r}; a decoder "
                f"engine's profiles cover {', '.join(dims)} only (docs/text.md)."
            )
        out[t["name"]] = tuple(
            tuple(d if isinstance(d, int) else dims[d][k] for d in t["shape"]) for k in range(3)
        )
    return out


def text_batch(profiles: tuple[Profile, ...]) -> Profile:
    """The decoder engines' batch range: 1 (what generation runs, the tuned size) up to the
    largest ``--trt-profile`` MAX."""
    return (1, 1, max(p[2] for p in profiles))


def check_text_trt_options(opts: Any) -> None:
    """Refuse ``--trt`` options that do not apply to decoder engines (before any work)."""
    if opts.dla_core is not None:
        raise BadInputError(
            f"--dla-core {opts.dla_core}: DLA runs static shapes, and a decoder engine's "
            "prompt and cache lengths vary; transformer bundles build GPU engines only.",
            hint="Drop --dla-core.",
        )
    if opts.trt_path == "legacy":
        raise BadInputError(
            "--trt-path legacy: decoder engines are built strongly typed (the precision is "
            "the ONNX file's).",
            hint="Drop --trt-path, or pass --trt-path strongly-typed.",
        )


def engine_sources(kept: set[str]) -> list[tuple[str, str]]:
    """(precision, ONNX file) of each engine to build, given the precisions the bundle kept."""
    return [(p, onnx_file(p)) for p in ENGINE_PRECISIONS if p in kept]


# ---------------------------------------------------------------- TensorRT (GPU only)
def stage_text_trt(build: Any) -> None:
    """``--trt`` for a text bundle: one engine per kept fp32/fp16 decoder graph, checked
    against ONNX Runtime fp32 and recorded with its profiles. GPU only; unverified here."""
    env = build_environment()
    cc = tuple(int(p) for p in env.compute_capability.split("."))
    batch = text_batch(build.opts.profiles)
    profiles = text_profiles(build.hf.config.max_context, batch)
    kept = {a.get("precision") for a in build.artifacts if a["format"] == "onnx"}
    with tempfile.TemporaryDirectory(prefix="genedge-trt-") as folder:
        inputs, sources = engine_graphs(build, kept, Path(folder))
        _build_engines(build, env, cc, profiles, batch, inputs, sources)


def engine_graphs(build: Any, kept: set[str], folder: Path) -> tuple[list[dict], dict[str, Path]]:
    """The I/O records and the ONNX file per precision that engines are built from. A bundle
    whose decoder is the shared-cache graph (``GroupQueryAttention``, an ONNX Runtime op that
    TensorRT's parser does not know) has its wrapper traced again with the concatenated cache
    (standard ops; docs/text.md) into ``folder``, fp16 converted as the bundle's file was."""
    from genedge.export.routes.text_wrappers import decoder_graph_spec, onnx_from_decoder

    w = build.wrapper
    if not getattr(w, "shared", False):
        files = {p: build.tmp / f for p, f in engine_sources(kept)}
        return [t.to_dict() for t in build.spec.inputs], files
    spec = decoder_graph_spec(w.shape)
    w.shared = False
    try:
        model = onnx_from_decoder(w, spec, build.opts.opset, logits_from=False)
    finally:
        w.shared = True
    fp32 = folder / "model.onnx"
    save_onnx(model, fp32)
    files = {}
    for precision, name in engine_sources(kept):
        files[precision] = folder / name
        if precision == "fp16":
            feeds = guard_feeds(build, gate_texts(build).calibration)
            fp16_text_from_onnx(fp32, files[precision], feeds)
    return [t.to_dict() for t in spec.inputs], files


def _build_engines(build, env, cc, profiles, batch, inputs, sources) -> None:
    o = build.opts
    timing = None
    for precision, path in sources.items():
        src = path.name if path.parent == build.tmp else f"{path.name}, concatenated-cache trace"
        req = EngineRequest(
            path,
            precision,
            STRONGLY_TYPED,
            tuple(inputs),
            (batch,),
            o.workspace_mb,
            version_compatible=o.version_compatible,
            shapes=tuple(text_profile_shapes(inputs, p) for p in profiles),
        )
        build.log(f"building TensorRT {precision} decoder engine from {src} (prefill + decode)")
        built = engine_from_onnx(req, timing_cache=timing, log=build.log)
        timing = built.timing_cache
        file = engine_file_name(precision, cc, env.tensorrt_version)
        save_bundle_file(build.tmp, file, built.plan)
        record = make_engine_record(
            trt_version=env.tensorrt_version,
            device_name=env.device_name,
            compute_capability=cc,
            profiles=(batch,),
            version_compatible=o.version_compatible,
            dla_core=None,
            built_from=src,
            path=STRONGLY_TYPED,
        )
        record["text_profiles"] = [p.record() for p in profiles]
        verification = engine_check(build, build.tmp / file, precision, o.version_compatible)
        build.log(f"{file}: {verification['reason']}")
        if not verification["quality_approved"]:
            discard_staged(build.tmp, build.tmp / file)
            build.skipped[f"trt-{precision}"] = (
                f"refused by the perplexity gate: {verification['reason']}"
            )
            continue
        build.add(
            file,
            format="engine",
            precision=precision,
            engine=record,
            verification=verification,
            quality_approved=verification["quality_approved"],
        )
    save_bundle_file(build.tmp, "timing.cache", timing or b"")
    build.add("timing.cache", format="cache")


def engine_check(
    build: Any, path: Path, precision: str, version_compatible: bool = False
) -> dict[str, Any]:
    """The engine against ONNX Runtime fp32: logits of the first held-out window (max abs
    error) and perplexity of the gate's held-out text (ratio and bound)."""
    from genedge.runtime.perplexity import score_text

    texts = gate_texts(build)
    reference = fp32_score(build, texts)
    decoder = TrtPrefillDecoder(path.read_bytes(), build.hf.config, version_compatible)
    try:
        score = score_text(
            decoder,
            tokenizer_of(build),
            texts.held_out,
            window=score_window(build),
            bos_token_id=build.hf.config.bos_token_id,
        )
        ids = np.asarray(build.held_out[: score_window(build)], np.int64)
        decoder.reset()
        got = decoder.feed(ids).copy()
    finally:
        decoder.close()
    ref = _ort_logits(build, ids)
    bound = PERPLEXITY_BOUNDS.get(precision, PERPLEXITY_BOUNDS["fp16"])
    rec = gate_record(precision, score, reference, texts.source, bound=bound)
    rec["max_abs_err_vs_fp32"] = float(np.max(np.abs(got.astype(np.float64) - ref)))
    rec["backend"] = trt_backend.SPEC.name
    return rec


def _ort_logits(build: Any, ids: np.ndarray) -> np.ndarray:
    """Logits float64 (S, V) of one prefill of ``ids`` through ONNX Runtime fp32."""
    decoder = open_decoder(build.tmp / f"{build.spec.stem}.onnx", build)
    try:
        decoder.reserve(len(ids))
        return decoder.feed(ids).astype(np.float64)
    finally:
        decoder.backend.close()


class TrtPrefillDecoder:
    """A decoder engine run as ``runtime.perplexity`` drives a ``KvDecoder``: ``reserve(n)``,
    ``reset()``, then one ``feed(ids)`` per reset, a prefill of batch 1 on an empty cache with
    the ``prefill`` profile (0). Export-time checking only; GPU only, unverified here."""

    def __init__(self, plan: bytes, cfg: Any, version_compatible: bool = False) -> None:
        from genedge.runtime.cuda import cuda_call, cuda_runtime, trt_logger

        trt = require_tensorrt()
        self.cfg, self._trt, self._cudart, self._call = cfg, trt, cuda_runtime(), cuda_call
        runtime = trt.Runtime(trt_logger(trt))
        if version_compatible:  # export built this plan itself, host code included
            runtime.engine_host_code_allowed = True
        self._engine = runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise IncompatibleEnvironmentError(
                "TensorRT could not deserialize the engine it built."
            )
        self._context = self._engine.create_execution_context()
        self._stream = cuda_call(self._cudart.cudaStreamCreate())
        self._live: list[int] = []
        self._capacity = 0
        self._buffers: dict[str, int] = {}
        if not self._context.set_optimization_profile_async(0, int(self._stream)):
            raise IncompatibleEnvironmentError("TensorRT refused the engine's prefill profile.")

    def _names(self) -> list[str]:
        return [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]

    def reserve(self, positions: int) -> None:
        """Device buffers for prefills of up to ``positions`` tokens (batch 1)."""
        if positions <= self._capacity:
            return
        self._free()
        c = self.cfg
        per_token = {"input_ids": 8, "position_ids": 8, "logits": 4 * c.vocab_size}
        kv = 4 * c.num_kv_heads * c.head_dim
        for name in self._names():
            nbytes = per_token.get(name, kv) * positions
            self._buffers[name] = int(self._call(self._cudart.cudaMalloc(max(nbytes, 256))))
            self._live.append(self._buffers[name])
        self._capacity = positions

    def reset(self) -> None:
        """Every feed is a prefill on an empty cache: nothing to clear."""

    def feed(self, ids: np.ndarray) -> np.ndarray:
        """Logits float32 (S, V) of ``ids`` (S <= the reservation) at positions 0 .. S-1."""
        c, S = self.cfg, len(ids)
        if not 1 <= S <= self._capacity:
            raise BadInputError(f"feed of {S} tokens; the engine buffers hold {self._capacity}.")
        host = {
            "input_ids": np.ascontiguousarray(np.asarray(ids, np.int64)[None]),  # (1, S)
            "position_ids": np.arange(S, dtype=np.int64)[None],  # (1, S)
        }
        empty = (1, c.num_kv_heads, 0, c.head_dim)
        for name in self._names():
            if self._engine.get_tensor_mode(name) == self._trt.TensorIOMode.INPUT:
                shape = host[name].shape if name in host else empty
                if not self._context.set_input_shape(name, shape):
                    raise BadInputError(f"Input '{name}' shape {shape} is outside the profile.")
            self._context.set_tensor_address(name, self._buffers[name])
        for name, x in host.items():
            self._copy(self._buffers[name], x.ctypes.data, x.nbytes, to_device=True)
        if not self._context.execute_async_v3(int(self._stream)):
            raise IncompatibleEnvironmentError("TensorRT failed to run the decoder engine.")
        self._call(self._cudart.cudaStreamSynchronize(self._stream))
        logits = np.empty((S, c.vocab_size), np.float32)
        self._copy(logits.ctypes.data, self._buffers["logits"], logits.nbytes, to_device=False)
        return logits

    def _copy(self, dst: int, src: int, nbytes: int, *, to_device: bool) -> None:
        kind = self._cudart.cudaMemcpyKind
        k = kind.cudaMemcpyHostToDevice if to_device else kind.cudaMemcpyDeviceToHost
        self._call(self._cudart.cudaMemcpy(dst, src, nbytes, k))

    def _free(self) -> None:
        for p in self._live:
            self._cudart.cudaFree(p)
        self._live, self._buffers, self._capacity = [], {}, 0

    def close(self) -> None:
        self._free()
        self._cudart.cudaStreamDestroy(self._stream)
        self._context = self._engine = None

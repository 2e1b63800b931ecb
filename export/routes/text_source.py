"""A Hugging Face causal-LM folder -> verified transformer bundle (docs/text.md).

    genedge export HF_FOLDER --out BUNDLE

The folder holds ``config.json``, ``*.safetensors`` and ``tokenizer.json``. It is checked
before anything is loaded (family, remote code, files), loaded with ``transformers``
(``local_files_only=True``, never ``trust_remote_code``) in float32, checked again (missing,
unexpected or mis-shaped weights), wrapped by ``text_wrappers`` and traced to the KV-cache
``decoder`` graph. Parity runs the written file through ``genedge.runtime`` (the
``KvDecoder`` generation uses): a prefill of held-out text, then single-token decode steps,
compared with the ``transformers`` model's logits on the same tokens. The bundle is built in
a temporary folder and moved into place whole (``bundle_lock`` + ``atomic_dir``), manifest
last; nothing partial is left at ``--out``.

``TEXT_STAGES`` maps a precision to the stage that builds it from ``TextBuild``; precisions
without a stage are skipped and recorded in the manifest's ``source.skipped``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genedge.atomic import atomic_dir, atomic_write_bytes
from genedge.errors import BadInputError, CorruptArtifactError, printable
from genedge.export.bundle import bundle_lock, source_path
from genedge.export.checks.parity import ParityError
from genedge.export.context import Log, silent
from genedge.export.manifest_build import producer_versions
from genedge.export.options import ExportOptions, validate_export_options
from genedge.export.routes.byo import combined_sha256
from genedge.export.routes.onnx_export import PROTOBUF_LIMIT, save_onnx
from genedge.export.stages.tensorrt import require_tensorrt
from genedge.export.stages.text_precision import TEXT_PRECISION_STAGES
from genedge.export.stages.text_tensorrt import check_text_trt_options, stage_text_trt
from genedge.lazy import lazy_import
from genedge.manifest import (
    FORMAT,
    SCHEMA_VERSION,
    TRANSFORMER_FAMILIES,
    TRANSFORMER_GRAPH,
    TransformerConfig,
    artifact_record,
    sha256_file,
    transformer_config_from,
    write_manifest,
)
from genedge.outputs import check_bundle_out, open_lock
from genedge.readback import ReadbackError, open_regular, read_json
from genedge.runtime.select import open_file
from genedge.runtime.text_lm import KvDecoder

torch = lazy_import("torch")
transformers = lazy_import("transformers")
hf_logging = lazy_import("transformers.utils.logging")

CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
ROPE_TYPES = ("default", "linear", "llama3", "yarn")  # fixed tables: ``inv_freq`` says it all
PARITY_PREFILL = 48  # held-out tokens in the prefill parity run
PARITY_DECODE = 16  # then this many single-token steps
HELD_OUT_CHARS = 8192  # stdlib-docs characters read for held-out text
MAX_FOLDER_CONTEXT = 1 << 20
CONFIG_BYTES = 16 << 20  # a config.json is a few KiB; anything past this is not one
TOKENIZER_BYTES = 256 << 20  # the largest vocabularies' tokenizer.json are ~10-30 MiB
HF_FAMILIES = tuple(f for f in TRANSFORMER_FAMILIES if f != "module")  # module: --module
SUPPORTED = ", ".join(HF_FAMILIES)


def is_hf_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder with a ``config.json`` entry (the Hugging Face layout;
    one that is not a regular file is refused by ``read_hf_config``)."""
    p = Path(path)
    return p.is_dir() and os.path.lexists(p / CONFIG)


# ---------------------------------------------------------------- checks before loading
def _refuse(folder: Path, what: str, hint: str | None = None) -> BadInputError:
    return BadInputError(
        f"Hugging Face folder '{printable(str(folder))}': {what}",
        hint=hint or f"genedge exports decoder-only language models of the families {SUPPORTED}.",
    )


def read_hf_config(folder: Path) -> dict[str, Any]:
    """``config.json`` as a dict, checked: a supported ``model_type``, no remote code."""
    try:  # a FIFO, a device, a huge or deeply nested file: refused before or while reading
        cfg = read_json(folder / CONFIG, what=CONFIG, limit=CONFIG_BYTES, follow_symlinks=True)
    except ReadbackError as e:
        raise _refuse(
            folder,
            e.message,
            hint="Export a folder that `model.save_pretrained(folder)` wrote.",
        ) from None
    if not isinstance(cfg, dict):
        raise _refuse(folder, f"{CONFIG} holds {type(cfg).__name__}; expected an object.")
    if "auto_map" in cfg:
        raise _refuse(
            folder,
            f"{CONFIG} has 'auto_map': the model needs its own code (trust_remote_code), which "
            f"genedge never runs; supported families: {SUPPORTED}.",
        )
    kind = cfg.get("model_type")
    if kind not in HF_FAMILIES:
        raise _refuse(
            folder,
            f"model_type {printable(repr(kind), 60)} is not supported; expected one of {SUPPORTED}.",
        )
    return cfg


def check_hf_files(folder: Path) -> list[Path]:
    """The folder's weight files (``*.safetensors``) and its tokenizer, or exit 2."""
    weights = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if not weights:
        pickles = sorted(p.name for p in folder.glob("*.bin"))
        raise _refuse(
            folder,
            "no *.safetensors weights"
            + (
                f" ({', '.join(pickles[:3])} are pickles, which genedge never loads)."
                if pickles
                else "."
            ),
            hint="Save the model with `model.save_pretrained(folder)` (safetensors by default).",
        )
    tokenizer = folder / TOKENIZER
    if os.path.lexists(tokenizer):  # a FIFO, a device, a folder, a huge file: refused here
        try:
            os.close(
                open_regular(tokenizer, what=TOKENIZER, limit=TOKENIZER_BYTES, follow_symlinks=True)
            )
        except ReadbackError as e:
            raise _refuse(
                folder,
                e.message,
                hint="Save the tokenizer as a file: `AutoTokenizer.from_pretrained(...)"
                ".save_pretrained(folder)` writes tokenizer.json.",
            ) from None
    if not tokenizer.is_file():
        raise _refuse(
            folder,
            f"no {TOKENIZER}; the bundle carries the tokenizer the runtime reads.",
            hint="Save a fast tokenizer beside it: `AutoTokenizer.from_pretrained(...)"
            ".save_pretrained(folder)` writes tokenizer.json.",
        )
    return weights


def check_rope(folder: Path, cfg: Any) -> None:
    """Refuse rotary scalings whose tables change with the sequence length."""
    params = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    kinds = {p.get("rope_type", p.get("type", "default")) for p in _rope_dicts(params)}
    bad = sorted(k for k in kinds if k not in ROPE_TYPES)
    if bad:
        raise _refuse(
            folder,
            f"rope scaling {bad[0]!r} is not supported; expected one of {', '.join(ROPE_TYPES)}.",
            hint="Export a model with fixed rotary tables, or remove rope scaling from config.json.",
        )


def _rope_dicts(params: Any) -> list[dict[str, Any]]:
    if not isinstance(params, dict):
        return []
    if all(isinstance(v, dict) for v in params.values()) and params:  # per layer type
        return list(params.values())
    return [params]


# ---------------------------------------------------------------- loading
@dataclass(frozen=True)
class HfModel:
    """A loaded source: the model parity calls as ``model(ids).logits`` (the ``transformers``
    model, float32, eval), its family, the manifest ``model`` section, and what parity calls
    the reference."""

    model: Any
    family: str
    section: dict[str, Any]
    reference: str = "transformers"

    @property
    def config(self) -> TransformerConfig:
        return transformer_config_from(self.section, "export")


def load_hf_folder(folder: Path) -> HfModel:
    """Check and load ``folder``; every user-side problem is a ``BadInputError`` (exit 2)."""
    raw = read_hf_config(folder)
    check_hf_files(folder)
    tokenizer = load_tokenizer_file(folder / TOKENIZER)
    hf_logging.disable_progress_bar()  # export logs its own lines

    try:
        cfg = transformers.AutoConfig.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False
        )
    except Exception as e:  # transformers raises ValueError/TypeError/OSError for bad configs
        raise _refuse(
            folder, f"{CONFIG} is not a valid {raw['model_type']} config: {_first(e)}"
        ) from None
    check_rope(folder, cfg)
    if raw["model_type"] == "gpt2" and getattr(cfg, "scale_attn_by_inverse_layer_idx", False):
        raise _refuse(folder, "scale_attn_by_inverse_layer_idx is not supported for gpt2.")
    try:
        model, info = transformers.AutoModelForCausalLM.from_pretrained(
            folder,
            local_files_only=True,
            trust_remote_code=False,
            dtype=torch.float32,
            output_loading_info=True,
        )
    except Exception as e:
        raise _refuse(folder, f"the weights do not load: {_first(e)}") from None
    problems = {
        k: list(info.get(k) or ()) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        k, v = next(iter(problems.items()))
        raise _refuse(
            folder,
            f"the weights do not match config.json: {len(v)} {k.replace('_', ' ')} "
            f"(e.g. {printable(str(v[0]), 80)}).",
            hint="The safetensors files belong to another model or config; re-save the model.",
        )
    model = model.float().eval()
    check_graph_size(folder, model)
    section = model_section(folder, raw["model_type"], model, tokenizer)
    return HfModel(model, raw["model_type"], section)


def check_graph_size(folder: Path, model: Any) -> None:
    """Refuse a model whose fp32 weights do not fit one ONNX protobuf (2 GiB): the decoder is
    traced in memory."""

    nbytes = sum(p.numel() * 4 for p in model.parameters())
    if nbytes >= PROTOBUF_LIMIT * 0.95:
        raise _refuse(
            folder,
            f"{nbytes / 2**30:.2f} GiB of fp32 weights; genedge exports transformer models "
            "under 1.9 GiB in fp32 (one ONNX file).",
            hint="Export a smaller model (about 450M parameters at most).",
        )


def _first(e: Exception) -> str:
    text = str(e).strip()
    return printable(text.splitlines()[0] if text else type(e).__name__, 200)


def load_tokenizer_file(path: Path) -> Any:
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust library raises its own Exception type
        raise _refuse(path.parent, f"{TOKENIZER} is not a tokenizer file: {_first(e)}") from None


def model_section(folder: Path, family: str, model: Any, tokenizer: Any) -> dict[str, Any]:
    """The manifest ``model`` section of docs/text.md, bound-checked."""
    c = model.config
    H = c.num_attention_heads if family != "gpt2" else c.n_head
    C = c.hidden_size if family != "gpt2" else c.n_embd
    Hkv = H if family == "gpt2" else (getattr(c, "num_key_value_heads", None) or H)
    D = getattr(c, "head_dim", None) or C // H
    L = c.num_hidden_layers if family != "gpt2" else c.n_layer
    ctx = c.max_position_embeddings if family != "gpt2" else c.n_positions
    window = getattr(c, "sliding_window", None)
    if window and (family == "mistral" or getattr(c, "use_sliding_window", False)):
        ctx = min(ctx, int(window))  # within the window, sliding attention is full attention
    V = c.vocab_size
    if H % Hkv or (family == "gpt2" and C % H):
        raise _refuse(folder, f"{H} attention heads cannot be shared by {Hkv} key/value heads.")
    if tokenizer.get_vocab_size(with_added_tokens=True) > V:
        raise _refuse(
            folder,
            f"{TOKENIZER} has {tokenizer.get_vocab_size(with_added_tokens=True)} tokens; the model's "
            f"vocab_size is {V}.",
            hint="The tokenizer belongs to another model; save the model's own tokenizer.",
        )
    if not 2 <= ctx <= MAX_FOLDER_CONTEXT:
        raise _refuse(folder, f"context of {ctx} positions; expected 2 to {MAX_FOLDER_CONTEXT}.")
    eos = c.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    gen = getattr(model, "generation_config", None)
    if gen is not None and gen.eos_token_id is not None:  # what transformers' generate stops at
        g = gen.eos_token_id
        eos = [g] if isinstance(g, int) else list(g)
    bos = c.bos_token_id if isinstance(c.bos_token_id, int) else None
    for t in [*eos, *([] if bos is None else [bos])]:
        if not 0 <= t < V:
            raise _refuse(folder, f"special token id {t} is outside the vocabulary of {V}.")
    return {
        "arch": "transformer",
        "family": family,
        "tokenizer": TOKENIZER,
        "vocab_size": V,
        "num_layers": L,
        "num_heads": H,
        "num_kv_heads": Hkv,
        "head_dim": D,
        "hidden_size": C,
        "max_context": ctx,
        "bos_token_id": bos,
        "eos_token_ids": sorted(set(eos)),
    }


def folder_source(folder: Path, out: Path, family: str) -> dict[str, Any]:
    """The manifest ``source`` record: the folder, its family and the sha256 of its files."""

    files = {p.name: sha256_file(p) for p in sorted(folder.glob("*.safetensors"))}
    for name in (CONFIG, TOKENIZER):
        files[name] = sha256_file(folder / name)
    return {
        "type": "hf-folder",
        "folder": folder.name,
        "path": source_path(folder, out),
        "model_type": family,
        "files": files,
        "sha256": combined_sha256(files),
    }


# ---------------------------------------------------------------- building the bundle
@dataclass(frozen=True)
class TextBuild:
    """One text export's shared state: options, the bundle folder being filled, the loaded
    model and its graph, the held-out tokens, and the artifact records the stages append."""

    opts: ExportOptions
    tmp: Path
    hf: HfModel
    wrapper: Any
    spec: Any  # GraphSpec of the decoder
    held_out: np.ndarray  # int64 (N,) token ids of held-out text
    held_out_text: str  # where it came from
    log: Log
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    trained_on: str | None = None  # the training corpus of a genedge checkpoint (source.data)

    def add(self, file: str, **fields: Any) -> dict[str, Any]:
        rec = artifact_record(self.tmp, file, graph=TRANSFORMER_GRAPH, **fields).to_dict()
        self.artifacts.append(rec)
        return rec


def open_decoder(path: Path, build: TextBuild) -> Any:
    """The runtime's ``KvDecoder`` on the ONNX file ``path`` (ORT CPU), as generation runs it."""

    b = open_file(path, inputs=build.spec.inputs, outputs=build.spec.outputs)
    return KvDecoder(b, build.hf.config)


def runtime_logits(decoder: Any, ids: np.ndarray, prefill: int) -> np.ndarray:
    """Logits (N, V) of ``ids`` through ``decoder``: ``prefill`` tokens in one run, then one
    token per run (the cache path generation takes)."""
    decoder.reserve(len(ids))
    out = [decoder.feed(ids[:prefill]).copy()]
    out += [decoder.feed(ids[i : i + 1]).copy() for i in range(prefill, len(ids))]
    return np.concatenate(out)


def torch_logits(model: Any, ids: np.ndarray) -> np.ndarray:
    """Logits (N, V) of the ``transformers`` model on ``ids`` in one causal forward."""
    with torch.no_grad():
        return model(torch.from_numpy(ids[None]).long()).logits[0].float().numpy()


def stage_fp32(build: TextBuild) -> None:
    """Trace the decoder, write ``model.onnx``, check parity through the runtime, record it."""
    from genedge.export.routes.text_wrappers import onnx_from_decoder

    build.log(f"exporting {TRANSFORMER_GRAPH} -> model.onnx ({build.hf.family})")
    files = save_onnx(
        onnx_from_decoder(build.wrapper, build.spec, build.opts.opset), build.tmp / "model.onnx"
    )
    verification = check_text_parity(build, files[0])
    build.log(
        f"model.onnx parity vs {build.hf.reference}: max abs err "
        f"{verification['max_abs_err_vs_torch']:.3g} "
        f"over {verification['tokens']} tokens (prefill + cached decode)"
    )
    build.add(
        files[0].name,
        format="onnx",
        precision="fp32",
        verification=verification,
        quality_approved=True,
    )
    for extra in files[1:]:
        build.add(extra.name, format="onnx-data", precision="fp32")


def check_text_parity(build: TextBuild, path: Path) -> dict[str, Any]:
    """Logits of ``path`` (prefill, then cached decode) vs the ``transformers`` model; raises
    ``ParityError`` (exit 4) past the tolerance."""
    n = min(PARITY_PREFILL + PARITY_DECODE, build.hf.config.max_context, len(build.held_out))
    ids = build.held_out[:n]
    prefill = max(1, n - PARITY_DECODE)
    decoder = open_decoder(path, build)
    try:
        got = runtime_logits(decoder, ids, prefill)
    finally:
        decoder.backend.close()
    ref = torch_logits(build.hf.model, ids)
    bad = int(np.size(ref) - np.count_nonzero(np.isfinite(ref)))
    if bad:  # the source model itself is broken: no wrapper could match it
        raise CorruptArtifactError(
            f"The source model's own logits ({build.hf.reference}) are NaN or infinite on "
            f"held-out text ({bad} of {np.size(ref)} values over {n} tokens): its weights are "
            "broken, so there is nothing to export.",
            hint="Check the weights (a NaN or Inf in a tensor, or an overflowing scale) and "
            "save the folder again.",
        )
    err = float(np.max(np.abs(got - ref)))
    tol = max(1e-3, 1e-4 * float(np.max(np.abs(ref))))
    rec = {
        "max_abs_err_vs_torch": err,
        "tolerance": tol,
        "reference": build.hf.reference,
        "backend": "onnxruntime-cpu",
        "tokens": int(n),
        "prefill_tokens": int(prefill),
        "decode_tokens": int(n - prefill),
        "text": build.held_out_text,
        "verdict": "pass" if err <= tol else "fail",
    }
    if not np.isfinite(err) or err > tol:
        raise ParityError(
            f"{path.name}: logits differ from {build.hf.reference}'s by {err:.3g} "
            f"(tolerance {tol:.3g}) "
            f"over {n} held-out tokens.",
            hint="This is a bug in genedge's decoder wrapper for this family; please report it "
            "with the folder's config.json.",
        )
    return rec


def held_out_tokens(opts: ExportOptions, tokenizer: Any) -> tuple[np.ndarray, str]:
    """Token ids of held-out text: ``--eval-data`` (a text file) or standard-library docstrings."""
    from genedge.train.data import load_text_data, stdlib_docs

    if opts.eval_data:
        data = load_text_data(opts.eval_data)
        text, name = data.text, data.name
    else:
        text, name = stdlib_docs(HELD_OUT_CHARS), "stdlib-docs"
    ids = np.asarray(tokenizer.encode(text).ids, np.int64)
    if len(ids) < 2:
        raise BadInputError(
            f"Held-out text '{printable(name)}' gives {len(ids)} tokens; expected more."
        )
    return ids, name


TEXT_STAGES: dict[str, Callable[[TextBuild], None]] = {
    "fp32": stage_fp32,
    **TEXT_PRECISION_STAGES,  # fp16, int8, int4: gated on held-out perplexity
}


def export_hf_folder(
    folder: str | os.PathLike,
    opts: ExportOptions,
    *,
    log: Log = silent,
    source: dict[str, Any] | None = None,
) -> Path:
    """``genedge export HF_FOLDER --out BUNDLE``: check, load, export, verify; returns the bundle.

    ``source`` replaces the manifest's source record (default: the folder's) when the folder
    is a conversion of another source, such as a genedge transformer checkpoint.

    Raises ``BadInputError`` (exit 2) for a folder genedge cannot export (naming the supported
    families), ``ParityError`` (exit 4) when the graph disagrees with the model; the folder at
    ``opts.out`` is untouched on any error.
    """
    folder = Path(folder)
    opts = validate_export_options(dataclasses.replace(opts, source=folder))
    if opts.trt:  # engines are built last (text_tensorrt), on this machine's GPU
        check_text_trt_options(opts)
        require_tensorrt()
    read_hf_config(folder)  # cheap refusals before the lock and before transformers loads
    check_hf_files(folder)
    with bundle_lock(opts.out, sources=(folder, opts.eval_data)):
        hf = load_hf_folder(folder)
        source = source or folder_source(folder, opts.out, hf.family)
        _export_loaded(hf, hf.model, folder / TOKENIZER, opts, source, log)
    return opts.out


def export_text_model(
    hf: HfModel,
    module: Any,
    tokenizer: Path,
    opts: ExportOptions,
    source: dict[str, Any],
    *,
    inputs: tuple[Path | None, ...] = (),
    log: Log = silent,
) -> Path:
    """Export an already loaded model: ``module`` is what ``text_wrappers.WRAPPERS[hf.family]``
    wraps, ``tokenizer`` its ``tokenizer.json``, ``inputs`` the files it was read from (none
    may lie inside ``opts.out``). Errors and guarantees as ``export_hf_folder``."""
    opts = validate_export_options(dataclasses.replace(opts, source=tokenizer))
    if opts.trt:
        require_tensorrt()
    with bundle_lock(opts.out, sources=(tokenizer, opts.eval_data, *inputs)):
        _export_loaded(hf, module, tokenizer, opts, source, log)
    return opts.out


def _export_loaded(
    hf: HfModel,
    module: Any,
    tokenizer: Path,
    opts: ExportOptions,
    source: dict[str, Any],
    log: Log,
) -> None:
    from genedge.export.routes.text_wrappers import WRAPPERS, DecoderShape, decoder_graph_spec

    c = hf.config
    shape = DecoderShape(c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size)
    held, where = held_out_tokens(opts, load_tokenizer_file(tokenizer))
    if hf.family == "module" or shape.head_dim % GQA_HEAD_MULTIPLE:
        wrapper = WRAPPERS[hf.family](module, shape)  # concatenated cache, standard ops
    else:  # ONNX Runtime's GroupQueryAttention on a shared cache buffer (docs/text.md)
        wrapper = WRAPPERS[hf.family](module, shape, shared=True)
    spec = decoder_graph_spec(shape, shared=wrapper.shared)
    _build(opts, hf, wrapper, spec, held, where, source, tokenizer, log)


# ONNX Runtime's CPU GroupQueryAttention kernel takes head sizes in multiples of 16 only
GQA_HEAD_MULTIPLE = 16


def _build(opts, hf, wrapper, spec, held, where, source, tokenizer, log) -> None:

    fd = None
    try:
        with atomic_dir(opts.out, before_swap=lambda: check_bundle_out(opts.out)) as tmp:
            fd = open_lock(tmp, who="genedge export")
            build = TextBuild(
                opts, tmp, hf, wrapper, spec, held, where, log, trained_on=source.get("data")
            )
            atomic_write_bytes(tmp / TOKENIZER, Path(tokenizer).read_bytes())
            build.add(TOKENIZER, format="tokenizer")
            for precision in opts.precisions:
                stage = TEXT_STAGES.get(precision)
                if stage is None:
                    build.skipped[precision] = "not built for transformer bundles by this genedge"
                    log(f"{precision}: skipped (not built for transformer bundles yet)")
                    continue
                stage(build)
            if opts.trt:
                stage_text_trt(build)
            write_manifest(tmp, manifest_for(build, source))
    finally:
        if fd is not None:
            os.close(fd)


def manifest_for(build: TextBuild, source: dict[str, Any]) -> dict[str, Any]:

    src = dict(source)
    if build.skipped:
        src["skipped"] = dict(build.skipped)
    producer = producer_versions()
    from importlib import metadata

    for name in ("transformers", "tokenizers"):
        try:
            producer[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "kind": "ar",
        "model": build.hf.section,
        "graphs": {TRANSFORMER_GRAPH: build.spec.to_dict()},
        "artifacts": build.artifacts,
        "producer": producer,
        "source": src,
    }

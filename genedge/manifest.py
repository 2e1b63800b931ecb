"""The bundle manifest: the only thing the exporter and the runtime share (DESIGN.md section 4).

A bundle is a folder of raw artifact files plus ``manifest.json`` (written last). This
module reads and writes that JSON and performs every check that must pass before a
file is handed to a deserializer: known format and schema version, confined paths
(no ``..``, absolute paths, symlinks or hardlinks leaving the folder), no missing or
unlisted files, and the sha256 of each file. The JSON is parsed once into frozen records
(``ModelConfig``, ``GraphIO`` of ``TensorSpec``, ``Artifact`` with its ``Verification``,
``EngineRecord`` and ``Speed``) that every stage reads; a malformed or unknown field is
refused here, naming it. stdlib and numpy only.

Layout of ``manifest.json`` (schema_version 1)::

    {
      "format": "genedge.bundle", "schema_version": 1, "kind": "gan" | "vae" | "ar",
      "model":  {...model config: latent_dim, num_classes, image_size, channels, vocab...},
      "graphs": {"generator": {"inputs": [IO], "outputs": [IO]}, ...},
      "artifacts": [Artifact, ...],
      "producer": {"genedge": "...", "torch": "...", "onnx": "...", ...},
      "source": {"checkpoint": "name", "sha256": "..."}
    }
    IO       = {"name", "dtype", "shape": ["B", 16, 16, 1], "layout"?: "NHWC"}
    Artifact = {"file", "graph", "format": "onnx"|"onnx-data"|"engine"|"cache",
                "precision"?: "fp32"|"fp16"|"int8", "sha256", "size",
                "verification"?: {...}, "calibration"?: {...}, "engine"?: {...},
                "quality_approved"?: bool, "recipe"?: {...},
                "inference_precisions"?: {"bf16": {"backend": "openvino", "verification",
                                                   "quality_approved"}}}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

import numpy as np

from genedge.atomic import LOCK_NAME, TMP_PREFIX, atomic_write_text
from genedge.errors import CorruptArtifactError, IntegrityError, SecurityRefusal, printable
from genedge.readback import read_json

FORMAT = "genedge.bundle"
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
KINDS = ("gan", "vae", "ar")
# the graph each kind's users run: the image graph of gan/vae, the text model's step
MAIN_GRAPH = {"gan": "generator", "vae": "decoder", "ar": "step"}
TRANSFORMER_GRAPH = "decoder"  # the main graph of an ar bundle whose model.arch is transformer
TRANSFORMER_FAMILIES = ("llama", "qwen2", "mistral", "gpt2", "module")  # docs/text.md
PRECISIONS = ("fp32", "fp16", "int8")
WEIGHT_ONLY_PRECISIONS = ("int4",)  # MatMulNBits block-wise: transformer language models only
ARTIFACT_PRECISIONS = (*PRECISIONS, *WEIGHT_ONLY_PRECISIONS)
MAX_CONTEXT = 1 << 20  # positions a transformer bundle may declare; its KV cache is sized by it
ARTIFACT_FORMATS = ("onnx", "onnx-data", "engine", "cache", "tokenizer")
DTYPES = ("float32", "float16", "float64", "uint8", "int8", "int32", "int64", "bool")
LAYOUTS = ("NHWC", "NCHW")
OUTPUT_FORMATS = ("uint8", "float")
LATENT_DISTRIBUTIONS = ("normal",)  # the graph's z; a module's own prior is mapped inside it
VERDICTS = ("pass", "fail")
Dim = int | str  # a fixed size, or a symbolic one such as "B"
# Files a bundle may hold without listing them: the manifest itself and export's lock.
_UNLISTED_OK = {MANIFEST_NAME, LOCK_NAME}
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_MAX_NAME_BYTES = 255  # NAME_MAX on Linux, macOS and Windows file systems
_MAX_ENTRY_CHARS = 1024


# ---------------------------------------------------------------- field checks
def _fail(where: str, name: str, value: Any, expected: str) -> NoReturn:
    raise CorruptArtifactError(
        f"{where} is malformed: {name} is {_shown(value)}; expected {expected}.",
        hint="Re-export the bundle with `genedge export`.",
    )


def _int(where: str, name: str, v: Any, *, lo: int = 0, optional: bool = False) -> Any:
    if v is None and optional:
        return None
    if type(v) is not int or v < lo:  # not True, not 1.0
        _fail(where, name, v, f"an integer >= {lo}")
    return v


def _num(where: str, name: str, v: Any) -> float | None:
    """An optional number (inf and nan included: PSNR of identical images is inf)."""
    if v is None:
        return None
    if type(v) not in (int, float):
        _fail(where, name, v, "a number")
    return float(v)


def _text(
    where: str, name: str, v: Any, choices: tuple[str, ...] | None = None, *, optional: bool = False
) -> Any:
    if v is None and optional:
        return None
    if not isinstance(v, str) or (choices is not None and v not in choices):
        _fail(where, name, v, f"one of {choices}" if choices else "a string")
    return v


def _bool(where: str, name: str, v: Any, default: bool = False) -> bool:
    if v is None:
        return default
    if type(v) is not bool:
        _fail(where, name, v, "true or false")
    return v


def _object(where: str, name: str, v: Any, *, optional: bool = True) -> dict[str, Any]:
    if v is None and optional:
        return {}
    if not isinstance(v, dict):
        _fail(where, name, v, "an object")
    return v


def _no_unknown(where: str, name: str, d: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(map(str, set(d) - known))
    if unknown:
        _fail(
            where,
            f"{name} key {printable(unknown[0], 40)!r}",
            d.get(unknown[0]),
            f"only {sorted(known)}",
        )


def _extra(d: dict[str, Any], known: set[str]) -> Mapping[str, Any]:
    return MappingProxyType({k: v for k, v in d.items() if k not in known})


def _dims(where: str, name: str, v: Any) -> tuple[Dim, ...]:
    if not isinstance(v, list):
        _fail(where, name, v, 'a list of sizes >= 1 or symbols such as "B"')
    for d in v:
        if not ((type(d) is int and d >= 1) or (isinstance(d, str) and d.isidentifier())):
            _fail(where, name, v, 'a list of sizes >= 1 or symbols such as "B"')
    return tuple(v)


# ---------------------------------------------------------------- typed records
@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, numpy dtype name (``"float32"``, ``"uint8"``,
    ``"int64"``), shape of ints and symbols such as ``"B"``, and the layout of an image.

    ``dtype`` may be given as anything ``numpy.dtype`` takes; it is kept as its name.
    ``np_dtype`` is the same dtype as a ``numpy.dtype``, for the runtime's checks.
    """

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    layout: str | None = None
    np_dtype: np.dtype = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        dt = np.dtype(self.dtype)
        object.__setattr__(self, "dtype", dt.name)
        object.__setattr__(self, "shape", tuple(self.shape))
        object.__setattr__(self, "np_dtype", dt)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.layout:
            d["layout"] = self.layout
        return d


def tensor_spec_from(d: Any, where: str, name: str) -> TensorSpec:
    d = _object(where, name, d, optional=False)
    _no_unknown(where, name, d, {"name", "dtype", "shape", "layout"})
    return TensorSpec(
        name=_text(where, f"{name}.name", d.get("name")),
        dtype=_text(where, f"{name}.dtype", d.get("dtype"), DTYPES),
        shape=_dims(where, f"{name}.shape", d.get("shape")),
        layout=_text(where, f"{name}.layout", d.get("layout"), LAYOUTS, optional=True),
    )


@dataclass(frozen=True)
class GraphIO:
    """A graph's declared inputs and outputs (manifest ``graphs[NAME]``)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }


def graph_io_from(d: Any, where: str, name: str) -> GraphIO:
    d = _object(where, name, d, optional=False)
    _no_unknown(where, name, d, {"inputs", "outputs"})
    sides = {}
    for side in ("inputs", "outputs"):
        items = d.get(side)
        if not isinstance(items, list):
            _fail(where, f"{name}.{side}", items, "a list of tensors")
        sides[side] = tuple(
            tensor_spec_from(t, where, f"{name}.{side}[{i}]") for i, t in enumerate(items)
        )
    names = [t.name for t in sides["inputs"] + sides["outputs"]]
    if len(set(names)) != len(names):
        _fail(where, f"{name} tensor names", names, "each name once")
    return GraphIO(**sides)


_IMAGE_KEYS = {"latent_dim", "num_classes", "image_size", "height", "width", "channels"}
_IMAGE_KEYS |= {"output_format", "latent"}
_TEXT_KEYS = {"vocab", "vocab_size", "state_names", "state_shape"}


@dataclass(frozen=True)
class ModelConfig:
    """The manifest ``model`` section (docs/bundle.md). Image kinds (``gan``, ``vae``) set
    ``latent_dim`` and the image fields; ``ar`` sets ``vocab`` and the state fields. Keys this
    record does not model (the training config, a user generator's ``output_range``...) stay
    readable in ``extra``."""

    latent_dim: int | None = None
    num_classes: int = 0
    image_size: int | None = None
    height: int | None = None
    width: int | None = None
    channels: int | None = None
    output_format: str = "uint8"
    latent_distribution: str | None = None
    vocab: str | None = None
    state_names: tuple[str, ...] = ()
    state_shape: tuple[Dim, ...] = ()
    transformer: TransformerConfig | None = None  # ar with model.arch "transformer" (docs/text.md)
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def arch(self) -> str | None:
        """``"transformer"`` for a transformer language model, else the section's own ``arch``."""
        return "transformer" if self.transformer is not None else self.extra.get("arch")

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(H, W, C) of the images the graph returns, when the section gives them."""
        h = self.height or self.image_size
        w = self.width or self.image_size
        return None if h is None or w is None or self.channels is None else (h, w, self.channels)

    @property
    def vocab_size(self) -> int:
        if self.transformer is not None:
            return self.transformer.vocab_size
        return len(self.vocab or "")

    def to_dict(self) -> dict[str, Any]:
        """The section as export writes it (an absent ``output_format`` is written as its default)."""
        if self.transformer is not None:
            return {**self.transformer.to_dict(), **self.extra}
        if self.vocab is not None:
            return {
                "vocab": self.vocab,
                **self.extra,
                "vocab_size": self.vocab_size,
                "state_names": list(self.state_names),
                "state_shape": list(self.state_shape),
            }
        d: dict[str, Any] = {"latent_dim": self.latent_dim, "num_classes": self.num_classes}
        if self.latent_dim is None:
            del d["latent_dim"]
        for key in ("image_size", "height", "width", "channels"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        d.update(self.extra, output_format=self.output_format)
        if self.latent_distribution is not None:
            d["latent"] = {"distribution": self.latent_distribution}
        return d


def model_config_from(d: Any, kind: str, where: str) -> ModelConfig:
    d = _object(where, "model", d, optional=False)
    if kind == "ar" and d.get("arch") == "transformer":
        return ModelConfig(
            transformer=transformer_config_from(d, where), extra=_extra(d, _TRANSFORMER_KEYS)
        )
    if kind == "ar":
        return _text_config(d, where)
    size = {
        k: _int(where, f"model.{k}", d.get(k), lo=1, optional=True)
        for k in ("image_size", "height", "width", "channels")
    }
    latent = d.get("latent")
    if latent is not None:
        latent = _object(where, "model.latent", latent)
        _no_unknown(where, "model.latent", latent, {"distribution"})
        latent = _text(
            where, "model.latent.distribution", latent.get("distribution"), LATENT_DISTRIBUTIONS
        )
    return ModelConfig(
        latent_dim=_int(where, "model.latent_dim", d.get("latent_dim"), lo=1, optional=True),
        num_classes=_int(where, "model.num_classes", d.get("num_classes"), optional=True) or 0,
        output_format=_text(
            where, "model.output_format", d.get("output_format", "uint8"), OUTPUT_FORMATS
        ),
        latent_distribution=latent,
        extra=_extra(d, _IMAGE_KEYS),
        **size,
    )


def _text_config(d: dict[str, Any], where: str) -> ModelConfig:
    vocab = d.get("vocab")
    if not isinstance(vocab, str) or len(vocab) < 2:
        _fail(where, "model.vocab", vocab, "the vocabulary as a string of at least 2 characters")
    size = d.get("vocab_size", len(vocab))
    if size != len(vocab) or type(size) is not int:
        _fail(where, "model.vocab_size", size, f"{len(vocab)}, the length of model.vocab")
    names = d.get("state_names", ["h"])
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        _fail(where, "model.state_names", names, 'a list of tensor names such as ["h", "c"]')
    shape = d.get("state_shape")
    return ModelConfig(
        vocab=vocab,
        state_names=tuple(names),
        state_shape=() if shape is None else _dims(where, "model.state_shape", shape),
        extra=_extra(d, _TEXT_KEYS),
    )


@dataclass(frozen=True)
class TransformerConfig:
    """The ``model`` section of a transformer language model (docs/text.md): the decoder
    graph's sizes, its context, the bundle's tokenizer file and the special token ids."""

    family: str
    tokenizer: str  # a bundle file, listed (and hashed) as an artifact of format "tokenizer"
    vocab_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    max_context: int
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"arch": "transformer"}
        d.update({k: getattr(self, k) for k in self.__dataclass_fields__})
        d["eos_token_ids"] = list(self.eos_token_ids)
        return d


_TRANSFORMER_KEYS = {"arch", *TransformerConfig.__dataclass_fields__}


def transformer_config_from(d: dict[str, Any], where: str) -> TransformerConfig:
    """Parse and bound-check a transformer ``model`` section (CorruptArtifactError naming a field)."""
    ints = {
        k: _int(where, f"model.{k}", d.get(k), lo=1)
        for k in ("vocab_size", "num_layers", "num_heads", "num_kv_heads", "head_dim")
    }
    ints["hidden_size"] = _int(where, "model.hidden_size", d.get("hidden_size"), lo=1)
    ints["max_context"] = _int(where, "model.max_context", d.get("max_context"), lo=2)
    if ints["max_context"] > MAX_CONTEXT:
        _fail(where, "model.max_context", ints["max_context"], f"at most {MAX_CONTEXT}")
    if ints["num_heads"] % ints["num_kv_heads"]:
        _fail(where, "model.num_kv_heads", ints["num_kv_heads"], "a divisor of model.num_heads")
    V = ints["vocab_size"]
    bos = _int(where, "model.bos_token_id", d.get("bos_token_id"), optional=True)
    eos = d.get("eos_token_ids", [])
    if not isinstance(eos, list):
        _fail(where, "model.eos_token_ids", eos, "a list of token ids")
    for t in [*eos, *([] if bos is None else [bos])]:
        if type(t) is not int or not 0 <= t < V:
            _fail(where, "model token id", t, f"an integer in [0, {V}) (model.vocab_size)")
    tok = _text(where, "model.tokenizer", d.get("tokenizer"))
    return TransformerConfig(
        family=_text(where, "model.family", d.get("family"), TRANSFORMER_FAMILIES),
        tokenizer=tok,
        bos_token_id=bos,
        eos_token_ids=tuple(eos),
        **ints,
    )


def main_graph(manifest: Manifest) -> str:
    """The graph users run: ``decoder`` for a transformer language model, else ``MAIN_GRAPH``."""
    if manifest.model.transformer is not None:
        return TRANSFORMER_GRAPH
    return MAIN_GRAPH[manifest.kind]


@dataclass(frozen=True)
class Verification:
    """An artifact's export checks (docs/bundle.md): errors vs torch or fp32, PSNR/SSIM and
    task metrics vs fp32 on fixed seeds, and the verdict. Other keys stay in ``extra``."""

    max_abs_err_vs_torch: float | None = None
    max_abs_err_vs_fp32: float | None = None
    psnr_vs_fp32: float | None = None
    ssim_vs_fp32: float | None = None
    metrics: Mapping[str, float | None] = field(default_factory=lambda: MappingProxyType({}))
    metrics_fp32: Mapping[str, float | None] = field(default_factory=lambda: MappingProxyType({}))
    metric_drop: float | None = None
    metric_budget: float | None = None  # the largest drop the gate allowed
    psnr_floor: float | None = None  # the lowest PSNR the gate allowed
    seeds: tuple[int, ...] = ()
    samples: int | None = None
    backend: str | None = None
    reference: str | None = None
    verdict: str | None = None
    checks: tuple[str, ...] = ()  # which checks decided: parity, psnr, task_metric, max_err
    reason: str | None = None  # the measured values against their limits, in one line
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def passed(self) -> bool:
        """Not failed: an artifact without a verdict (external data, older bundles) passes."""
        return self.verdict != "fail"

    @property
    def max_abs_err(self) -> float | None:
        """The error export measured: vs fp32 for reduced precision, else vs torch."""
        return (
            self.max_abs_err_vs_torch
            if self.max_abs_err_vs_fp32 is None
            else self.max_abs_err_vs_fp32
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key in _VERIFICATION_KEYS:
            v = getattr(self, key)
            if v is None or (key in ("metrics", "metrics_fp32", "seeds", "checks") and not v):
                continue
            d[key] = (
                list(v)
                if key in ("seeds", "checks")
                else dict(v)
                if key.startswith("metrics")
                else v
            )
        d.update(self.extra)
        return d


_VERIFICATION_KEYS = tuple(k for k in Verification.__dataclass_fields__ if k != "extra")


def _metrics(where: str, name: str, v: Any) -> Mapping[str, float | None]:
    v = _object(where, name, v)
    return MappingProxyType({str(k): _num(where, f"{name}.{k}", x) for k, x in v.items()})


def verification_from(d: Any, where: str, name: str = "verification") -> Verification:
    d = _object(where, name, d)
    seeds = d.get("seeds", [])
    if not isinstance(seeds, list) or any(type(s) is not int for s in seeds):
        _fail(where, f"{name}.seeds", seeds, "a list of integers")
    nums = (
        "max_abs_err_vs_torch",
        "max_abs_err_vs_fp32",
        "psnr_vs_fp32",
        "ssim_vs_fp32",
        "metric_drop",
        "metric_budget",
        "psnr_floor",
    )
    checks = d.get("checks", [])
    if not isinstance(checks, list) or any(not isinstance(c, str) for c in checks):
        _fail(where, f"{name}.checks", checks, "a list of strings")
    return Verification(
        **{k: _num(where, f"{name}.{k}", d.get(k)) for k in nums},
        metrics=_metrics(where, f"{name}.metrics", d.get("metrics")),
        metrics_fp32=_metrics(where, f"{name}.metrics_fp32", d.get("metrics_fp32")),
        seeds=tuple(seeds),
        samples=_int(where, f"{name}.samples", d.get("samples"), optional=True),
        backend=_text(where, f"{name}.backend", d.get("backend"), optional=True),
        reference=_text(where, f"{name}.reference", d.get("reference"), optional=True),
        verdict=_text(where, f"{name}.verdict", d.get("verdict"), VERDICTS, optional=True),
        checks=tuple(checks),
        reason=_text(where, f"{name}.reason", d.get("reason"), optional=True),
        extra=_extra(d, set(_VERIFICATION_KEYS)),
    )


_CC = re.compile(r"[0-9]{1,2}\.[0-9]{1,2}")  # "8.7": the one spelling export writes


@dataclass(frozen=True)
class EngineRecord:
    """How a TensorRT engine was built (docs/bundle.md): what a machine must match to run it.

    ``compute_capability`` is ``"MAJOR.MINOR"`` (``"8.7"``); ``profiles`` are
    ``(min, opt, max)`` batch sizes; ``version_compatible`` engines carry host code.
    """

    tensorrt_version: str
    compute_capability: str
    device_name: str = ""
    profiles: tuple[tuple[int, int, int], ...] = ()
    version_compatible: bool = False
    dla_core: int | None = None
    built_from: str | None = None
    path: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "tensorrt_version": self.tensorrt_version,
            "device_name": self.device_name,
            "compute_capability": self.compute_capability,
            "profiles": [list(p) for p in self.profiles],
            "version_compatible": self.version_compatible,
            "dla_core": self.dla_core,
        }
        for key in ("built_from", "path"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        d.update(self.extra)
        return d


def engine_record_from(d: Any, where: str, name: str = "engine") -> EngineRecord:
    """Parse an engine record, refusing (exit 2) a missing or malformed field by name."""
    d = _object(where, name, d, optional=False)
    trt = d.get("tensorrt_version")
    if not isinstance(trt, str) or not re.fullmatch(
        r"[0-9]{1,9}(\.[0-9A-Za-z_+-]{1,16}){0,5}", trt
    ):
        _fail(where, f"{name}.tensorrt_version", trt, 'a version such as "10.3.0"')
    cc = d.get("compute_capability")
    if not isinstance(cc, str) or not _CC.fullmatch(cc):
        _fail(where, f"{name}.compute_capability", cc, 'MAJOR.MINOR such as "8.7"')
    profiles = d.get("profiles", [])
    ok = isinstance(profiles, list) and all(
        isinstance(p, list)
        and len(p) == 3
        and all(type(b) is int for b in p)
        and 1 <= p[0] <= p[1] <= p[2]
        for p in profiles
    )
    if not ok:
        _fail(
            where,
            f"{name}.profiles",
            profiles,
            "a list of [min, opt, max] batch sizes, 1 <= min <= opt <= max",
        )
    known = {"tensorrt_version", "compute_capability", "device_name", "profiles"}
    known |= {"version_compatible", "dla_core", "built_from", "path"}
    return EngineRecord(
        tensorrt_version=trt,
        compute_capability=cc,
        device_name=_text(where, f"{name}.device_name", d.get("device_name", "")),
        profiles=tuple(tuple(p) for p in profiles),
        version_compatible=_bool(where, f"{name}.version_compatible", d.get("version_compatible")),
        dla_core=_int(where, f"{name}.dla_core", d.get("dla_core"), optional=True),
        built_from=_text(where, f"{name}.built_from", d.get("built_from"), optional=True),
        path=_text(where, f"{name}.path", d.get("path"), optional=True),
        extra=_extra(d, known),
    )


@dataclass(frozen=True)
class BatchSpeed:
    """Export's CPU timing of one artifact at one batch size (docs/bundle.md ``speed``)."""

    p50_ms: float
    speedup_vs_fp32: float | None = None
    round_range: tuple[float, float] | None = None
    rounds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"p50_ms": self.p50_ms}
        if self.speedup_vs_fp32 is not None:
            d["speedup_vs_fp32"] = self.speedup_vs_fp32
        if self.round_range is not None:
            d["round_range"] = list(self.round_range)
        if self.rounds is not None:
            d["rounds"] = self.rounds
        return d


@dataclass(frozen=True)
class Speed:
    """CPU latency export measured per artifact: ``batch`` maps a batch size to its timing."""

    batch: Mapping[int, BatchSpeed]
    backend: str = "ort-cpu"
    threads: int | None = None
    machine: str = ""
    # the CPU load it was taken under (``genedge.cpu_load.RoundLoad.record``); None: unknown
    load: Mapping[str, Any] | None = None
    # the same file on the other CPU backends, side by side: backend -> batch -> p50 ms
    others: Mapping[str, Mapping[int, float]] = field(default_factory=lambda: MappingProxyType({}))

    def p50s(self) -> dict[int, float]:
        return {b: s.p50_ms for b, s in self.batch.items()}

    @property
    def busy(self) -> bool:
        """Taken while other processes competed for the CPUs: not a basis for choosing."""
        return bool(self.load and self.load.get("busy"))

    def to_dict(self) -> dict[str, Any]:
        d = {
            "batch": {str(b): s.to_dict() for b, s in self.batch.items()},
            "backend": self.backend,
            "threads": self.threads,
            "machine": self.machine,
        }
        if self.load is not None:
            d["load"] = dict(self.load)
        if self.others:
            d["others"] = {k: {str(b): ms for b, ms in v.items()} for k, v in self.others.items()}
        return d


def speed_from(d: Any, where: str, name: str = "speed") -> Speed:
    d = _object(where, name, d, optional=False)
    _no_unknown(where, name, d, {"batch", "backend", "threads", "machine", "load", "others"})
    batches = _object(where, f"{name}.batch", d.get("batch"), optional=False)
    out = {}
    for b, rec in batches.items():
        _batch_key(where, f"{name}.batch key", b)
        out[int(b)] = _batch_speed(rec, where, f"{name}.batch.{b}")
    load = d.get("load")
    if load is not None:
        load = _object(where, f"{name}.load", load, optional=False)
        _bool(where, f"{name}.load.busy", load.get("busy"))
    others = {}
    for backend, p50s in _object(where, f"{name}.others", d.get("others")).items():
        at = f"{name}.others.{printable(str(backend), 20)}"
        p50s = _object(where, at, p50s, optional=False)
        for b, ms in p50s.items():
            _batch_key(where, f"{at} key", b)
            if type(ms) not in (int, float) or not 0 < ms < float("inf"):
                _fail(where, f"{at}.{b}", ms, "a time in milliseconds > 0")
        others[str(backend)] = MappingProxyType({int(b): float(ms) for b, ms in p50s.items()})
    return Speed(
        batch=MappingProxyType(out),
        backend=_text(where, f"{name}.backend", d.get("backend", "ort-cpu")),
        threads=_int(where, f"{name}.threads", d.get("threads"), lo=1, optional=True),
        machine=_text(where, f"{name}.machine", d.get("machine", "")),
        load=None if load is None else MappingProxyType(dict(load)),
        others=MappingProxyType(others),
    )


def _batch_key(where: str, name: str, b: Any) -> None:
    if not (isinstance(b, str) and re.fullmatch(r"[0-9]{1,9}", b) and int(b) >= 1):
        _fail(where, name, b, "a batch size >= 1")


def _batch_speed(rec: Any, where: str, name: str) -> BatchSpeed:
    rec = _object(where, name, rec, optional=False)
    _no_unknown(where, name, rec, {"p50_ms", "speedup_vs_fp32", "round_range", "rounds"})
    p50 = _num(where, f"{name}.p50_ms", rec.get("p50_ms"))
    if p50 is None or not 0 < p50 < float("inf"):
        _fail(where, f"{name}.p50_ms", rec.get("p50_ms"), "a time in milliseconds > 0")
    rr = rec.get("round_range")
    if rr is not None and not (
        isinstance(rr, list) and len(rr) == 2 and all(type(x) in (int, float) for x in rr)
    ):
        _fail(where, f"{name}.round_range", rr, "[low, high] ratios")
    return BatchSpeed(
        p50_ms=p50,
        speedup_vs_fp32=_num(where, f"{name}.speedup_vs_fp32", rec.get("speedup_vs_fp32")),
        round_range=None if rr is None else (float(rr[0]), float(rr[1])),
        rounds=_int(where, f"{name}.rounds", rec.get("rounds"), optional=True),
    )


# Precisions that are not a file of their own but a way of running one: bf16 is the fp32 ONNX
# run with OpenVINO's bf16 inference precision, gated at export like fp16 (docs/bundle.md).
INFERENCE_PRECISIONS = {"bf16": "openvino"}  # precision -> the backend that runs it
# every precision a caller may ask for (files' and hints'), in export stage order
RUN_PRECISIONS = ("fp32", "fp16", *INFERENCE_PRECISIONS, "int8", *WEIGHT_ONLY_PRECISIONS)


@dataclass(frozen=True)
class InferencePrecision:
    """One precision an fp32 file is run in by a backend's hint (``bf16`` on ``openvino``)."""

    backend: str
    verification: Verification = field(default_factory=Verification)
    quality_approved: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "verification": self.verification.to_dict(),
            "quality_approved": self.quality_approved,
        }


@dataclass(frozen=True)
class InferencePrecisions:
    """An fp32 artifact's ``inference_precisions`` record: precision -> ``InferencePrecision``."""

    entries: Mapping[str, InferencePrecision]

    def to_dict(self) -> dict[str, Any]:
        return {p: e.to_dict() for p, e in self.entries.items()}


def inference_precisions_from(
    d: Any, where: str, name: str = "inference_precisions"
) -> InferencePrecisions:
    d = _object(where, name, d, optional=False)
    entries = {}
    for prec, rec in d.items():
        at = f"{name}.{printable(str(prec), 20)}"
        if prec not in INFERENCE_PRECISIONS:
            _fail(where, name, prec, f"one of {tuple(INFERENCE_PRECISIONS)}")
        rec = _object(where, at, rec, optional=False)
        _no_unknown(where, at, rec, {"backend", "verification", "quality_approved"})
        entries[prec] = InferencePrecision(
            backend=_text(
                where, f"{at}.backend", rec.get("backend"), (INFERENCE_PRECISIONS[prec],)
            ),
            verification=verification_from(rec.get("verification"), where, f"{at}.verification"),
            quality_approved=_bool(where, f"{at}.quality_approved", rec.get("quality_approved")),
        )
    return InferencePrecisions(MappingProxyType(entries))


_RECORD_PARSERS = {
    "verification": verification_from,
    "engine": engine_record_from,
    "speed": speed_from,
    "inference_precisions": inference_precisions_from,
}


@dataclass(frozen=True)
class Artifact:
    """One file of a bundle, as the manifest records it.

    ``verification``, ``engine`` and ``speed`` are typed records; a ``dict`` given for one
    (export assembles records as dicts) is parsed here, as a manifest's would be.
    """

    file: str
    graph: str
    format: str
    sha256: str
    size: int
    precision: str | None = None
    verification: Verification = field(default_factory=Verification)
    calibration: dict[str, Any] | None = None
    engine: EngineRecord | None = None
    quality_approved: bool = False
    recipe: dict[str, Any] | None = None
    speed: Speed | None = None  # CPU latency measured at export (docs/bundle.md)
    # fp32 ONNX only: other precisions it runs in by a backend's hint (bf16 on openvino)
    inference_precisions: InferencePrecisions | None = None

    def __post_init__(self) -> None:
        for key, parse in _RECORD_PARSERS.items():
            value = getattr(self, key)
            if isinstance(value, dict):
                object.__setattr__(
                    self, key, parse(value, f"Artifact record '{printable(self.file)}'", key)
                )

    def to_dict(self) -> dict[str, Any]:
        d = {}
        for key in self.__dataclass_fields__:
            v = getattr(self, key)
            if v is not None:
                d[key] = v.to_dict() if key in _RECORD_PARSERS else v
        return d


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``root`` is the bundle folder it was read from."""

    root: Path
    kind: str
    model: ModelConfig
    graphs: Mapping[str, GraphIO]
    artifacts: tuple[Artifact, ...]
    producer: dict[str, Any]
    source: dict[str, Any]
    schema_version: int = SCHEMA_VERSION

    def find(
        self, *, graph: str | None = None, format: str | None = None, precision: str | None = None
    ) -> list[Artifact]:
        """Artifacts matching every given field."""
        return [
            a
            for a in self.artifacts
            if (graph is None or a.graph == graph)
            and (format is None or a.format == format)
            and (precision is None or a.precision == precision)
        ]

    def path_of(self, artifact: Artifact, *, verify: bool = True) -> Path:
        """The artifact's path inside the bundle, its hash checked first when ``verify``.

        For an ONNX graph, ``verify`` also confines its external data to the bundle
        (``genedge.onnx_guard``) and checks the hash of every external file it names,
        so the path can go straight to ONNX Runtime, onnx or TensorRT's parser.
        """
        path = resolve_inside(self.root, artifact.file)
        if verify:
            verify_file(path, artifact.sha256, artifact.size)
            if artifact.format == "onnx":
                self._verify_external_data(artifact, path)
        return path

    def _verify_external_data(self, artifact: Artifact, model: Path) -> None:
        from genedge.onnx_guard import check_external_data  # imports this module

        listed = {Path(a.file).as_posix(): a for a in self.artifacts}
        for rel in check_external_data(model, self.root):
            record = listed.get(rel)
            if record is None:
                raise IntegrityError(
                    f"ONNX graph '{printable(artifact.file)}' keeps tensor data in "
                    f"'{printable(rel)}', which the manifest does not list.",
                    hint="Re-export the bundle with `genedge export`.",
                )
            verify_file(resolve_inside(self.root, rel), record.sha256, record.size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": self.schema_version,
            "kind": self.kind,
            "model": self.model.to_dict(),
            "graphs": {name: g.to_dict() for name, g in self.graphs.items()},
            "artifacts": [a.to_dict() for a in self.artifacts],
            "producer": self.producer,
            "source": self.source,
        }


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _shown(value: Any, limit: int = 80) -> str:
    """A value from a file, as a message may show it: quoted, escaped, bounded."""
    return printable(repr(value), limit)


def resolve_inside(root: str | os.PathLike, relpath: str) -> Path:
    """Resolve ``relpath`` inside ``root`` or refuse (exit 4) before anything is read.

    Refused: absolute paths, ``..`` components, symlinks anywhere on the way, files with
    more than one hard link (a hardlink can point at a secret outside the folder), and
    anything whose resolved path leaves ``root``. A name longer than file systems allow
    is corrupt (exit 2).
    """
    root = Path(root).resolve()
    if not isinstance(relpath, str) or not relpath or "\x00" in relpath or not Path(relpath).parts:
        raise SecurityRefusal(f"Bundle entry {_shown(relpath)} is not a valid relative file name.")
    rel = Path(relpath)
    shown = _shown(relpath)
    if rel.is_absolute() or relpath.startswith(("/", "\\")) or ":" in rel.parts[0]:
        raise SecurityRefusal(
            f"Bundle entry {shown} is an absolute path; bundle files must stay inside the bundle."
        )
    if any(part in ("..", "") for part in rel.parts) or "\\" in relpath:
        raise SecurityRefusal(f"Bundle entry {shown} leaves the bundle folder ('..').")
    if len(relpath) > _MAX_ENTRY_CHARS or any(
        len(part.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES for part in rel.parts
    ):
        raise CorruptArtifactError(
            f"Bundle entry {shown} ({len(relpath)} characters) is longer than a file name may be: "
            f"at most {_MAX_NAME_BYTES} bytes per folder or file name, {_MAX_ENTRY_CHARS} in all.",
            hint="Re-export the bundle with `genedge export`.",
        )
    try:
        return _walk_inside(root, rel, shown)
    except OSError as e:  # e.g. ENAMETOOLONG on a file system with shorter names
        raise CorruptArtifactError(
            f"Bundle entry {shown} cannot be looked up ({printable(e.strerror)}).",
            hint="Re-export the bundle with `genedge export`.",
        ) from None


def _walk_inside(root: Path, rel: Path, shown: str) -> Path:
    cur = root
    for part in rel.parts:
        cur = cur / part
        if cur.is_symlink():
            raise SecurityRefusal(
                f"Bundle entry {shown} is or passes through a symlink; symlinks are refused."
            )
    if cur.exists():
        st = cur.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            raise SecurityRefusal(
                f"Bundle entry {shown} has {st.st_nlink} hard links; hardlinked files are refused."
            )
    resolved = cur.resolve()
    if root != resolved and root not in resolved.parents:
        raise SecurityRefusal(f"Bundle entry {shown} resolves outside the bundle.")
    return resolved


def verify_file(path: Path, sha256: str, size: int | None = None) -> None:
    """Refuse (exit 4) a file whose size or sha256 differs from the manifest's record."""
    name = printable(path.name)
    if not path.is_file():
        raise IntegrityError(
            f"Bundle file '{name}' is listed in the manifest but missing.",
            hint="Re-export the bundle with `genedge export`.",
        )
    if size is not None and path.stat().st_size != size:
        raise IntegrityError(
            f"Bundle file '{name}' has {path.stat().st_size} bytes; the manifest records {size}.",
            hint="The file was modified or truncated; re-export the bundle.",
        )
    actual = sha256_file(path)
    if actual != sha256:
        raise IntegrityError(
            f"Bundle file '{name}' fails its hash: sha256 {actual[:16]}..., "
            f"manifest records {printable(sha256, 16)}.",
            hint="The file was modified after export; re-export the bundle.",
        )


def _expect(cond: bool, where: Path, what: str) -> None:
    if not cond:
        raise CorruptArtifactError(
            f"Manifest '{where}' is malformed: {what}.",
            hint="Re-export the bundle with `genedge export`.",
        )


def _artifact_from(d: Any, where: Path) -> Artifact:
    _expect(isinstance(d, dict), where, "an artifact entry is not an object")
    for key, typ in (
        ("file", str),
        ("graph", str),
        ("format", str),
        ("sha256", str),
        ("size", int),
    ):
        _expect(
            isinstance(d.get(key), typ),
            where,
            f"artifact field '{key}' missing or not {typ.__name__}",
        )
    _expect(
        d["format"] in ARTIFACT_FORMATS, where, f"unknown artifact format {_shown(d['format'])}"
    )
    prec = d.get("precision")
    _expect(
        prec is None or (isinstance(prec, str) and prec in ARTIFACT_PRECISIONS),
        where,
        f"unknown precision {_shown(prec)}",
    )
    for key in ("verification", "calibration", "engine", "recipe", "speed", "inference_precisions"):
        _expect(d.get(key) is None or isinstance(d[key], dict), where, f"'{key}' is not an object")
    at = f"Manifest '{where}', artifact '{printable(d['file'])}',"
    _int(at, "size", d["size"])
    _no_unknown(at, "artifact", d, set(Artifact.__dataclass_fields__))
    records = {
        key: parse(d[key], at, key)
        for key, parse in _RECORD_PARSERS.items()
        if d.get(key) is not None
    }
    return Artifact(
        **{k: v for k, v in d.items() if k not in records and k != "quality_approved"},
        quality_approved=_bool(at, "quality_approved", d.get("quality_approved")),
        **records,
    )


def read_manifest(bundle: str | os.PathLike, *, check_files: bool = True) -> Manifest:
    """Read and validate ``BUNDLE/manifest.json``.

    Raises ``CorruptArtifactError`` (exit 2) for missing/garbage JSON and
    ``IntegrityError``/``SecurityRefusal`` (exit 4) for an unknown schema version,
    entries leaving the bundle, and missing or unlisted files. Hashes are checked
    later, per artifact, by ``Manifest.path_of`` right before a file is opened.
    """
    root = Path(bundle)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise CorruptArtifactError(
            f"Bundle '{root}' is not a folder.",
            hint="Pass the folder written by `genedge export CKPT --out BUNDLE`.",
        )
    if path.is_symlink():
        raise SecurityRefusal(f"'{path}' is a symlink; a bundle's manifest must be a plain file.")
    if not path.exists():
        raise CorruptArtifactError(
            f"Bundle '{root}' has no {MANIFEST_NAME}: it is incomplete or not a genedge bundle.",
            hint="Re-export it with `genedge export CKPT --out BUNDLE`.",
        )
    raw = read_json(path, what="Manifest", limit=_MAX_MANIFEST_BYTES)
    return manifest_from_dict(raw, root, check_files=check_files)


_TOP_LEVEL_KEYS = {"format", "schema_version", "kind", "model", "graphs", "artifacts"}
_TOP_LEVEL_KEYS |= {"producer", "source"}


def manifest_from_dict(raw: Any, root: str | os.PathLike, *, check_files: bool = True) -> Manifest:
    """Parse and check a manifest's JSON object into typed records (``root``: the bundle).

    Every field a stage reads is checked here, once: a missing, mistyped or unknown field
    raises ``CorruptArtifactError`` (exit 2) naming it; the rest is as ``read_manifest``.
    """
    root = Path(root)
    where = root / MANIFEST_NAME
    _expect(isinstance(raw, dict), where, "top level is not an object")
    if raw.get("format") != FORMAT:
        raise CorruptArtifactError(
            f"'{where}' has format {_shown(raw.get('format'))}; expected '{FORMAT}'.",
            hint="This folder was not written by `genedge export`.",
        )
    version = raw.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:  # not True, not 1.0
        raise IntegrityError(
            f"Bundle schema_version {_shown(version)} is not supported; this genedge reads version {SCHEMA_VERSION}.",
            hint="Upgrade genedge, or re-export the bundle with this version.",
        )
    kind = raw.get("kind")
    _expect(
        isinstance(kind, str) and kind in KINDS, where, f"kind {_shown(kind)} is not one of {KINDS}"
    )
    _expect(
        isinstance(raw.get("model"), dict),
        where,
        "'model' (the model config) is missing or not an object",
    )
    for key in ("graphs", "producer", "source"):
        _expect(isinstance(raw.get(key, {}), dict), where, f"'{key}' is not an object")
    _expect(isinstance(raw.get("artifacts"), list), where, "'artifacts' is not a list")
    artifacts = tuple(_artifact_from(a, where) for a in raw["artifacts"])
    for a in artifacts:
        try:
            a.file.encode("utf-8")
        except UnicodeEncodeError:
            _expect(False, where, f"artifact file name {_shown(a.file)} is not valid UTF-8 text")
    names = [os.path.normpath(a.file) for a in artifacts]  # "./model.onnx" is "model.onnx"
    _expect(len(set(names)) == len(names), where, "an artifact file is listed twice")
    for a in artifacts:
        resolve_inside(root, a.file)  # refuse escaping entries before anything is read
    at = f"Manifest '{where}'"
    _no_unknown(at, "top-level", raw, _TOP_LEVEL_KEYS)
    model = model_config_from(raw["model"], kind, at)
    graphs = {
        _text(at, "graph name", name): graph_io_from(g, at, f"graphs.{printable(name, 40)}")
        for name, g in raw.get("graphs", {}).items()
    }
    if check_files:
        _check_listing(root, artifacts)
    return Manifest(
        root=root.resolve(),
        kind=raw["kind"],
        model=model,
        graphs=MappingProxyType(graphs),
        artifacts=artifacts,
        producer=raw.get("producer", {}),
        source=raw.get("source", {}),
    )


def _check_listing(root: Path, artifacts: tuple[Artifact, ...]) -> None:
    listed = {Path(a.file).as_posix() for a in artifacts}
    for a in artifacts:
        if not (root / a.file).is_file():
            raise IntegrityError(
                f"Bundle '{printable(root, None)}' lists '{printable(a.file)}' but the file is missing.",
                hint="Re-export the bundle with `genedge export`.",
            )
        size = (root / a.file).stat().st_size
        if size != a.size:  # truncated or appended to: refused before any hashing
            raise IntegrityError(
                f"Bundle file '{printable(a.file)}' has {size} bytes; the manifest records {a.size}.",
                hint="The file was modified or truncated; re-export the bundle.",
            )
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_dir() and not p.is_symlink():
            continue
        if rel in listed or rel in _UNLISTED_OK or p.name.startswith(TMP_PREFIX):
            continue
        raise IntegrityError(
            f"Bundle '{printable(root, None)}' holds '{printable(rel)}', which the manifest does not list.",
            hint="Remove the file, or re-export the bundle.",
        )


def write_manifest(bundle: str | os.PathLike, manifest: dict[str, Any] | Manifest) -> Path:
    """Write ``manifest.json`` atomically (the last file export writes)."""
    data = manifest.to_dict() if isinstance(manifest, Manifest) else manifest
    path = Path(bundle) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def artifact_record(bundle: str | os.PathLike, file: str, **fields: Any) -> Artifact:
    """Make an ``Artifact`` for a file already written in ``bundle`` (hash and size measured)."""
    path = Path(bundle) / file
    return Artifact(file=file, sha256=sha256_file(path), size=path.stat().st_size, **fields)

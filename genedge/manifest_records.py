"""The artifact side of a manifest: one ``Artifact`` per bundle file and its records.

``Verification``, ``EngineRecord``, ``Speed``, ``InferencePrecisions``, ``CalibrationRecord``
and ``Recipe`` are typed records whose JSON keys are their fields (``genedge.record_fields``):
parsing and writing are derived from the dataclass, so each key is spelled once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from genedge.errors import printable
from genedge.precisions import ARTIFACT_PRECISIONS as ARTIFACT_PRECISIONS
from genedge.precisions import INFERENCE_PRECISIONS
from genedge.precisions import PRECISIONS as PRECISIONS
from genedge.precisions import RUN_PRECISIONS as RUN_PRECISIONS
from genedge.precisions import WEIGHT_ONLY_PRECISIONS as WEIGHT_ONLY_PRECISIONS
from genedge.record_fields import (
    EMPTY,
    Bool,
    Check,
    Int,
    Items,
    Num,
    NumberMap,
    Text,
    entry,
    extra_field,
    fail,
    read_bool,
    read_num,
    read_object,
    read_text,
    record_from,
    record_to_dict,
)

ARTIFACT_FORMATS = ("onnx", "onnx-data", "engine", "cache", "tokenizer")
VERDICTS = ("pass", "fail")


@dataclass(frozen=True)
class Verification:
    """An artifact's export checks (docs/bundle.md): errors vs torch or fp32, PSNR/SSIM and
    task metrics vs fp32 on fixed seeds, and the verdict. Other keys stay in ``extra``."""

    max_abs_err_vs_torch: float | None = entry(Num(), None, omit="none")
    max_abs_err_vs_fp32: float | None = entry(Num(), None, omit="none")
    psnr_vs_fp32: float | None = entry(Num(), None, omit="none")
    ssim_vs_fp32: float | None = entry(Num(), None, omit="none")
    metrics: Mapping[str, float | None] = entry(NumberMap(), EMPTY, omit="empty")
    metrics_fp32: Mapping[str, float | None] = entry(NumberMap(), EMPTY, omit="empty")
    metric_drop: float | None = entry(Num(), None, omit="none")
    metric_budget: float | None = entry(Num(), None, omit="none")  # the largest drop allowed
    psnr_floor: float | None = entry(Num(), None, omit="none")  # the lowest PSNR allowed
    seeds: tuple[int, ...] = entry(Items(int, "a list of integers"), (), omit="empty")
    samples: int | None = entry(Int(optional=True), None, omit="none")
    backend: str | None = entry(Text(optional=True), None, omit="none")
    reference: str | None = entry(Text(optional=True), None, omit="none")
    verdict: str | None = entry(Text(VERDICTS, optional=True), None, omit="none")
    # which checks decided: parity, psnr, task_metric, max_err
    checks: tuple[str, ...] = entry(Items(str, "a list of strings"), (), omit="empty")
    reason: str | None = entry(Text(optional=True), None, omit="none")  # values vs limits
    extra: Mapping[str, Any] = extra_field()

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
        return record_to_dict(self)


def verification_from(d: Any, where: str, name: str = "verification") -> Verification:
    return record_from(Verification, {} if d is None else d, where, name)


def _profiles(where: str, name: str, v: Any) -> tuple[tuple[int, int, int], ...]:
    ok = isinstance(v, list) and all(
        isinstance(p, list)
        and len(p) == 3
        and all(type(b) is int for b in p)
        and 1 <= p[0] <= p[1] <= p[2]
        for p in v
    )
    if not ok:
        fail(where, name, v, "a list of [min, opt, max] batch sizes, 1 <= min <= opt <= max")
    return tuple(tuple(p) for p in v)


@dataclass(frozen=True)
class EngineRecord:
    """How a TensorRT engine was built (docs/bundle.md): what a machine must match to run it.

    ``compute_capability`` is ``"MAJOR.MINOR"`` (``"8.7"``); ``profiles`` are
    ``(min, opt, max)`` batch sizes; ``version_compatible`` engines carry host code.
    """

    tensorrt_version: str = entry(
        Text(pattern=r"[0-9]{1,9}(\.[0-9A-Za-z_+-]{1,16}){0,5}", like='a version such as "10.3.0"')
    )
    device_name: str = entry(Text(), "", kw_only=True)  # written before compute_capability
    # "8.7": the one spelling export writes
    compute_capability: str = entry(
        Text(pattern=r"[0-9]{1,2}\.[0-9]{1,2}", like='MAJOR.MINOR such as "8.7"')
    )
    profiles: tuple[tuple[int, int, int], ...] = entry(
        Check(_profiles, lambda v: [list(p) for p in v]), ()
    )
    version_compatible: bool = entry(Bool(), False)
    dla_core: int | None = entry(Int(optional=True), None)
    built_from: str | None = entry(Text(optional=True), None, omit="none")
    path: str | None = entry(Text(optional=True), None, omit="none")
    extra: Mapping[str, Any] = extra_field()

    def to_dict(self) -> dict[str, Any]:
        return record_to_dict(self)


def engine_record_from(d: Any, where: str, name: str = "engine") -> EngineRecord:
    """Parse an engine record, refusing (exit 2) a missing or malformed field by name."""
    return record_from(EngineRecord, d, where, name)


def _milliseconds(where: str, name: str, v: Any) -> float:
    ms = read_num(where, name, v)
    if ms is None or not 0 < ms < float("inf"):
        fail(where, name, v, "a time in milliseconds > 0")
    return ms


def _round_range(where: str, name: str, v: Any) -> tuple[float, float] | None:
    if v is not None and not (
        isinstance(v, list) and len(v) == 2 and all(type(x) in (int, float) for x in v)
    ):
        fail(where, name, v, "[low, high] ratios")
    return None if v is None else (float(v[0]), float(v[1]))


@dataclass(frozen=True)
class BatchSpeed:
    """Export's CPU timing of one artifact at one batch size (docs/bundle.md ``speed``)."""

    p50_ms: float = entry(Check(_milliseconds))
    speedup_vs_fp32: float | None = entry(Num(), None, omit="none")
    round_range: tuple[float, float] | None = entry(Check(_round_range, list), None, omit="none")
    rounds: int | None = entry(Int(optional=True), None, omit="none")

    def to_dict(self) -> dict[str, Any]:
        return record_to_dict(self)


def _batches(where: str, name: str, v: Any) -> Mapping[int, BatchSpeed]:
    out = {}
    for b, rec in read_object(where, name, v, optional=False).items():
        _batch_key(where, f"{name} key", b)
        out[int(b)] = _batch_speed(rec, where, f"{name}.{b}")
    return MappingProxyType(out)


def _load(where: str, name: str, v: Any) -> Mapping[str, Any] | None:
    if v is None:
        return None
    v = read_object(where, name, v, optional=False)
    read_bool(where, f"{name}.busy", v.get("busy"))
    return MappingProxyType(dict(v))


def _others(where: str, name: str, v: Any) -> Mapping[str, Mapping[int, float]]:
    others = {}
    for backend, p50s in read_object(where, name, v).items():
        at = f"{name}.{printable(str(backend), 20)}"
        p50s = read_object(where, at, p50s, optional=False)
        for b, ms in p50s.items():
            _batch_key(where, f"{at} key", b)
            if type(ms) not in (int, float) or not 0 < ms < float("inf"):
                fail(where, f"{at}.{b}", ms, "a time in milliseconds > 0")
        others[str(backend)] = MappingProxyType({int(b): float(ms) for b, ms in p50s.items()})
    return MappingProxyType(others)


@dataclass(frozen=True)
class Speed:
    """CPU latency export measured per artifact: ``batch`` maps a batch size to its timing."""

    batch: Mapping[int, BatchSpeed] = entry(
        Check(_batches, lambda m: {str(b): s.to_dict() for b, s in m.items()})
    )
    backend: str = entry(Text(), "ort-cpu")
    threads: int | None = entry(Int(1, optional=True), None)
    machine: str = entry(Text(), "")
    # the CPU load it was taken under (``genedge.cpu_load.RoundLoad.record``); None: unknown
    load: Mapping[str, Any] | None = entry(Check(_load, dict), None, omit="none")
    # the same file on the other CPU backends, side by side: backend -> batch -> p50 ms
    others: Mapping[str, Mapping[int, float]] = entry(
        Check(_others, lambda m: {k: {str(b): ms for b, ms in v.items()} for k, v in m.items()}),
        EMPTY,
        omit="empty",
    )

    def p50s(self) -> dict[int, float]:
        return {b: s.p50_ms for b, s in self.batch.items()}

    @property
    def busy(self) -> bool:
        """Taken while other processes competed for the CPUs: not a basis for choosing."""
        return bool(self.load and self.load.get("busy"))

    def to_dict(self) -> dict[str, Any]:
        return record_to_dict(self)


def speed_from(d: Any, where: str, name: str = "speed") -> Speed:
    return record_from(Speed, d, where, name)


def _batch_key(where: str, name: str, b: Any) -> None:
    if not (isinstance(b, str) and re.fullmatch(r"[0-9]{1,9}", b) and int(b) >= 1):
        fail(where, name, b, "a batch size >= 1")


def _batch_speed(rec: Any, where: str, name: str) -> BatchSpeed:
    return record_from(BatchSpeed, rec, where, name)


def _optional_bool(where: str, name: str, v: Any) -> bool | None:
    return None if v is None else read_bool(where, name, v)


def _node_names(where: str, name: str, v: Any) -> tuple[str, ...] | None:
    if v is None:
        return None
    if not isinstance(v, list) or any(not isinstance(n, str) for n in v):
        fail(where, name, v, "a list of node names")
    return tuple(v)


@dataclass(frozen=True)
class CalibrationRecord:
    """How an int8 artifact was calibrated (docs/bundle.md ``calibration``): the method, where
    the samples came from (``prior`` or ``data:PATH``), how many, the seed and truncation of
    the latents, and for a legacy TensorRT int8 engine the key of its calibration cache."""

    method: str | None = entry(Text(optional=True), None, omit="none")
    source: str | None = entry(Text(optional=True), None, omit="none")
    samples: int | None = entry(Int(optional=True), None, omit="none")
    seed: int | None = entry(Int(-(1 << 63), optional=True), None, omit="none")
    truncation: float | None = entry(Num(), None, omit="none")
    cache_key: str | None = entry(Text(optional=True), None, omit="none")
    extra: Mapping[str, Any] = extra_field()

    def to_dict(self) -> dict[str, Any]:
        return record_to_dict(self)


def calibration_from(d: Any, where: str, name: str = "calibration") -> CalibrationRecord:
    return record_from(CalibrationRecord, d, where, name)


def _gate_numbers(where: str, name: str, v: Any) -> Verification | None:
    return None if v is None else verification_from(v, where, name)


@dataclass(frozen=True)
class Recipe:
    """How a reduced-precision file was made (docs/bundle.md ``recipe``): the weight-only
    quantizer's settings (int4), the nodes kept in float (fp16, int8) with the int8 search's
    per-node sensitivity and the all-int8 attempt that made it keep them, and the text the
    fp16 overflow guard ran on. Other keys stay in ``extra``."""

    method: str | None = entry(Text(optional=True), None, omit="none")
    op: str | None = entry(Text(optional=True), None, omit="none")
    quantizer: str | None = entry(Text(optional=True), None, omit="none")
    bits: int | None = entry(Int(1, optional=True), None, omit="none")
    block_size: int | None = entry(Int(1, optional=True), None, omit="none")
    symmetric: bool | None = entry(Check(_optional_bool), None, omit="none")
    accuracy_level: int | None = entry(Int(optional=True), None, omit="none")
    matmuls: int | None = entry(Int(optional=True), None, omit="none")  # MatMulNBits nodes
    kept_float: tuple[str, ...] | None = entry(Check(_node_names, list), None, omit="none")
    sensitivity: Mapping[str, float | None] | None = entry(NumberMap(), None, omit="none")
    all_int8: Verification | None = entry(Check(_gate_numbers, record_to_dict), None, omit="none")
    overflow_guard_text: str | None = entry(Text(optional=True), None, omit="none")
    extra: Mapping[str, Any] = extra_field()

    def to_dict(self) -> dict[str, Any]:
        return record_to_dict(self)


def recipe_from(d: Any, where: str, name: str = "recipe") -> Recipe:
    return record_from(Recipe, d, where, name)


@dataclass(frozen=True)
class InferencePrecision:
    """One precision an fp32 file is run in by a backend's hint (``bf16`` on ``openvino``)."""

    backend: str = entry(Text())
    verification: Verification = entry(
        Check(lambda where, name, v: verification_from(v, where, name), record_to_dict),
        default_factory=Verification,
    )
    quality_approved: bool = entry(Bool(), False)

    def to_dict(self) -> dict[str, Any]:
        return record_to_dict(self)


@dataclass(frozen=True)
class InferencePrecisions:
    """An fp32 artifact's ``inference_precisions`` record: precision -> ``InferencePrecision``."""

    entries: Mapping[str, InferencePrecision]

    def to_dict(self) -> dict[str, Any]:
        return {p: e.to_dict() for p, e in self.entries.items()}


def inference_precisions_from(
    d: Any, where: str, name: str = "inference_precisions"
) -> InferencePrecisions:
    d = read_object(where, name, d, optional=False)
    entries = {}
    for prec, rec in d.items():
        at = f"{name}.{printable(str(prec), 20)}"
        if prec not in INFERENCE_PRECISIONS:
            fail(where, name, prec, f"one of {tuple(INFERENCE_PRECISIONS)}")
        entries[prec] = record_from(InferencePrecision, rec, where, at)
        read_text(where, f"{at}.backend", entries[prec].backend, (INFERENCE_PRECISIONS[prec],))
    return InferencePrecisions(MappingProxyType(entries))


RECORD_PARSERS = {
    "verification": verification_from,
    "engine": engine_record_from,
    "speed": speed_from,
    "inference_precisions": inference_precisions_from,
    "calibration": calibration_from,
    "recipe": recipe_from,
}


def _record(key: str) -> Check:
    """The check of an artifact's record ``key``: its parser (absent or null: none)."""

    def read(where: str, name: str, v: Any) -> Any:
        return None if v is None else RECORD_PARSERS[key](v, where, name)

    return Check(read, lambda record: record.to_dict())


@dataclass(frozen=True)
class Artifact:
    """One file of a bundle, as the manifest records it.

    ``verification``, ``engine``, ``speed``, ``calibration`` and ``recipe`` are typed
    records; a ``dict`` given for one (export assembles records as dicts) is parsed here,
    as a manifest's would be.
    """

    file: str = entry(Text())
    graph: str = entry(Text())
    format: str = entry(Text(ARTIFACT_FORMATS))
    sha256: str = entry(Text())
    size: int = entry(Int())
    precision: str | None = entry(Text(ARTIFACT_PRECISIONS, optional=True), None, omit="none")
    verification: Verification = entry(
        _record("verification"), default_factory=Verification, omit="none"
    )
    calibration: CalibrationRecord | None = entry(_record("calibration"), None, omit="none")
    engine: EngineRecord | None = entry(_record("engine"), None, omit="none")
    quality_approved: bool = entry(Bool(), False)
    recipe: Recipe | None = entry(_record("recipe"), None, omit="none")
    # CPU latency measured at export (docs/bundle.md)
    speed: Speed | None = entry(_record("speed"), None, omit="none")
    # fp32 ONNX only: other precisions it runs in by a backend's hint (bf16 on openvino)
    inference_precisions: InferencePrecisions | None = entry(
        _record("inference_precisions"), None, omit="none"
    )

    def __post_init__(self) -> None:
        for key, parse in RECORD_PARSERS.items():
            value = getattr(self, key)
            if isinstance(value, dict):
                object.__setattr__(
                    self, key, parse(value, f"Artifact record '{printable(self.file)}'", key)
                )

    def to_dict(self) -> dict[str, Any]:
        return record_to_dict(self)


def artifact_from(d: Any, where: str, name: str = "artifact") -> Artifact:
    """Parse one ``artifacts[]`` entry, refusing (exit 2) a missing or malformed field by name."""
    return record_from(Artifact, d, where, name)

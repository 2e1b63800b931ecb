"""Export options: one frozen dataclass, one validation function that names conflicting fields."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from genedge.errors import BadInputError
from genedge.limits import MAX_BATCH, MAX_CALIB_SAMPLES, MAX_OPSET, MIN_OPSET
from genedge.manifest import PRECISIONS, RUN_PRECISIONS

CALIB_METHODS = ("entropy", "minmax", "percentile")
OUTPUT_FORMATS = ("uint8", "float")
TRT_PATHS = ("auto", "strongly-typed", "legacy")  # legacy: builder flags, TensorRT 10 only

# artifact_key: fields that shape no artifact (``module`` is identified by the source's hash),
# and fields hashed under their earlier name so that bundles built before keep their keys
KEY_IGNORES = ("out", "force", "triton", "module")
KEY_NAMES = {"source": "checkpoint"}

Profile = tuple[int, int, int]
DEFAULT_PROFILES: tuple[Profile, ...] = ((1, 8, 32),)


@dataclass(frozen=True)
class ExportOptions:
    """Everything ``export_bundle`` needs. Change one field with ``dataclasses.replace``."""

    # what is exported: a genedge checkpoint, an ONNX generator, a Hugging Face folder, or
    # (with ``module``) the weights of your own module, else its file
    source: Path
    out: Path
    module: str | None = None  # FILE.py:NAME of your own generator or language model
    precisions: tuple[str, ...] = PRECISIONS
    calib_method: str = "minmax"
    calib_samples: int = 512
    calib_data: str | None = None
    eval_data: str | None = None  # reference data for task metrics (default: the checkpoint's)
    truncation: float = 1.0
    max_quality_drop: float = 0.01
    min_psnr: float = 30.0
    output_format: str = "uint8"
    opset: int = 17
    trt: bool = False
    profiles: tuple[Profile, ...] = DEFAULT_PROFILES
    trt_path: str = TRT_PATHS[0]  # one of TRT_PATHS
    workspace_mb: int = 1024
    dla_core: int | None = None
    version_compatible: bool = False
    triton: Path | None = None
    seed: int = 0
    force: bool = False
    parity_seeds: tuple[int, ...] = (0, 1, 2)
    quality_seed: int = 1234  # held-out: never used for calibration
    # 1000: one sample moves an accuracy by 0.001, a tenth of the default budget, so a
    # paired drop of 0.01 is ten flipped samples rather than two (as at 200)
    quality_samples: int = 1000

    def artifact_key(self, stage: str) -> str:
        """Hash of the options that shape the artifacts of ``stage`` (fp32, fp16, int8, trt)."""
        base = ["output_format", "opset", "parity_seeds"]
        extra = {
            "fp32": [],
            "fp16": [
                "min_psnr",
                "quality_seed",
                "quality_samples",
                "seed",
                "calib_samples",
                "truncation",
            ],
            "int8": [
                "calib_method",
                "calib_samples",
                "calib_data",
                "truncation",
                "max_quality_drop",
                "min_psnr",
                "seed",
                "quality_seed",
                "quality_samples",
                "eval_data",
            ],
        }.get(
            stage,
            [f.name for f in dataclasses.fields(self) if f.name not in KEY_IGNORES],
        )
        d = {KEY_NAMES.get(k, k): getattr(self, k) for k in base + extra}
        d["stage"] = stage
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_profiles(text: str) -> tuple[Profile, ...]:
    """``"1:8:32,16:16:16"`` -> ((1, 8, 32), (16, 16, 16)); a single ``N`` means N:N:N.

    Raises BadInputError for garbage, non-positive sizes, or MIN > OPT > MAX out of order.
    """
    profiles = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        try:
            nums = [int(x) for x in part.split(":")]
        except ValueError:
            nums = []
        if len(nums) == 1:
            nums = nums * 3
        if len(nums) != 3:
            raise BadInputError(
                f"--trt-profile received {part!r}; expected MIN:OPT:MAX integers (e.g. 1:8:32).",
                hint="Pass one or more comma-separated ranges, e.g. --trt-profile 1:8:32,64:64:64.",
            )
        lo, opt, hi = nums
        if lo < 1:
            raise BadInputError(f"--trt-profile {part}: MIN must be >= 1 (received {lo}).")
        if lo > hi:
            raise BadInputError(
                f"--trt-profile {part}: MIN {lo} is larger than MAX {hi}.",
                hint=f"Did you mean --trt-profile {hi}:{opt}:{lo}?",
            )
        if not lo <= opt <= hi:
            raise BadInputError(
                f"--trt-profile {part}: OPT {opt} must lie between MIN {lo} and MAX {hi}."
            )
        profiles.append((lo, opt, hi))
    if not profiles:
        raise BadInputError("--trt-profile is empty; expected MIN:OPT:MAX (e.g. 1:8:32).")
    return tuple(profiles)


def validate_export_options(opts: ExportOptions) -> ExportOptions:
    """Refuse contradictory or impossible options (BadInputError naming the fields).

    fp32 is always exported (it is the reference every reduced precision is checked
    against); it is added when missing and the precisions are put in canonical order.
    """
    unknown = [p for p in opts.precisions if p not in RUN_PRECISIONS]
    if unknown:
        raise BadInputError(
            f"--precision received {', '.join(map(repr, unknown))}; expected a subset of {', '.join(RUN_PRECISIONS)}.",
            hint="For example: --precision fp32,fp16,int8",
        )
    _check(
        opts.calib_method in CALIB_METHODS,
        f"calib_method {opts.calib_method!r} is not one of {CALIB_METHODS}",
    )
    _check(
        opts.output_format in OUTPUT_FORMATS,
        f"output_format {opts.output_format!r} is not one of {OUTPUT_FORMATS}",
    )
    _check(
        1 <= opts.calib_samples <= MAX_CALIB_SAMPLES,
        f"calib_samples must be in [1, {MAX_CALIB_SAMPLES}] (received {opts.calib_samples}); "
        "calibration holds every sample in memory and its ranges settle within a few thousand",
    )
    for name, seed in (("seed", opts.seed), ("quality_seed", opts.quality_seed)):
        _check(
            type(seed) is int and 0 <= seed < 2**63,
            f"{name} must be an integer >= 0 (received {seed!r})",
        )
    for name in ("truncation", "max_quality_drop", "min_psnr"):
        value = getattr(opts, name)
        _check(
            isinstance(value, int | float) and math.isfinite(value),
            f"{name} must be a finite number (received {value!r})",
        )
    _check(
        0.0 < opts.truncation <= 1.0, f"truncation must be in (0, 1] (received {opts.truncation})"
    )
    _check(
        MIN_OPSET <= opts.opset <= MAX_OPSET,
        f"opset must be in [{MIN_OPSET}, {MAX_OPSET}] (received {opts.opset}); torch's "
        f"TorchScript ONNX exporter writes opsets up to {MAX_OPSET}",
    )
    _check(
        opts.max_quality_drop >= 0,
        f"max_quality_drop must be >= 0 (received {opts.max_quality_drop})",
    )
    _check(
        opts.trt_path in TRT_PATHS,
        f"trt_path {opts.trt_path!r} is not one of {', '.join(TRT_PATHS)}",
    )
    _check(opts.workspace_mb >= 16, f"workspace_mb must be >= 16 (received {opts.workspace_mb})")
    _check(
        8 <= opts.quality_samples <= MAX_CALIB_SAMPLES,
        f"quality_samples must be in [8, {MAX_CALIB_SAMPLES}] (received {opts.quality_samples})",
    )
    for flag, name in (
        (opts.dla_core is not None, "--dla-core"),
        (opts.version_compatible, "--version-compatible"),
    ):
        _check(
            opts.trt or not flag,
            f"{name} only applies to TensorRT engines; add --trt or drop {name}",
        )
    _check(
        opts.dla_core is None or (type(opts.dla_core) is int and opts.dla_core >= 0),
        f"dla_core must be an integer >= 0 (received {opts.dla_core!r})",
    )
    _check_dla_profiles(opts)
    for p in opts.profiles:
        _check(
            len(p) == 3 and 1 <= p[0] <= p[1] <= p[2],
            f"batch profile {p} must satisfy 1 <= MIN <= OPT <= MAX",
        )
        _check(
            p[2] <= MAX_BATCH,
            f"batch profile {p}: MAX may be at most {MAX_BATCH} (engines size their buffers "
            "for it)",
        )
    if opts.triton is not None and Path(opts.triton).resolve() == Path(opts.out).resolve():
        raise BadInputError(
            "--triton and --out name the same folder; give the Triton repository its own folder."
        )
    if "bf16" in opts.precisions:  # before any work: the gate's backend must be there
        from genedge.errors import require
        from genedge.runtime.machine import bf16_support

        if bf16_support()[0]:
            require("openvino", "openvino", purpose="--precision bf16 (gated on OpenVINO)")
    # in stage order; bf16 (a gated hint on the fp32 file) only when asked for, never by default
    precisions = tuple(p for p in RUN_PRECISIONS if p in set(opts.precisions) | {"fp32"})
    return dataclasses.replace(
        opts, precisions=precisions, source=Path(opts.source), out=Path(opts.out)
    )


def _check_dla_profiles(opts: ExportOptions) -> None:
    """DLA runs static shapes only: every profile must have MIN = OPT = MAX (refused here, before
    any TensorRT or GPU probe, so the mistake shows on any machine)."""
    if opts.dla_core is None:
        return
    dynamic = [p for p in opts.profiles if len(set(p)) != 1]
    if dynamic:
        shown = ",".join(":".join(map(str, p)) for p in dynamic)
        fix = ",".join(f"{p[1]}:{p[1]}:{p[1]}" for p in opts.profiles)
        raise BadInputError(
            f"--dla-core {opts.dla_core} with --trt-profile {shown}: DLA runs static shapes only, so "
            "every profile needs MIN = OPT = MAX"
            + (" (the default profile is 1:8:32)." if opts.profiles == DEFAULT_PROFILES else "."),
            hint=f"Pass static batch sizes, e.g. --trt-profile {fix} (one profile per batch size you "
            "sample), or drop --dla-core to build for the GPU.",
        )


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise BadInputError(f"Invalid export options: {what}.")

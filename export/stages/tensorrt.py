"""TensorRT engines from the bundle's ONNX files (DESIGN.md s.5). UNVERIFIED without a GPU.

Two build paths, chosen by TensorRT version:

* ``strongly-typed`` (the only one on TensorRT >= 11): precision comes from the ONNX
  (``model.onnx`` fp32, ``model.fp16.onnx``, Q/DQ ``model.int8.onnx``).
* ``legacy`` (TensorRT 10.x only): fp32 ``model.onnx`` + BuilderFlag.FP16/INT8 and an
  entropy calibrator fed from the same latent prior, with a calibration cache keyed by
  the ONNX sha256 and the calibration settings. DLA INT8 on JetPack 6 needs it.

The top half (profiles, version switch, names, cache keys, records) is pure Python and
tested on CPU. Everything that touches ``tensorrt`` or CUDA is imported inside functions,
and TensorRT subclasses (calibrator, progress monitor) are defined inside factories. The
builder logs through the runtime's one process-wide TensorRT logger, and CUDA goes through
the runtime's cuda-python helpers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genedge.errors import BadInputError, IncompatibleEnvironmentError, require
from genedge.export.options import Profile
from genedge.export.stages.calibration import Feed
from genedge.precisions import onnx_file, trt_flags
from genedge.runtime.cuda import cuda_call, cuda_runtime, trt_logger
from genedge.runtime.trt_compat import check_dla

STRONGLY_TYPED, LEGACY = "strongly-typed", "legacy"


# ---------------------------------------------------------------- pure, CPU-tested
def parse_trt_version(version: str) -> tuple[int, int]:
    """``"10.3.0.30"`` -> (10, 3)."""
    parts = str(version).split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise BadInputError(f"Cannot read TensorRT version {version!r}.") from None


def choose_build_path(
    trt_version: str,
    *,
    requested: str = "auto",
    precision: str = "fp32",
    dla_core: int | None = None,
) -> str:
    """``strongly-typed`` or ``legacy`` for this TensorRT version and request.

    TensorRT >= 11 has only strongly typed networks; asking for ``legacy`` there is an
    IncompatibleEnvironmentError, and so is a DLA core on a TensorRT 11 without DLA (before
    11.4.1). On 10.x ``auto`` picks legacy only for DLA reduced precision.
    """
    major, _ = parse_trt_version(trt_version)
    check_dla(trt_version, dla_core)
    if requested not in ("auto", STRONGLY_TYPED, LEGACY):
        raise BadInputError(f"--trt-path {requested!r}: expected auto, strongly-typed or legacy.")
    if major >= 11:
        if requested == LEGACY:
            raise IncompatibleEnvironmentError(
                f"TensorRT {trt_version} removed the legacy precision flags and INT8 calibrators.",
                hint="Use --trt-path strongly-typed (the default), or TensorRT 10.x for the legacy path.",
            )
        return STRONGLY_TYPED
    if major < 10:
        raise IncompatibleEnvironmentError(
            f"TensorRT {trt_version} is too old; genedge builds engines with TensorRT 10 or 11.",
            hint="Install 'genedge[trt-cu12]' (TensorRT 10) or 'genedge[trt-cu13]' (TensorRT 11), "
            "or use JetPack 6's TensorRT.",
        )
    if requested != "auto":
        return requested
    return LEGACY if dla_core is not None and precision != "fp32" else STRONGLY_TYPED


def source_onnx_for(precision: str, path: str) -> str:
    """Which bundle ONNX an engine is built from."""
    if path == LEGACY:
        return "model.onnx"
    return onnx_file(precision)


def engine_file_name(precision: str, compute_capability: tuple[int, int], trt_version: str) -> str:
    """``model.<prec>.sm<CC>.trt<MAJOR.MINOR>.engine`` (docs/bundle.md)."""
    major, minor = parse_trt_version(trt_version)
    return f"model.{precision}.sm{compute_capability[0]}{compute_capability[1]}.trt{major}.{minor}.engine"


def profile_shapes(
    spec_inputs: list[dict[str, Any]], profile: Profile
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Per input: (min, opt, max) shapes, batch dim ``"B"`` replaced by the profile's sizes."""
    out = {}
    for t in spec_inputs:
        out[t["name"]] = tuple(
            tuple(b if d == "B" else int(d) for d in t["shape"]) for b in profile
        )
    return out


def calibration_cache_key(onnx_sha256: str, calibration: dict[str, Any], trt_version: str) -> str:
    """Key of a legacy calibration cache: ONNX hash + calibration settings + TensorRT major.minor."""
    blob = json.dumps(
        {"onnx": onnx_sha256, "calib": calibration, "trt": parse_trt_version(trt_version)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def reusable_calibration_cache(
    previous: dict[str, Any] | None, key: str, data: bytes | None
) -> bytes | None:
    """The old cache's bytes if its recorded key matches ``key``; None for a missing or stale cache."""
    if not previous or data is None:
        return None
    return data if (previous.get("calibration") or {}).get("cache_key") == key else None


def engine_record(
    *,
    trt_version: str,
    device_name: str,
    compute_capability: tuple[int, int],
    profiles: tuple[Profile, ...],
    version_compatible: bool,
    dla_core: int | None,
    built_from: str,
    path: str,
    gpu_fallback: bool | None = None,
) -> dict[str, Any]:
    """The manifest ``engine`` record of docs/bundle.md."""
    rec = {
        "tensorrt_version": trt_version,
        "device_name": device_name,
        "compute_capability": f"{compute_capability[0]}.{compute_capability[1]}",
        "profiles": [list(p) for p in profiles],
        "version_compatible": bool(version_compatible),
        "dla_core": dla_core,
        "built_from": built_from,
        "path": path,
    }
    if dla_core is not None:
        rec["gpu_fallback"] = bool(gpu_fallback)
    return rec


def rebatch(feeds: list[Feed], batch: int) -> list[Feed]:
    """Concatenate ``feeds`` and cut into full batches of ``batch`` rows (the calibration
    profile's OPT); a remainder is dropped. Fewer rows than one batch are repeated in order
    to fill exactly one (the calibrator's batch size is fixed; repeating rows leaves the
    ranges it observes unchanged)."""
    cat = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
    rows = len(next(iter(cat.values())))
    if rows == 0:
        raise BadInputError("The legacy INT8 path got no calibration samples.")
    if rows < batch:
        take = np.arange(batch) % rows
        return [{k: v[take] for k, v in cat.items()}]
    n = (rows // batch) * batch
    return [{k: v[i : i + batch] for k, v in cat.items()} for i in range(0, n, batch)]


# ---------------------------------------------------------------- TensorRT (GPU only)
def require_tensorrt():
    """Import tensorrt or raise MissingExtraError (exit 3) naming ``genedge[trt]``."""
    return require("tensorrt", "trt", purpose="--trt (building TensorRT engines)")


def _device_buffers(cudart, arrays: dict[str, np.ndarray], live: list[int]) -> dict[str, int]:
    """Device copies of ``arrays``; each pointer goes into ``live`` as soon as it exists, so
    a failure half-way leaves nothing unfreed."""
    ptrs = {}
    for k, a in arrays.items():
        a = np.ascontiguousarray(a)
        ptrs[k] = int(cuda_call(cudart.cudaMalloc(max(a.nbytes, 1))))
        live.append(ptrs[k])
        cuda_call(
            cudart.cudaMemcpy(
                ptrs[k], a.ctypes.data, a.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            )
        )
    return ptrs


def make_entropy_calibrator(
    feeds: list[Feed], cache: bytes | None, on_cache: Callable[[bytes], None]
):
    """An ``IInt8EntropyCalibrator2`` over ``feeds`` (same-sized batches), defined here so that
    importing this module never imports tensorrt."""
    trt, cudart = require_tensorrt(), cuda_runtime()

    class _EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._it, self._live = iter(feeds), []

        def get_batch_size(self) -> int:
            return len(next(iter(feeds[0].values())))

        def get_batch(self, names: list[str]) -> list[int] | None:
            for p in self._live:
                cudart.cudaFree(p)
            self._live = []  # freed: never freed twice, whatever TensorRT asks next
            feed = next(self._it, None)
            if feed is None:
                return None
            ptrs = _device_buffers(cudart, {n: feed[n] for n in names}, self._live)
            return [ptrs[n] for n in names]

        def read_calibration_cache(self) -> bytes | None:
            return cache

        def write_calibration_cache(self, data) -> None:
            on_cache(bytes(data))

    return _EntropyCalibrator()


def make_progress_monitor(log: Callable[[str], None]):
    """An ``IProgressMonitor`` forwarding builder phases to ``log``; None before TensorRT 10."""
    trt = require_tensorrt()
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            if parent_phase is None:
                log(f"TensorRT: {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name) -> None:
            pass

    return _Monitor()


@dataclass(frozen=True)
class EngineRequest:
    """One engine to build."""

    onnx_path: Path
    precision: str
    path: str  # STRONGLY_TYPED | LEGACY
    inputs: tuple[dict[str, Any], ...]  # manifest IO records of the graph
    profiles: tuple[Profile, ...]
    workspace_mb: int = 1024
    dla_core: int | None = None
    version_compatible: bool = False
    # per profile, every input's (min, opt, max) shape; replaces ``profiles`` (batch only) for
    # graphs with more symbolic dims than the batch (a text decoder's S and P)
    shapes: tuple[dict[str, tuple[tuple[int, ...], ...]], ...] = ()


@dataclass
class EngineBuild:
    """What ``engine_from_onnx`` produced: the raw plan and the updated caches."""

    plan: bytes
    timing_cache: bytes
    calibration_cache: bytes | None = None


def engine_from_onnx(
    req: EngineRequest,
    *,
    timing_cache: bytes | None = None,
    calibration_feeds: list[Feed] | None = None,
    calibration_cache: bytes | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> EngineBuild:
    """Build a raw TensorRT plan (bytes, no header) from ``req.onnx_path``. GPU only; unverified here."""
    trt = require_tensorrt()
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    flags = (
        1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        if req.path == STRONGLY_TYPED
        else 0
    )
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(req.onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BadInputError(f"TensorRT could not parse '{req.onnx_path.name}': {errors[:500]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, req.workspace_mb << 20)
    attach_timing_cache(config, timing_cache, log)
    monitor = make_progress_monitor(log)
    if monitor is not None:
        config.progress_monitor = monitor
    profiles = _add_profiles(builder, config, req)
    if req.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if req.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = req.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        log(f"TensorRT: DLA core {req.dla_core} with GPU fallback for unsupported layers")
    new_calib: list[bytes] = []
    if req.path == LEGACY:
        _legacy_precision(
            trt, config, req, profiles[0], calibration_feeds, calibration_cache, new_calib.append
        )
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise IncompatibleEnvironmentError(
            f"TensorRT failed to build the {req.precision} engine (see its log above)."
        )
    return EngineBuild(
        bytes(plan),
        bytes(config.get_timing_cache().serialize()),
        new_calib[-1] if new_calib else calibration_cache,
    )


def attach_timing_cache(config, data: bytes | None, log: Callable[[str], None]) -> None:
    """Give the builder the bundle's timing cache; one TensorRT refuses (another GPU or
    TensorRT version) is replaced by a fresh cache, with a warning, rather than failing later."""
    cache = config.create_timing_cache(data or b"")
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return
    log(
        "warning: the bundle's timing.cache is from another GPU or TensorRT version; "
        "building with a fresh one (it replaces the old cache in the bundle)"
    )
    fresh = config.create_timing_cache(b"")
    if not config.set_timing_cache(fresh, ignore_mismatch=False):
        raise IncompatibleEnvironmentError("TensorRT refused even an empty timing cache.")


def _add_profiles(builder, config, req: EngineRequest) -> list:
    profiles = []
    shapes = req.shapes or tuple(profile_shapes(list(req.inputs), p) for p in req.profiles)
    for shape in shapes:
        prof = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shape.items():
            prof.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(prof)
        profiles.append(prof)
    return profiles


def _legacy_precision(trt, config, req: EngineRequest, profile, feeds, cache, on_cache) -> None:
    flags = trt_flags(req.precision)
    if "INT8" in flags and not feeds:
        raise BadInputError("The legacy INT8 path needs calibration data.")
    # spelled out, not getattr: the API conformance test (tests/gpu_api) reads these uses
    if "FP16" in flags:
        config.set_flag(trt.BuilderFlag.FP16)
    if "INT8" in flags:
        config.set_flag(trt.BuilderFlag.INT8)
    if "INT8" in flags:
        config.set_calibration_profile(profile)
        opt_batch = req.profiles[0][1]
        config.int8_calibrator = make_entropy_calibrator(rebatch(feeds, opt_batch), cache, on_cache)

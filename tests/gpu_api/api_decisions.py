"""Our pure-Python TensorRT decision code, run against the real bindings' enums and versions.

Runs inside api_probe.py's subprocess (the real ``tensorrt`` and ``cuda.bindings`` modules
on stand-in libraries, no driver). Each ``check_*`` asserts; ``run_all`` reports each as
passed or with its error. Nothing here builds or runs an engine: the stand-in libraries
have no TensorRT in them, and there is no GPU.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

import numpy as np


def _major(trt: Any) -> int:
    return int(trt.__version__.split(".")[0])


def check_build_path_follows_the_version(trt: Any, cudart: Any) -> None:
    """choose_build_path on this TensorRT: legacy exists on 10 only, and never on 11."""
    from genedge.errors import IncompatibleEnvironmentError
    from genedge.export.stages.tensorrt import LEGACY, STRONGLY_TYPED, choose_build_path

    v = trt.__version__
    for prec in ("fp32", "fp16", "int8"):
        for dla in (None, 0):
            for requested in ("auto", STRONGLY_TYPED, LEGACY):
                try:
                    path = choose_build_path(v, requested=requested, precision=prec, dla_core=dla)
                except IncompatibleEnvironmentError:
                    assert _major(trt) >= 11, (v, requested, prec, dla)
                    continue
                if _major(trt) >= 11:
                    assert path == STRONGLY_TYPED, (v, requested, prec, dla, path)
                elif requested == "auto":
                    assert path == (
                        LEGACY if dla is not None and prec != "fp32" else STRONGLY_TYPED
                    )
    if _major(trt) >= 11:  # the legacy names are gone here: the version switch must refuse them
        assert not hasattr(trt.BuilderFlag, "INT8") and not hasattr(trt, "IInt8EntropyCalibrator2")
    else:
        assert hasattr(trt.BuilderFlag, "INT8") and hasattr(trt, "IInt8EntropyCalibrator2")


def check_engine_record_rules(trt: Any, cudart: Any) -> None:
    """check_engine_record with this TensorRT's own version string."""
    from genedge.errors import IncompatibleEnvironmentError, SecurityRefusal
    from genedge.manifest import EngineRecord
    from genedge.runtime.trt_backend import TrtEnvironment, check_engine_record

    v = trt.__version__
    env = TrtEnvironment(v, "8.7", "stand-in GPU")
    check_engine_record(EngineRecord(v, "8.7"), env, file="e.engine")  # same version, same GPU
    for refused in (EngineRecord(v, "9.0"), EngineRecord("9.0.0", "8.7")):
        try:
            check_engine_record(refused, env, file="e.engine")
        except IncompatibleEnvironmentError:
            pass
        else:
            raise AssertionError(f"accepted {refused} on TensorRT {v}")
    vc = EngineRecord(v, "8.7", version_compatible=True)
    try:
        check_engine_record(vc, env, file="e.engine")
    except SecurityRefusal:
        pass
    else:
        raise AssertionError("a version-compatible engine ran without the host-code opt-in")
    check_engine_record(vc, env, file="e.engine", allow_version_compatible=True)


def check_calibrator_factory(trt: Any, cudart: Any) -> None:
    """The legacy entropy calibrator (TensorRT 10 only) is a real IInt8EntropyCalibrator2 whose
    methods answer; its get_batch maps the missing driver's cudaError_t to exit 3."""
    from genedge.errors import IncompatibleEnvironmentError
    from genedge.export.stages.tensorrt import make_entropy_calibrator, rebatch

    if _major(trt) >= 11:
        return  # no calibrators on TensorRT 11 (check_build_path_follows_the_version)
    feeds = rebatch([{"z": np.zeros((3, 4), np.float32)}], 2)
    written: list[bytes] = []
    cal = make_entropy_calibrator(feeds, b"old-cache", written.append)
    assert isinstance(cal, trt.IInt8EntropyCalibrator2)
    assert isinstance(cal, trt.IInt8Calibrator)
    assert cal.get_batch_size() == 2
    assert cal.read_calibration_cache() == b"old-cache"
    cal.write_calibration_cache(memoryview(b"new-cache"))
    assert written == [b"new-cache"]
    try:
        cal.get_batch(["z"])
    except IncompatibleEnvironmentError as e:
        assert "cuda" in str(e).lower(), e
    else:
        raise AssertionError("get_batch allocated device memory without a GPU")


def check_logger(trt: Any, cudart: Any) -> None:
    """The process-wide TensorRT logger is an ILogger and maps Severity to logging levels."""
    from genedge.runtime.cuda import trt_logger

    logger = trt_logger(trt)
    assert isinstance(logger, trt.ILogger)
    assert trt_logger(trt) is logger, "one logger per process"
    seen: list[tuple[int, str]] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.levelno, record.getMessage()))

    target = logging.getLogger("genedge.runtime")
    handler, old = Catch(level=logging.DEBUG), target.level
    target.addHandler(handler)
    target.setLevel(logging.DEBUG)
    try:
        sev = trt.ILogger.Severity
        for s in (sev.INTERNAL_ERROR, sev.ERROR, sev.WARNING, sev.INFO, sev.VERBOSE):
            logger.log(s, f"message {s.name}")
    finally:
        target.removeHandler(handler)
        target.setLevel(old)
    levels = [lvl for lvl, _ in seen]
    want = [logging.ERROR, logging.ERROR, logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert levels == want, seen
    assert all("TensorRT" in m for _, m in seen), seen


def check_progress_monitor(trt: Any, cudart: Any) -> None:
    """The build progress monitor is an IProgressMonitor that logs top-level phases."""
    from genedge.export.stages.tensorrt import make_progress_monitor

    lines: list[str] = []
    mon = make_progress_monitor(lines.append)
    assert isinstance(mon, trt.IProgressMonitor)
    mon.phase_start("Building engine", None, 3)
    mon.phase_start("Tactic search", "Building engine", 9)
    assert mon.step_complete("Building engine", 1) is True
    mon.phase_finish("Building engine")
    assert lines == ["TensorRT: Building engine (3 steps)"], lines


def check_cuda_errors_and_probe(trt: Any, cudart: Any) -> None:
    """No driver here: a real cuda-python call fails with a cudaError_t, our unwrap turns it
    into exit 3, and probe_environment says "no TensorRT machine" (None)."""
    from genedge.errors import IncompatibleEnvironmentError
    from genedge.runtime.cuda import cuda_call, probe_environment

    err, _ = cudart.cudaGetDeviceProperties(0)
    assert int(err) != 0 and isinstance(err, cudart.cudaError_t)
    try:
        cuda_call(cudart.cudaGetDeviceProperties(0))
    except IncompatibleEnvironmentError as e:
        assert err.name in str(e), e
    else:
        raise AssertionError("cuda_call accepted a failed call")
    assert probe_environment() is None


def check_installed_versions(trt: Any, cudart: Any) -> None:
    """The compatibility rules read these wheels' metadata right, and accept this pair."""
    import cuda.bindings

    from genedge.errors import IncompatibleEnvironmentError
    from genedge.runtime.trt_compat import (
        check_cuda_python,
        check_dla,
        installed_cuda_python,
        installed_tensorrt,
    )

    inst = installed_tensorrt()
    assert inst is not None and inst.version == trt.__version__, inst
    assert inst.cuda_major == (12 if _major(trt) == 10 else 13), inst
    assert installed_cuda_python() == cuda.bindings.__version__
    check_cuda_python(inst, installed_cuda_python())
    other = "13.0.0" if inst.cuda_major == 12 else "12.9.0"
    try:
        check_cuda_python(inst, other)
    except IncompatibleEnvironmentError:
        pass
    else:
        raise AssertionError(f"TensorRT for CUDA {inst.cuda_major} accepted cuda-python {other}")
    if _major(trt) == 10:
        check_dla(trt.__version__, 0)


CHECKS = [v for k, v in sorted(globals().items()) if k.startswith("check_")]


def run_all(mods: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for check in CHECKS:
        try:
            check(mods["tensorrt"], mods["cudart"])
            out.append({"name": check.__name__, "ok": True, "error": None})
        except BaseException:
            out.append({"name": check.__name__, "ok": False, "error": traceback.format_exc()})
    return out

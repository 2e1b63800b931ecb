"""CUDA and TensorRT glue shared by the backends, export's engine builder and the bench.

cuda-python's runtime module and its error convention (``cuda_runtime``, ``cuda_call``),
what this machine offers engines (``probe_environment`` -> ``TrtEnvironment``: TensorRT
version, compute capability, GPU name) and the process's one TensorRT logger
(``trt_logger``). Importing this module imports neither tensorrt nor cuda-python: both
load inside the functions that need them, and the logger subclass is built in a factory.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from genedge.errors import IncompatibleEnvironmentError, require

from .trt_compat import check_cuda_python, check_driver, installed_cuda_python, installed_tensorrt

log = logging.getLogger("genedge.runtime")


@dataclass(frozen=True)
class TrtEnvironment:
    """This machine as far as engines care: TensorRT version and the GPU."""

    tensorrt_version: str  # "10.3.0"
    compute_capability: str  # "8.7"
    device_name: str
    integrated: bool = False  # Jetson-style shared memory


def cuda_runtime() -> Any:
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (>= 12.6) or ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime  # type: ignore[import-not-found]

        return runtime
    except ImportError:
        return require("cuda.cudart", "trt", purpose="the native TensorRT backend")


def cuda_call(result: Any) -> Any:
    """Unpack cuda-python's ``(err, *values)`` and raise on error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise IncompatibleEnvironmentError(f"CUDA call failed: {err!r}.")
    return values[0] if len(values) == 1 else (tuple(values) if values else None)


def probe_environment(device: int = 0) -> TrtEnvironment | None:
    """TensorRT version and GPU of this machine, or ``None`` when either is missing.

    Installed packages that cannot work together are not "no GPU": a TensorRT wheel and
    cuda-python of different CUDA majors, or a cuda-python newer than the driver, raise
    ``IncompatibleEnvironmentError`` (exit 3) naming the versions.
    """
    try:
        trt = require("tensorrt", "trt")
        cudart = cuda_runtime()
    except Exception as e:  # no package: not a TensorRT machine
        log.debug("native TensorRT unavailable: %s", e)
        return None
    check_cuda_python(installed_tensorrt(trt.__version__), installed_cuda_python())
    try:
        prop = cuda_call(cudart.cudaGetDeviceProperties(device))
    except Exception as e:  # no driver, no GPU, or a driver too old for these bindings
        _check_driver(cudart)
        log.debug("native TensorRT unavailable: %s", e)
        return None
    name = (
        prop.name.decode(errors="replace").rstrip("\x00")
        if isinstance(prop.name, bytes)
        else str(prop.name)
    )
    return TrtEnvironment(
        trt.__version__, f"{prop.major}.{prop.minor}", name, bool(prop.integrated)
    )


def _check_driver(cudart: Any) -> None:
    """Raise (exit 3) when the driver is older than the CUDA major cuda-python binds."""
    try:
        err, version = cudart.cudaDriverGetVersion()
    except Exception:  # no driver library at all: plainly no GPU
        return
    if int(err) == 0:
        check_driver(int(version), installed_cuda_python())


_LOGGER: Any = None
_LOGGER_LOCK = threading.Lock()


def trt_logger(trt: Any) -> Any:
    """The process's one TensorRT logger (built on first use, then kept for the process).

    TensorRT takes the logger of the first Builder/Runtime/Refitter for the whole process;
    a logger per object would leave TensorRT calling one that may have been freed.
    """
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            _LOGGER = _make_logger(trt)
        return _LOGGER


def _make_logger(trt: Any) -> Any:
    """A TensorRT logger forwarding to ``logging`` (subclass built here, not at import)."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            log.log(levels.get(severity, logging.DEBUG), "TensorRT: %s", msg)

    sev = trt.ILogger.Severity
    levels = {
        sev.INTERNAL_ERROR: logging.ERROR,
        sev.ERROR: logging.ERROR,
        sev.WARNING: logging.WARNING,
        sev.INFO: logging.DEBUG,
    }

    return _Logger()

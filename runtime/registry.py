"""Every backend the runtime can open, one line each, in ``auto``'s order (GPU first).

Each backend file declares its ``BackendSpec`` (``runtime.backend``): its name, how it
opens a file, its options type, whether it is available here, which precisions it runs.
``select`` (opening), ``tune`` (measuring) and ``bench`` (timing) read this list; adding a
backend is its file plus one line here.
"""

from __future__ import annotations

from genedge.errors import BadInputError

from . import openvino_backend, ort_backend, trt_backend
from .backend import BackendSpec

SPECS: list[BackendSpec] = [
    trt_backend.SPEC,
    ort_backend.ORT_TRT,
    ort_backend.ORT_CUDA,
    ort_backend.ORT_CPU,
    openvino_backend.SPEC,
]
AUTO = "auto"  # not a backend: the choice among them (``select``)


def names() -> tuple[str, ...]:
    """Every backend's name, in the registry's order."""
    return tuple(s.name for s in SPECS)


def spec(name: str) -> BackendSpec:
    """The spec of ``name``; ``BadInputError`` (exit 2) naming the known ones otherwise."""
    for s in SPECS:
        if s.name == name:
            return s
    raise BadInputError(f"Unknown backend {name!r}; expected one of {', '.join((AUTO, *names()))}.")


def available() -> list[BackendSpec]:
    """The backends whose libraries (and device) are here, in ``auto``'s order."""
    return [s for s in SPECS if s.available()]


def reference() -> BackendSpec:
    """The backend export's speed record times every artifact on (ONNX Runtime CPU)."""
    return next(s for s in SPECS if s.reference)

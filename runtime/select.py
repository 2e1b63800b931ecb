"""Choosing and opening a backend for one graph of a bundle.

``backend="auto"``: the fastest (backend, precision) ``runtime.tune`` knows for the batch
asked (this machine's tuning, ``genedge tune BUNDLE``; else export's CPU speed record where
no GPU backend applies); without either, the first backend of ``runtime.registry`` in
``auto``'s order that is available and opens (native TensorRT when an engine matches this
GPU, then ONNX Runtime CUDA, then ONNX Runtime CPU). The choice and its reason are logged
on the ``genedge.runtime`` logger. The precision of a named backend, when not given, is
its default (``runtime.artifacts``). A backend named explicitly that is unavailable raises
``IncompatibleEnvironmentError`` (exit 3): never a silent fallback.
"""

from __future__ import annotations

import logging

from genedge.errors import BadInputError, GenedgeError, IncompatibleEnvironmentError, printable
from genedge.manifest import Manifest
from genedge.precisions import INFERENCE_PRECISIONS

from . import registry
from .artifacts import default_artifact, onnx_artifact, onnx_artifacts
from .backend import Backend, BackendSpec
from .engines import matching_engines
from .opening import (
    backend_names,
    check_names,
    checked_io,
    open_file,
    open_named,
    open_spec,
    read_bundle,
)
from .options import BackendOptions, backend_options, validate_options
from .tune import fastest

__all__ = [
    "BackendOptions",
    "backend_names",
    "backend_options",
    "check_names",
    "default_artifact",
    "matching_engines",
    "onnx_artifact",
    "onnx_artifacts",
    "open_backend",
    "open_file",
    "open_named",
    "read_bundle",
    "validate_options",
]

log = logging.getLogger("genedge.runtime")


def open_backend(
    manifest: Manifest,
    graph: str,
    backend: str = "auto",
    precision: str | None = None,
    options: BackendOptions | None = None,
    int_ranges: dict[str, tuple[int, int]] | None = None,
) -> Backend:
    """Open ``graph`` of ``manifest`` on ``backend`` (``auto`` or a registered name); its tensors
    are checked against the manifest's I/O spec for the graph."""
    if backend != registry.AUTO:
        return open_named(manifest, graph, backend, precision, options, int_ranges)
    precision = None if precision == "auto" else precision  # "auto" is the default's name
    check_names(backend, precision)
    b = _open_auto(manifest, graph, precision, options or BackendOptions(), int_ranges)
    return checked_io(manifest, graph, b)


def _open_auto(
    manifest: Manifest,
    graph: str,
    precision: str | None,
    opts: BackendOptions,
    int_ranges: dict[str, tuple[int, int]] | None,
) -> Backend:
    measured = _open_fastest(manifest, graph, precision, opts, int_ranges)
    if measured is not None:
        return measured
    candidates = auto_candidates(manifest, graph, precision)
    tried = []
    for spec in candidates:
        try:
            b = open_spec(manifest, graph, spec, precision, opts, int_ranges)
        except (IncompatibleEnvironmentError, BadInputError) as e:
            # not here, or no such precision among this backend's artifacts: the next one
            if spec is candidates[-1]:
                raise
            tried.append(f"{spec.name}: {e.message}")
            continue
        log.info(
            "backend auto -> %s (%s, %s, %s)%s",
            b.info.name,
            b.info.provider,
            b.info.precision,
            b.info.file,
            f"; skipped {'; '.join(tried)}" if tried else "",
        )
        return b
    raise AssertionError("unreachable: the last candidate raises")


def auto_candidates(manifest: Manifest, graph: str, precision: str | None) -> list[BackendSpec]:
    """The backends ``auto``'s fixed rule tries, in order: those available here (an engine
    backend only where the bundle holds engines for ``graph``), ending with the reference
    CPU backend; a hint precision (bf16) only on the backend that applies it."""
    if precision in INFERENCE_PRECISIONS:
        return [registry.spec(INFERENCE_PRECISIONS[precision])]
    out = [
        s
        for s in registry.SPECS
        if s.in_auto
        and not s.reference
        and (s.artifact != "engine" or manifest.find(graph=graph, format="engine"))
        and s.available()
    ]
    return [*out, registry.reference()]


def gpu_possible(manifest: Manifest, graph: str) -> bool:
    """Whether ``auto``'s fixed rule would try a GPU backend first: export's CPU record then
    does not decide."""
    return any(s.device == "gpu" for s in auto_candidates(manifest, graph, None))


def _open_fastest(
    manifest: Manifest,
    graph: str,
    precision: str | None,
    opts: BackendOptions,
    int_ranges: dict[str, tuple[int, int]] | None,
) -> Backend | None:
    """The (backend, precision) ``tune.fastest`` picks for ``opts.batch``, or None (nothing
    measured, or its choice cannot open here now) for the fixed rule to decide."""
    choice = fastest(manifest, graph, precision, opts, gpu=gpu_possible(manifest, graph))
    if choice is None:
        return None
    c = choice.candidate
    try:
        b = open_spec(manifest, graph, registry.spec(c.backend), c.precision, opts, int_ranges)
    except GenedgeError as e:
        log.warning("backend auto: %s %s cannot open (%s); fixed rule", choice.source, c.label, e)
        return None
    log.info(
        "backend auto -> %s (%s): %s",
        printable(c.label, 40),
        printable(b.info.file),
        printable(choice.why, 400),
    )
    return b

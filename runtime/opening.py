"""Opening a named backend: the bundle read and hash-checked, names checked against the
registry and the precision table, the artifact resolved for the backend (``artifacts``,
``engines``) and handed to its spec's opener. ``select`` adds the choice behind ``auto``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genedge.errors import BadInputError
from genedge.manifest import (
    MANIFEST_NAME,
    EngineRecord,
    Manifest,
    engine_record_from,
    read_manifest,
)
from genedge.precisions import INFERENCE_PRECISIONS, RUN_PRECISIONS

from . import registry
from .artifacts import onnx_artifact, require_supported
from .backend import Backend, BackendSpec, OpenRequest, TensorSpec
from .engines import engine_artifact, engine_record
from .iospec import check_declared, check_io_spec
from .options import BackendOptions


def backend_names() -> tuple[str, ...]:
    """``auto`` and every registered backend: what ``--backend`` accepts."""
    return (registry.AUTO, *registry.names())


def read_bundle(bundle: str | os.PathLike) -> Manifest:
    """The bundle's manifest, with every ONNX graph's hash checked now (exit 4 on a mismatch).

    The file a backend opens is hashed again right before it is parsed; checking the other
    graphs too means a damaged bundle is refused as a whole, whichever file ``auto`` would
    pick. Engines, being large and machine-specific, are checked when opened.
    """
    path = Path(bundle)
    if (
        path.name == MANIFEST_NAME and path.is_file()
    ):  # the manifest itself: its folder is the bundle
        path = path.parent
    manifest = read_manifest(path)
    for artifact in manifest.find(format="onnx"):
        manifest.path_of(artifact)
    return manifest


def check_names(backend: str, precision: str | None) -> None:
    """Refuse (exit 2) a backend or precision name nobody registered."""
    if backend != registry.AUTO:
        registry.spec(backend)
    if precision is not None and precision not in RUN_PRECISIONS:
        raise BadInputError(
            f"Unknown precision {precision!r}; expected one of {', '.join(RUN_PRECISIONS)}."
        )


def open_file(
    path: str | os.PathLike,
    backend: str | None = None,
    precision: str = "fp32",
    options: BackendOptions | None = None,
    *,
    inputs: Sequence[TensorSpec] | None = None,
    outputs: Sequence[TensorSpec] | None = None,
    engine: EngineRecord | dict[str, Any] | None = None,
) -> Backend:
    """Open one ONNX file, or one TensorRT engine with ``backend="tensorrt"``, that no manifest
    lists yet (a file export has just written): the same backend classes ``open_backend`` uses.

    No hash is checked, since only a manifest records one: open files you wrote or trust.
    ``engine`` is the engine's record (an ``EngineRecord``, or its dict as a manifest holds it:
    TensorRT version, compute capability, ``version_compatible``, ``dla_core``), checked
    against this machine; an engine backend needs it.
    ``inputs``/``outputs``, when given, are the tensors the file must declare (names, dtypes,
    ranks, fixed dims); a mismatch raises ``CorruptArtifactError`` (exit 2). ``backend``
    None: the reference CPU backend (ONNX Runtime CPU).
    """
    backend = registry.reference().name if backend is None else backend
    check_names(backend, precision)
    if backend == registry.AUTO:
        raise BadInputError("open_file runs one file: name its backend, not 'auto'.")
    spec = registry.spec(backend)
    runner = INFERENCE_PRECISIONS.get(precision)
    if runner is not None and runner != spec.name:
        raise BadInputError(
            f"Precision {precision} runs on backend '{runner}' only; received backend '{backend}'."
        )
    if isinstance(engine, dict):
        engine = engine_record_from(engine, f"Engine record for '{Path(path).name}'")
    if spec.artifact == "engine" and engine is None:
        raise BadInputError(f"open_file with backend '{backend}' needs the engine's record.")
    declared = (*(inputs or ()), *(outputs or ()))
    request = OpenRequest(options or BackendOptions(), declared=declared, engine=engine)
    b = spec.open(Path(path), precision, request)
    try:
        check_declared(b, inputs, outputs)
    except BaseException:
        b.close()
        raise
    return b


def open_spec(
    manifest: Manifest,
    graph: str,
    spec: BackendSpec,
    precision: str | None,
    opts: BackendOptions,
    int_ranges: dict[str, tuple[int, int]] | None = None,
) -> Backend:
    """Resolve ``graph``'s artifact for ``spec`` (the precision asked for, or its default),
    check its hash and open it."""
    if precision is not None and precision in spec.precisions:
        require_supported(spec, precision)  # exit 3 before anything else is said about it
    if spec.artifact == "engine":
        artifact = engine_artifact(manifest, graph, spec, precision, opts)
        record = engine_record(artifact, manifest.root)
    else:
        artifact, record = onnx_artifact(manifest, graph, spec, precision), None
    path = manifest.path_of(artifact)  # sha256 (external data included) before anything parses it
    io = manifest.graphs.get(graph)
    request = OpenRequest(
        opts,
        int_ranges=int_ranges,
        declared=() if io is None else (*io.inputs, *io.outputs),
        engine=record,
        sha256=artifact.sha256,
    )
    return spec.open(path, artifact.precision or "fp32", request)


def open_named(
    manifest: Manifest,
    graph: str,
    backend: str,
    precision: str | None = None,
    options: BackendOptions | None = None,
    int_ranges: dict[str, tuple[int, int]] | None = None,
) -> Backend:
    """Open ``graph`` on the registered ``backend``; its tensors are checked against the
    manifest's I/O spec for the graph."""
    precision = None if precision == "auto" else precision
    check_names(backend, precision)
    spec = registry.spec(backend)
    b = open_spec(manifest, graph, spec, precision, options or BackendOptions(), int_ranges)
    return checked_io(manifest, graph, b)


def checked_io(manifest: Manifest, graph: str, b: Backend) -> Backend:
    """``b`` once its tensors match the manifest's I/O spec; closed before a mismatch raises."""
    try:
        check_io_spec(manifest, graph, b)
    except BaseException:
        b.close()
        raise
    return b

"""Which TensorRT engine of a bundle to open here: the one asked for, checked against this
machine, or the best that matches (approved int8, then fp16, then fp32)."""

from __future__ import annotations

import logging
from typing import Any

from genedge.errors import (
    BadInputError,
    CorruptArtifactError,
    GenedgeError,
    IncompatibleEnvironmentError,
    printable,
)
from genedge.manifest import Artifact, EngineRecord, Manifest
from genedge.precisions import REFERENCE

from . import registry
from .artifacts import qualifies
from .backend import BackendSpec
from .trt_backend import check_engine_record, trt_environment

log = logging.getLogger("genedge.runtime")


def matching_engines(
    manifest: Manifest,
    graph: str,
    env,
    *,
    allow_version_compatible: bool,
    prefer: tuple[str, ...] | None = None,
) -> list[Artifact]:
    """Engines for ``graph`` that this machine can run and ``auto`` may pick, best first
    (``prefer``, default the engine backend's, then fp32)."""
    if prefer is None:
        prefer = next(s for s in registry.SPECS if s.artifact == "engine").prefer
    ok = []
    for a in manifest.find(graph=graph, format="engine"):
        if a.engine is None:
            continue
        try:
            check_engine_record(
                a.engine,
                env,
                file=a.file,
                bundle=manifest.root,
                allow_version_compatible=allow_version_compatible,
            )
        except GenedgeError as e:
            log.debug("engine %s skipped: %s", printable(a.file), e)
            continue
        if qualifies(a):
            ok.append(a)
    rank = {p: i for i, p in enumerate((*prefer, REFERENCE))}
    return sorted(ok, key=lambda a: rank.get(a.precision or "fp32", len(rank)))


def engine_record(a: Artifact, bundle: Any) -> EngineRecord:
    if a.engine is None:  # a hand-made bundle may list an engine without its record
        raise CorruptArtifactError(
            f"Engine '{printable(a.file)}' has no engine record.",
            hint=f"Rebuild it: genedge export CKPT --out {bundle} --trt",
        )
    return a.engine


def engine_artifact(
    manifest: Manifest, graph: str, spec: BackendSpec, precision: str | None, opts: Any
) -> Artifact:
    """The engine of ``graph`` to open on this machine, checked against its TensorRT and GPU."""
    env = trt_environment(opts.device_id)
    engines = manifest.find(graph=graph, format="engine", precision=precision)
    if precision is not None:
        if not engines:
            have = ", ".join(
                f"{a.file} ({a.precision})" for a in manifest.find(graph=graph, format="engine")
            )
            raise BadInputError(
                f"Bundle has no {precision} TensorRT engine for '{graph}'; engines: {have or 'none'}.",
                hint=f"Pass another --precision, or rebuild: genedge export CKPT --out {manifest.root} "
                f"--precision {precision} --trt",
            )
        check_engine_record(
            engine_record(engines[0], manifest.root),
            env,
            file=engines[0].file,
            bundle=manifest.root,
            allow_version_compatible=opts.allow_version_compatible,
        )
        return engines[0]
    ok = matching_engines(
        manifest,
        graph,
        env,
        allow_version_compatible=opts.allow_version_compatible,
        prefer=spec.prefer,
    )
    if not ok:
        names = (
            ", ".join(a.file for a in engines or manifest.find(graph=graph, format="engine"))
            or "none"
        )
        raise IncompatibleEnvironmentError(
            f"No TensorRT engine for '{graph}' matches this machine (TensorRT {env.tensorrt_version}, "
            f"sm{env.compute_capability.replace('.', '')}, {env.device_name}); engines in the bundle: {names}.",
            hint=f"Rebuild on this machine: genedge export CKPT --out {manifest.root} --trt",
        )
    return ok[0]

"""Choosing and opening a backend for one graph of a bundle.

``backend="auto"``: the (backend, precision) this machine's tuning measured fastest for
the batch asked (``runtime.tune``; ``genedge tune BUNDLE``); without a tuning, native
TensorRT when an engine in the bundle matches this GPU and TensorRT, then ONNX Runtime
CUDA, then ONNX Runtime CPU. The choice and its reason are logged on the
``genedge.runtime`` logger. Precision when not given: on ``ort-cpu`` int8 if the bundle
has a ``quality_approved`` int8 graph, else fp32; on ``ort-cuda``/``ort-trt`` fp16 if
its verification passed, else fp32; on ``tensorrt`` the best matching engine (approved
int8, then fp16, then fp32); on ``openvino`` approved int8, then approved bf16 where the
CPU has it, else fp32. A backend named explicitly that is unavailable raises
``IncompatibleEnvironmentError`` (exit 3): never a silent fallback.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genedge.errors import (
    BadInputError,
    CorruptArtifactError,
    GenedgeError,
    IncompatibleEnvironmentError,
    printable,
)
from genedge.limits import check_threads
from genedge.manifest import (
    INFERENCE_PRECISIONS,
    MANIFEST_NAME,
    RUN_PRECISIONS,
    Artifact,
    EngineRecord,
    Manifest,
    engine_record_from,
    read_manifest,
)

from .backend import Backend, TensorSpec

log = logging.getLogger("genedge.runtime")
BACKENDS = ("auto", "ort-cpu", "ort-cuda", "ort-trt", "tensorrt", "openvino")


@dataclass(frozen=True)
class BackendOptions:
    """Everything a backend takes besides the artifact. ``threads``: ORT intra-op threads."""

    threads: int | None = None
    inter_op_threads: int | None = None
    graph_optimization: str = "all"
    check_inputs: bool = True
    allow_version_compatible: bool = False  # TensorRT engines carrying host code
    cuda_graphs: bool = False
    device_id: int = 0
    # ORT worker threads spin between runs: lowest latency back to back, but they burn the
    # cores between paced frames (battery, thermals, other work on a 2-core edge box).
    spin: bool = True
    static_shapes: bool = True  # openvino: one compiled model per batch size (see openvino_backend)
    batch: int | None = None  # auto: the batch size to choose for (tuned choice; None: 1)
    tune: bool = False  # auto: measure now when this machine has no tuning for the bundle


def backend_options(**fields: object) -> BackendOptions:
    """``BackendOptions`` from keyword arguments, naming the valid ones on a typo."""
    known = set(BackendOptions.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise BadInputError(
            f"Unknown backend option(s) {unknown}; expected some of {sorted(known)}."
        )
    opts = BackendOptions(**fields)  # type: ignore[arg-type]
    validate_options(opts)
    return opts


def validate_options(opts: BackendOptions) -> None:
    """Refuse (exit 2) option values no backend could use, naming the field."""
    from .ort_backend import GRAPH_OPT_LEVELS  # numpy + stdlib only: onnxruntime stays unimported

    for name in ("threads", "inter_op_threads"):
        check_threads(name, getattr(opts, name))
    if opts.graph_optimization not in GRAPH_OPT_LEVELS:
        raise BadInputError(
            f"graph_optimization {opts.graph_optimization!r} is not one of {GRAPH_OPT_LEVELS}."
        )
    if type(opts.device_id) is not int or opts.device_id < 0:
        raise BadInputError(f"device_id {opts.device_id!r}: expected an integer >= 0.")
    if opts.batch is not None and (type(opts.batch) is not int or opts.batch < 1):
        raise BadInputError(
            f"batch {opts.batch!r}: expected the batch size auto chooses for, an integer >= 1."
        )
    for name in ("tune", "static_shapes"):
        if type(getattr(opts, name)) is not bool:
            raise BadInputError(f"{name} {getattr(opts, name)!r}: expected True or False.")


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
    if backend not in BACKENDS:
        raise BadInputError(f"Unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}.")
    if precision is not None and precision not in RUN_PRECISIONS:
        raise BadInputError(
            f"Unknown precision {precision!r}; expected one of {', '.join(RUN_PRECISIONS)}."
        )


def _passed(a: Artifact) -> bool:
    return a.verification.passed


def onnx_artifacts(manifest: Manifest, graph: str) -> dict[str, Artifact]:
    """``{precision: Artifact}`` of ``graph``'s ONNX files, plus the precisions the fp32 file
    runs in by a backend's hint (``bf16``): those appear as the fp32 file with the hint's
    precision, verification and approval."""
    found = {a.precision or "fp32": a for a in manifest.find(graph=graph, format="onnx")}
    fp32 = found.get("fp32")
    hints = fp32.inference_precisions if fp32 is not None else None
    for prec, rec in hints.entries.items() if hints is not None else ():
        found[prec] = dataclasses.replace(
            fp32,
            precision=prec,
            verification=rec.verification,
            quality_approved=rec.quality_approved,
            speed=None,
            inference_precisions=None,
        )
    return found


def _hinted(manifest: Manifest, graph: str, backend: str, precision: str) -> Artifact:
    """The fp32 file for a precision the bundle holds no record of (``bf16`` not gated at
    export): runs when asked for by name on its backend, with a warning."""
    runner = INFERENCE_PRECISIONS[precision]
    if backend != runner:
        raise BadInputError(
            f"Precision {precision} runs on backend '{runner}' only; received backend '{backend}'.",
            hint=f"Pass --backend {runner} --precision {precision}.",
        )
    fp32 = onnx_artifacts(manifest, graph).get("fp32")
    if fp32 is None:
        raise BadInputError(f"Bundle has no fp32 ONNX graph for '{graph}' to run in {precision}.")
    log.warning(
        "%s in %s was not quality-gated at export (no manifest record); running it because it "
        "was asked for. Re-export with --precision %s on a CPU that has it to gate it.",
        printable(fp32.file),
        precision,
        precision,
    )
    return dataclasses.replace(fp32, precision=precision, quality_approved=False)


def onnx_artifact(manifest: Manifest, graph: str, backend: str, precision: str | None) -> Artifact:
    """The ONNX file to run for ``graph``: the precision asked for, or the default for ``backend``."""
    found = onnx_artifacts(manifest, graph)
    if precision in INFERENCE_PRECISIONS and backend != INFERENCE_PRECISIONS[precision]:
        return _hinted(manifest, graph, backend, precision)  # raises: wrong backend
    if precision in INFERENCE_PRECISIONS and precision not in found and found:
        return _hinted(manifest, graph, backend, precision)
    if backend != "openvino":  # a hint only the openvino backend applies
        found = {p: a for p, a in found.items() if p not in INFERENCE_PRECISIONS}
    if not found:
        raise BadInputError(
            f"Bundle '{manifest.root}' has no ONNX graph '{graph}'.",
            hint="Re-export the bundle with `genedge export`.",
        )
    if precision is not None:
        if precision not in found:
            raise BadInputError(
                f"Bundle has no {precision} ONNX graph for '{graph}'; it has {', '.join(sorted(found))}.",
                hint=f"Pass --precision {sorted(found)[0]}, or re-export with --precision {precision}.",
            )
        if not _passed(found[precision]):
            log.warning(
                "%s failed its export verification; running it because it was asked for",
                printable(found[precision].file),
            )
        return found[precision]
    if backend == "ort-cpu":
        measured = fastest_measured(found)
        if measured is not None:
            log.info("precision auto -> %s on ort-cpu: %s", measured[0].precision, measured[1])
            return measured[0]
    if backend in ("ort-cpu", "openvino") and "int8" in found and found["int8"].quality_approved:
        log.info("precision auto -> int8 on %s: quality-approved (no speed record)", backend)
        return found["int8"]
    if backend == "openvino" and _bf16_ok(found):
        log.info("precision auto -> bf16 on openvino: quality-approved and this CPU has it")
        return found["bf16"]
    if backend in ("ort-cuda", "ort-trt") and "fp16" in found and _passed(found["fp16"]):
        log.info("precision auto -> fp16 on %s: it passed its export checks", backend)
        return found["fp16"]
    if "fp32" not in found:
        raise BadInputError(f"Bundle has no fp32 ONNX graph for '{graph}'; pass --precision.")
    if len(found) > 1:
        log.info("precision auto -> fp32 on %s: no reduced precision qualifies", backend)
    return found["fp32"]


def _bf16_ok(found: dict[str, Artifact]) -> bool:
    if "bf16" not in found or not (found["bf16"].quality_approved and _passed(found["bf16"])):
        return False
    from .machine import bf16_support

    return bf16_support()[0]


MIN_SPEEDUP = 1.05  # a reduced precision must beat fp32 by this factor: not by timing noise


def fastest_measured(found: dict[str, Artifact]) -> tuple[Artifact, str] | None:
    """From ``{precision: Artifact}``: the quality-approved artifact with the lowest batch-1 p50
    in the bundle's CPU ``speed`` records, never one measured slower than fp32 at any batch;
    with the reason, for the log. None when fp32 has no speed record (older bundles)."""
    fp32 = found.get("fp32")
    ref = _speed_p50s(fp32) if fp32 else {}
    if not ref:
        return None
    if fp32.speed.busy:  # its numbers decide nothing: the reference, never slower than itself
        return fp32, (
            "export's speed record was taken on a busy machine, so it is not used; fp32 until "
            "`genedge tune BUNDLE` measures this machine"
        )
    best, best_ms = fp32, ref.get("1", min(ref.values()))
    for prec, a in found.items():
        mine = _speed_p50s(a)
        if prec == "fp32" or not (a.quality_approved and _passed(a)) or set(mine) != set(ref):
            continue
        if any(mine[b] > ref[b] for b in ref):
            continue
        ms = mine.get("1", min(mine.values()))
        if ms * MIN_SPEEDUP <= ref.get("1", min(ref.values())) and ms < best_ms:
            best, best_ms = a, ms
    b = "1" if "1" in ref else min(ref)
    others = ", ".join(
        f"{prec} {_speed_p50s(a).get(b, float('nan')):.3g} ms"
        for prec, a in found.items()
        if prec != "fp32"
    )
    if best is fp32:
        why = (
            f"no quality-approved artifact measured at export at least {MIN_SPEEDUP:.2f}x faster "
            f"than fp32 and no slower at any batch (batch {b}: fp32 {ref[b]:.3g} ms"
            f"{', ' + others if others else ''})"
        )
    else:
        why = (
            f"the fastest quality-approved artifact in the bundle's export-time CPU measurement "
            f"(batch {b}: {best_ms:.3g} ms vs fp32 {ref[b]:.3g} ms)"
        )
    return best, why


def fastest_cpu(
    found: dict[str, Artifact], batch: int, backends: Sequence[str]
) -> tuple[str, Artifact, str] | None:
    """From export's speed records (``found``: ``{precision: Artifact}``): the quality-approved
    (backend, artifact) of ``backends`` with the lowest p50 at the measured batch nearest
    ``batch``, and why, for the log. None without a usable record (none, or taken on a busy
    machine), or when nothing beats ONNX Runtime fp32 by ``MIN_SPEEDUP`` there (the fixed
    rule then decides, as it would without a record)."""
    fp32 = found.get("fp32")
    if fp32 is None or fp32.speed is None or not fp32.speed.batch:
        return None
    if fp32.speed.busy:
        log.info("backend auto: export's speed record was taken on a busy machine; not used")
        return None
    b = min(fp32.speed.batch, key=lambda m: (abs(math.log(m / max(batch, 1))), m))
    ref = fp32.speed.batch[b].p50_ms
    options = []
    for prec, a in found.items():
        if a.speed is None or a.speed.busy or prec in INFERENCE_PRECISIONS:
            continue
        if prec != "fp32" and not (a.quality_approved and _passed(a)):
            continue
        times = {"ort-cpu": a.speed.p50s().get(b)}
        times.update({k: v.get(b) for k, v in a.speed.others.items()})
        options += [(ms, k, prec) for k, ms in times.items() if ms is not None and k in backends]
    if not options:
        return None
    ms, backend, prec = min(options)
    if (backend, prec) == ("ort-cpu", "fp32") or ms * MIN_SPEEDUP > ref:
        return None
    shown = ", ".join(f"{k} {p} {t:.3g} ms" for t, k, p in sorted(options)[:4])
    why = (
        f"the fastest quality-approved (backend, precision) in export's CPU speed record at "
        f"batch {b} ({shown}); `genedge tune` measures it on this machine"
    )
    return backend, found[prec], why


def auto_precision_note(manifest: Manifest, graph: str) -> str | None:
    """Why ``precision=None`` on ``ort-cpu`` picks what it picks, when the bundle's speed
    record decided it (None otherwise): for the CLI to say so."""
    found = {a.precision or "fp32": a for a in manifest.find(graph=graph, format="onnx")}
    measured = fastest_measured(found)
    return None if measured is None else f"{measured[0].precision}, {measured[1]}"


def _speed_p50s(a: Artifact) -> dict[str, float]:
    """``{batch: p50_ms}`` of an artifact's speed record ({} without one), batch as text."""
    return {} if a.speed is None else {str(b): ms for b, ms in a.speed.p50s().items()}


def matching_engines(
    manifest: Manifest, graph: str, env, *, allow_version_compatible: bool
) -> list[Artifact]:
    """Engines for ``graph`` that this machine can run, best first (approved int8, fp16, fp32)."""
    from .trt_backend import check_engine_record

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
        if _passed(a) and (a.precision != "int8" or a.quality_approved):
            ok.append(a)
    rank = {"int8": 0, "fp16": 1, "fp32": 2}
    return sorted(ok, key=lambda a: rank.get(a.precision or "fp32", 3))


def _engine_record(a: Artifact, bundle: Any) -> EngineRecord:
    if a.engine is None:  # a hand-made bundle may list an engine without its record
        raise CorruptArtifactError(
            f"Engine '{printable(a.file)}' has no engine record.",
            hint=f"Rebuild it: genedge export CKPT --out {bundle} --trt",
        )
    return a.engine


def _trt_environment(device_id: int):
    from .cuda import probe_environment

    env = probe_environment(device_id)
    if env is None:
        raise IncompatibleEnvironmentError(
            "Backend 'tensorrt' needs the tensorrt and cuda-python packages and an NVIDIA GPU.",
            hint="pip install 'genedge[trt]' on a CUDA machine, or pass --backend ort-cpu.",
        )
    return env


def _engine_for(manifest: Manifest, graph: str, precision: str | None, opts: BackendOptions):
    from .trt_backend import check_engine_record

    env = _trt_environment(opts.device_id)
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
            _engine_record(engines[0], manifest.root),
            env,
            file=engines[0].file,
            bundle=manifest.root,
            allow_version_compatible=opts.allow_version_compatible,
        )
        return engines[0], env
    ok = matching_engines(
        manifest, graph, env, allow_version_compatible=opts.allow_version_compatible
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
    return ok[0], env


def _open_ort(
    manifest: Manifest,
    graph: str,
    name: str,
    precision: str | None,
    opts: BackendOptions,
    int_ranges: dict[str, tuple[int, int]] | None,
) -> Backend:
    from .ort_backend import OrtBackend

    artifact = onnx_artifact(manifest, graph, name, precision)
    path = manifest.path_of(artifact)  # sha256 (external data included) before ORT parses it
    cache = None
    if name == "ort-trt":
        from .ort_backend import trt_ep_cache_dir

        folder = trt_ep_cache_dir(artifact.sha256)
        cache = None if folder is None else str(folder)
    return OrtBackend.open(
        path,
        name=name,
        precision=artifact.precision or "fp32",
        options=_ort_options(opts, cache),
        check_inputs=opts.check_inputs,
        int_ranges=int_ranges,
    )


def _open_openvino(
    manifest: Manifest,
    graph: str,
    precision: str | None,
    opts: BackendOptions,
    int_ranges: dict[str, tuple[int, int]] | None,
) -> Backend:
    from .machine import require_bf16
    from .openvino_backend import OpenVinoBackend

    if precision == "bf16":
        require_bf16()  # exit 3 before anything else is said about bf16
    artifact = onnx_artifact(manifest, graph, "openvino", precision)
    path = manifest.path_of(artifact)  # sha256 (external data included) before OpenVINO parses it
    io = manifest.graphs.get(graph)
    return OpenVinoBackend.open(
        path,
        precision=artifact.precision or "fp32",
        options=_openvino_options(opts),
        check_inputs=opts.check_inputs,
        int_ranges=int_ranges,
        declared=() if io is None else (*io.inputs, *io.outputs),
    )


def _openvino_options(opts: BackendOptions):
    from .openvino_backend import OpenVinoOptions

    return OpenVinoOptions(
        threads=opts.threads, static=opts.static_shapes, first_batch=opts.batch or 1
    )


def _ort_options(opts: BackendOptions, trt_cache_dir: str | None = None):
    from .ort_backend import OrtOptions

    return OrtOptions(
        intra_op_threads=opts.threads,
        inter_op_threads=opts.inter_op_threads,
        spin=opts.spin,
        graph_optimization=opts.graph_optimization,
        device_id=opts.device_id,
        trt_cache_dir=trt_cache_dir,
    )


def check_io_spec(manifest: Manifest, graph: str, b: Backend) -> None:
    """Refuse (exit 2) a graph whose tensors disagree with the manifest's I/O spec for it (names,
    dtypes, ranks, fixed dims): C/C++ hosts size their buffers from that spec, not from the graph."""
    spec = manifest.graphs.get(graph)
    if spec is None:
        return  # a bundle without an I/O spec for this graph: nothing to hold it to
    for side, declared, actual in (
        ("inputs", spec.inputs, b.inputs),
        ("outputs", spec.outputs, b.outputs),
    ):
        problem = _io_problem(side, declared, actual)
        if problem:
            raise CorruptArtifactError(
                f"Bundle '{manifest.root}', graph '{graph}' ({b.info.file}): {problem}.",
                hint="The manifest was edited or mixes exports; re-export the bundle.",
            )


def _io_problem(
    side: str,
    declared: Sequence[TensorSpec],
    actual: Sequence[TensorSpec],
    where: str = "in the manifest",
) -> str | None:
    want = {t.name: t for t in declared}
    have = {t.name: t for t in actual}
    if set(want) != set(have):
        return f"{side} {printable(sorted(want))} {where}, {sorted(have)} in the graph"
    for name, t in have.items():
        shape = list(want[name].shape)
        fixed_ok = all(
            a == e
            for a, e in zip(t.shape, shape, strict=False)
            if isinstance(a, int) and isinstance(e, int)
        )
        if want[name].dtype != t.dtype or len(shape) != len(t.shape) or not fixed_ok:
            return (
                f"'{name}' is {want[name].dtype} {printable(shape)} {where}, "
                f"{t.dtype} {list(t.shape)} in the graph"
            )
    return None


def open_file(
    path: str | os.PathLike,
    backend: str = "ort-cpu",
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
    against this machine; ``backend="tensorrt"`` needs it.
    ``inputs``/``outputs``, when given, are the tensors the file must declare (names, dtypes,
    ranks, fixed dims); a mismatch raises ``CorruptArtifactError`` (exit 2).
    """
    check_names(backend, precision)
    if backend == "auto":
        raise BadInputError("open_file runs one file: name its backend, not 'auto'.")
    opts = options or BackendOptions()
    if backend == "tensorrt":
        from .trt_backend import TrtBackend

        if isinstance(engine, dict):
            engine = engine_record_from(engine, f"Engine record for '{Path(path).name}'")
        if engine is None:
            raise BadInputError("open_file with backend 'tensorrt' needs the engine's record.")
        b: Backend = TrtBackend.open_file(
            Path(path),
            engine,
            _trt_environment(opts.device_id),
            precision=precision,
            check_inputs=opts.check_inputs,
            allow_version_compatible=opts.allow_version_compatible,
            cuda_graphs=opts.cuda_graphs,
            device_id=opts.device_id,
        )
    elif backend == "openvino":
        from .openvino_backend import OpenVinoBackend

        b = OpenVinoBackend.open(
            path,
            precision=precision,
            options=_openvino_options(opts),
            check_inputs=opts.check_inputs,
            declared=(*(inputs or ()), *(outputs or ())),
        )
    else:
        if precision in INFERENCE_PRECISIONS:
            raise BadInputError(
                f"Precision {precision} runs on backend '{INFERENCE_PRECISIONS[precision]}' only; "
                f"received backend '{backend}'."
            )
        from .ort_backend import OrtBackend

        b = OrtBackend.open(
            path,
            name=backend,
            precision=precision,
            options=_ort_options(opts),
            check_inputs=opts.check_inputs,
        )
    try:
        _check_declared(b, inputs, outputs)
    except BaseException:
        b.close()
        raise
    return b


def _check_declared(
    b: Backend, inputs: Sequence[TensorSpec] | None, outputs: Sequence[TensorSpec] | None
) -> None:
    for side, want, have in (("inputs", inputs, b.inputs), ("outputs", outputs, b.outputs)):
        if want is None:
            continue
        problem = _io_problem(side, want, have, "expected")
        if problem:
            raise CorruptArtifactError(
                f"'{b.info.file}': {problem}.",
                hint="The file is not the graph its caller expects; re-export it.",
            )


def open_backend(
    manifest: Manifest,
    graph: str,
    backend: str = "auto",
    precision: str | None = None,
    options: BackendOptions | None = None,
    int_ranges: dict[str, tuple[int, int]] | None = None,
) -> Backend:
    """Open ``graph`` of ``manifest`` on ``backend`` (a name from ``BACKENDS``); its tensors are
    checked against the manifest's I/O spec for the graph."""
    b = _open_backend(manifest, graph, backend, precision, options, int_ranges)
    try:
        check_io_spec(manifest, graph, b)
    except BaseException:
        b.close()
        raise
    return b


def _open_backend(
    manifest: Manifest,
    graph: str,
    backend: str = "auto",
    precision: str | None = None,
    options: BackendOptions | None = None,
    int_ranges: dict[str, tuple[int, int]] | None = None,
) -> Backend:
    precision = None if precision == "auto" else precision  # "auto" is the default's name
    check_names(backend, precision)
    opts = options or BackendOptions()
    if backend == "auto":
        return _open_auto(manifest, graph, precision, opts, int_ranges)
    if backend == "tensorrt":
        from .trt_backend import TrtBackend

        artifact, env = _engine_for(manifest, graph, precision, opts)
        return TrtBackend.open(
            manifest,
            artifact,
            env,
            check_inputs=opts.check_inputs,
            int_ranges=int_ranges,
            allow_version_compatible=opts.allow_version_compatible,
            cuda_graphs=opts.cuda_graphs,
            device_id=opts.device_id,
        )
    if backend == "openvino":
        return _open_openvino(manifest, graph, precision, opts, int_ranges)
    return _open_ort(manifest, graph, backend, precision, opts, int_ranges)


def _open_auto(
    manifest: Manifest,
    graph: str,
    precision: str | None,
    opts: BackendOptions,
    int_ranges: dict[str, tuple[int, int]] | None,
) -> Backend:
    tuned = _open_tuned(manifest, graph, precision, opts, int_ranges)
    if tuned is not None:
        return tuned
    tried = []
    measured = _open_measured(manifest, graph, precision, opts, int_ranges)
    if measured is not None:
        return measured
    candidates = ["ort-cpu"]
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            candidates.insert(0, "ort-cuda")
    if (
        manifest.find(graph=graph, format="engine")
        and importlib.util.find_spec("tensorrt") is not None
    ):
        candidates.insert(0, "tensorrt")
    if precision in INFERENCE_PRECISIONS:  # bf16: only the backend that applies the hint
        candidates = [INFERENCE_PRECISIONS[precision]]
    for name in candidates:
        try:
            b = _open_backend(manifest, graph, name, precision, opts, int_ranges)
        except IncompatibleEnvironmentError as e:
            if name == candidates[-1]:
                raise
            tried.append(f"{name}: {e.message}")
            continue
        except BadInputError as e:  # e.g. no such precision for this backend's artifacts
            if name == candidates[-1]:
                raise
            tried.append(f"{name}: {e.message}")
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


def _open_measured(
    manifest: Manifest,
    graph: str,
    precision: str | None,
    opts: BackendOptions,
    int_ranges: dict[str, tuple[int, int]] | None,
) -> Backend | None:
    """On a machine without a GPU backend for this bundle: the fastest quality-approved CPU
    (backend, precision) by export's speed record (``fastest_cpu``), or None for the fixed
    rule to decide (a GPU path exists, no usable record, or the choice cannot open here)."""
    if precision in INFERENCE_PRECISIONS or _gpu_possible(manifest, graph):
        return None
    found = onnx_artifacts(manifest, graph)
    if precision is not None:  # the fastest backend for the precision asked
        found = {p: a for p, a in found.items() if p in (precision, "fp32")}
        if precision not in found:
            return None
    backends = ("ort-cpu", *(("openvino",) if importlib.util.find_spec("openvino") else ()))
    pick = fastest_cpu(found, opts.batch or 1, backends)
    if pick is None or (precision is not None and pick[1].precision != precision):
        return None
    backend, artifact, why = pick
    try:
        b = _open_backend(manifest, graph, backend, artifact.precision, opts, int_ranges)
    except GenedgeError as e:
        log.warning(
            "backend auto: %s %s cannot open (%s); fixed rule", backend, artifact.precision, e
        )
        return None
    log.info("backend auto -> %s %s (%s): %s", backend, artifact.precision, b.info.file, why)
    return b


def _gpu_possible(manifest: Manifest, graph: str) -> bool:
    """Whether the fixed rule would try a GPU backend first (an engine and TensorRT, or ORT
    with CUDA): export's CPU record then does not decide."""
    if manifest.find(graph=graph, format="engine") and importlib.util.find_spec("tensorrt"):
        return True
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _open_tuned(
    manifest: Manifest,
    graph: str,
    precision: str | None,
    opts: BackendOptions,
    int_ranges: dict[str, tuple[int, int]] | None,
) -> Backend | None:
    """The (backend, precision) this machine's tuning measured fastest for ``opts.batch``, or
    None (no tuning, or its choice cannot open here now) for the fixed rule to decide."""
    from .tune import tuned_choice

    choice = tuned_choice(manifest, graph, precision, opts)
    if choice is None:
        log.debug("backend auto: no tuning for %s on this machine; fixed rule", manifest.root)
        return None
    c = choice.candidate
    try:
        b = _open_backend(manifest, graph, c.backend, c.precision, opts, int_ranges)
    except GenedgeError as e:
        log.warning("backend auto: tuned choice %s cannot open (%s); fixed rule", c.label, e)
        return None
    log.info(
        "backend auto -> %s (%s): %s",
        printable(c.label, 40),
        printable(b.info.file),
        printable(choice.why, 400),
    )
    return b

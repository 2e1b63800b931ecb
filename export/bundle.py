"""Checkpoint -> verified bundle folder (DESIGN.md s.4, docs/bundle.md): the orchestration.

The bundle is built in a temporary sibling folder (``genedge.atomic.atomic_dir``) and moved
into place only when every artifact passed its checks; ``manifest.json`` is written last.
A lock file ``.genedge.lock`` keeps two exports out of the same folder. Re-exporting an
unchanged checkpoint with unchanged options reuses the artifacts already there
(``genedge.export.reuse``). The stages live in ``precision`` (fp32/fp16/int8, gated by
``gate``) and ``trt_stage``; their shared state in ``context``; the manifest's assembly in
``manifest_build``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from genedge.atomic import atomic_dir, clean_stale_temps
from genedge.errors import BadInputError, printable
from genedge.export.checks.quality import load_reference_data
from genedge.export.context import BuildContext, LoadedModel, Log, save_bundle_file, silent
from genedge.export.manifest_build import manifest_dict
from genedge.export.options import ExportOptions, validate_export_options
from genedge.export.reuse import copy_previous, dropped_note, is_current, read_previous, reusable
from genedge.export.routes.onnx_export import load_generator
from genedge.export.stages.precision import STAGES
from genedge.export.stages.speed import stage_speed
from genedge.export.stages.tensorrt import require_tensorrt
from genedge.export.stages.triton import write_triton_repository
from genedge.manifest import MANIFEST_NAME, Manifest, read_manifest, sha256_file, write_manifest
from genedge.outputs import (
    LOCK_NAME,
    check_bundle_out,
    check_triton_out,
    folder_lock,
    is_housekeeping,
    open_lock,
)
from genedge.precisions import BY_NAME, PRECISIONS, image_precisions

__all__ = [
    "LOCK_NAME",
    "LoadedModel",
    "bundle_lock",
    "export_bundle",
    "export_source",
    "save_bundle_file",
]


# ---------------------------------------------------------------- locking
_held: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "genedge_export_locks", default=frozenset()
)  # --out folders whose lock this export (thread, task) holds


@contextlib.contextmanager
def bundle_lock(out: Path, *, sources: tuple[Path | None, ...] = ()) -> Iterator[None]:
    """Vet ``out`` (the output contract), hold ``OUT/.genedge.lock`` for the export.

    Refuses (exit 2) an ``out`` that holds anything but a genedge bundle, or the export's own
    inputs; refuses (exit 4) when another export holds the lock. Within one export (this
    context), a nested call for the same ``out`` is a no-op: ``genedge export`` takes the
    lock before it reads its source, and the stage that builds the bundle asks again.
    """
    key = os.path.abspath(out)
    if key in _held.get():
        yield
        return
    check_bundle_out(out, sources=[s for s in sources if s is not None])
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInputError(f"Cannot create --out '{printable(str(out))}': {e.strerror}.") from None
    try:
        with folder_lock(out, who="genedge export"):
            check_bundle_out(out)  # again under the lock: another process may have written
            clean_stale_temps(out.parent)  # leftovers of a killed export (live writers' are kept)
            clean_stale_temps(out)
            token = _held.set(_held.get() | {key})
            try:
                yield
            finally:
                _held.reset(token)
    finally:
        if created and not (out / MANIFEST_NAME).exists():  # failed first export: leave nothing
            _remove_empty_bundle(out)


def _remove_empty_bundle(out: Path) -> None:
    """Remove a folder this export created, if nothing but its own lock and temporaries are in it."""
    with contextlib.suppress(OSError):
        for p in out.iterdir():
            if is_housekeeping(p.name):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink()
        out.rmdir()


def source_path(source: Path, bundle: Path) -> str:
    """Where the source file is, as the manifest records it: relative to the bundle folder
    when both sit on one filesystem tree (the pair can move together), else absolute."""
    src, root = source.resolve(), bundle.resolve()
    try:
        return Path(os.path.relpath(src, root)).as_posix()
    except ValueError:  # another drive (Windows)
        return src.as_posix()


# ---------------------------------------------------------------- entry point
def export_bundle(opts: ExportOptions, *, log: Log = silent) -> Path:
    """Export the checkpoint ``opts.source`` into the bundle folder ``opts.out`` and return its path.

    Raises BadInputError/CorruptArtifactError (exit 2) for bad options or checkpoints,
    MissingExtraError (exit 3) for ``--trt`` without TensorRT, IntegrityError (exit 4)
    when another export holds the folder or a graph fails parity. On any error the
    previous bundle (if any) is untouched and no partial bundle is left.
    """
    from genedge.train.checkpoint import read_checkpoint_info

    opts = validate_export_options(opts)
    info = read_checkpoint_info(opts.source)
    source = {
        "checkpoint": opts.source.name,
        "path": source_path(opts.source, opts.out),
        "sha256": sha256_file(opts.source),
        "step": info.step,
    }
    if info.meta.get("data"):
        source["data"] = info.meta["data"]

    def load() -> LoadedModel:
        from genedge.export.routes.wrappers import graphs_for  # nn.Module subclasses: torch

        model, cfg, kind = load_generator(opts.source)
        graphs = graphs_for(kind, model, cfg, opts.output_format)
        return LoadedModel(model, cfg, kind, graphs, info.meta.get("data"))

    return export_source(opts, source, load, log=log)


def export_source(
    opts: ExportOptions,
    source: dict[str, Any],
    load: Callable[[], LoadedModel],
    *,
    log: Log = silent,
) -> Path:
    """Export the generator ``load()`` returns into ``opts.out``; ``source`` is the manifest's
    source record (its ``sha256`` identifies the generator for artifact reuse).

    ``load`` runs under the bundle lock, and not at all when the bundle is already current.
    Errors as ``export_bundle``; no partial bundle is left.
    """
    opts = validate_export_options(opts)
    text_only = [p for p in opts.precisions if p in BY_NAME and p not in image_precisions()]
    if text_only:
        raise BadInputError(
            f"--precision {','.join(text_only)} is for transformer language models only; "
            f"'{printable(str(opts.source))}' is not one.",
            hint=f"Pass --precision {','.join(PRECISIONS)} (or a subset).",
        )
    if opts.trt:
        require_tensorrt()
    inputs = (opts.source, opts.calib_data, opts.eval_data)
    if opts.triton:
        check_triton_out(opts.triton, opts.out)  # before any work, as --out is
    with bundle_lock(opts.out, sources=tuple(Path(p) if p else None for p in inputs)):
        previous = read_previous(opts.out)
        if is_current(previous, opts, source["sha256"]):
            log(f"{opts.out} is current (same source sha256 and options): reused every artifact")
        else:
            _build(opts, load(), source, previous, log)
    if opts.triton:
        _write_triton(opts, log)
    return opts.out


def _build(
    opts: ExportOptions,
    loaded: LoadedModel,
    source: dict[str, Any],
    previous: Manifest | None,
    log: Log,
) -> None:
    real = None
    if loaded.kind != "ar":
        real = load_reference_data(opts.eval_data or loaded.data, loaded.cfg.image_size)
    fd = None
    try:
        with atomic_dir(opts.out, before_swap=lambda: check_bundle_out(opts.out)) as tmp:
            fd = open_lock(tmp, who="genedge export")  # the lock survives the folder swap
            ctx = BuildContext(opts, tmp, loaded, source, previous, log, real)
            for stage in (*opts.precisions, *(("trt",) if opts.trt else ())):
                records = reusable(ctx, stage)
                if records:
                    copy_previous(ctx, records, stage)
                else:
                    STAGES[stage](ctx)
            stage_speed(ctx)
            note = dropped_note(ctx)
            if note:
                log(note)
            write_manifest(tmp, manifest_dict(ctx))
    finally:
        if fd is not None:
            os.close(fd)


def _write_triton(opts: ExportOptions, log: Log) -> None:
    manifest = read_manifest(opts.out)
    check_triton_out(opts.triton, opts.out)  # again: the repository may have changed meanwhile
    written = write_triton_repository(
        opts.out, Path(opts.triton), manifest, max_batch_size=max(p[2] for p in opts.profiles)
    )
    log(f"Triton model repository: {', '.join(str(p.parent) for p in written)}")

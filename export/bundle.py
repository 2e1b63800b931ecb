"""Checkpoint -> verified bundle folder (DESIGN.md s.4, docs/bundle.md).

The bundle is built in a temporary sibling folder (``genedge.atomic.atomic_dir``) and moved
into place only when every artifact passed its checks; ``manifest.json`` is written last.
A lock file ``.genedge.lock`` keeps two exports out of the same folder. Re-exporting an
unchanged checkpoint with unchanged options reuses the artifacts already there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genedge.atomic import TMP_PREFIX, atomic_dir, atomic_write_bytes, clean_stale_temps
from genedge.errors import BadInputError, printable
from genedge.manifest import FORMAT, MANIFEST_NAME, SCHEMA_VERSION, artifact_record, sha256_file
from genedge.outputs import LOCK_NAME, check_bundle_out, folder_lock, lock_fd

from .calibration import (
    CalibrationSpec,
    image_calibration_feeds,
    image_feed,
    split_feed,
    text_calibration_feeds,
)
from .options import ExportOptions, validate_export_options
from .wrappers import GraphSpec

ENCODER_TOL = 0.05  # max |mu, logvar - fp32| for a reduced-precision encoder
Log = Callable[[str], None]


def _silent(msg: str) -> None:
    pass


@dataclass
class BuildContext:
    """State shared by the stages of one export (mutable on purpose: stages add artifacts)."""

    opts: ExportOptions
    tmp: Path
    model: Any
    cfg: Any
    kind: str
    graphs: list[tuple[GraphSpec, Any]]
    source: dict[str, Any]
    previous: dict[str, Any] | None
    log: Log
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    real: Any = None
    cache: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # precision -> why no artifact

    @property
    def main(self) -> GraphSpec:
        return self.graphs[0][0]


# ---------------------------------------------------------------- locking
@contextlib.contextmanager
def bundle_lock(out: Path, *, sources: tuple[Path | None, ...] = ()) -> Iterator[None]:
    """Vet ``out`` (the output contract), hold ``OUT/.genedge.lock`` for the export.

    Refuses (exit 2) an ``out`` that holds anything but a genedge bundle, or the export's own
    inputs; refuses (exit 4) when another export holds the lock.
    """
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
            yield
    finally:
        if created and not (out / MANIFEST_NAME).exists():  # failed first export: leave nothing
            _remove_empty_bundle(out)


def _remove_empty_bundle(out: Path) -> None:
    """Remove a folder this export created, if nothing but its own lock and temporaries are in it."""
    with contextlib.suppress(OSError):
        for p in out.iterdir():
            if p.name == LOCK_NAME or p.name.startswith(TMP_PREFIX):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink()
        out.rmdir()


def _hold_lock_in(folder: Path, out: Path) -> int:
    """Lock the new folder's lock file too, so the lock survives the folder swap."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    lock_fd(fd, out, who="genedge export")
    return fd


# ---------------------------------------------------------------- reuse
def read_previous(out: Path) -> dict[str, Any] | None:
    """The current bundle's manifest as a dict, if it is a valid genedge bundle; else None."""
    from genedge.errors import GenedgeError
    from genedge.manifest import read_manifest

    if not (out / MANIFEST_NAME).is_file():
        return None
    try:
        m = read_manifest(out)
        for a in m.artifacts:
            m.path_of(a)  # sha256 of every file
    except GenedgeError:
        return None
    return json.loads((out / MANIFEST_NAME).read_text())


def reusable(ctx: BuildContext, stage: str) -> list[dict[str, Any]] | None:
    """Records of ``stage``'s artifacts in the previous bundle when source and options are unchanged."""
    prev, key = ctx.previous, ctx.opts.artifact_key(stage)
    ctx.keys[stage] = key
    if stage == "trt" or ctx.opts.force or not prev:  # engines are rebuilt: the GPU may differ
        return None
    source = prev.get("source") or {}
    if (
        source.get("sha256") != ctx.source["sha256"]
        or source.get("artifact_keys", {}).get(stage) != key
    ):
        return None
    records = [a for a in prev["artifacts"] if _stage_of(a) == stage]
    return records or None


def _stage_of(a: dict[str, Any]) -> str:
    return "trt" if a["format"] in ("engine", "cache") else a.get("precision", "fp32")


def copy_previous(ctx: BuildContext, records: list[dict[str, Any]], stage: str) -> None:
    for rec in records:
        shutil.copyfile(ctx.opts.out / rec["file"], ctx.tmp / rec["file"])
        ctx.artifacts.append(rec)
    ctx.log(
        f"reused {', '.join(r['file'] for r in records)} (checkpoint and {stage} options unchanged)"
    )


def add_artifact(ctx: BuildContext, file: str, **fields: Any) -> dict[str, Any]:
    rec = artifact_record(ctx.tmp, file, **fields).to_dict()
    ctx.artifacts.append(rec)
    return rec


# ---------------------------------------------------------------- stages
def stage_fp32(ctx: BuildContext) -> None:
    """Export every graph, check parity vs torch (raises ParityError), record."""
    from .onnx_export import onnx_from_module, save_onnx
    from .parity import check_parity

    for spec, wrapper in ctx.graphs:
        ctx.log(f"exporting {spec.name} -> {spec.stem}.onnx")
        build = getattr(wrapper, "build_onnx", None)  # a source that makes its own graph
        model = (
            build(spec, ctx.opts.opset)
            if build
            else onnx_from_module(wrapper, spec, opset=ctx.opts.opset)
        )
        files = save_onnx(model, ctx.tmp / f"{spec.stem}.onnx")
        verification = check_parity(
            wrapper.reference(), files[0], spec, ctx.cfg, ctx.kind, ctx.opts.parity_seeds
        )
        against = getattr(wrapper, "reference_name", "torch")
        verification["reference"] = against
        ctx.log(
            f"{spec.stem}.onnx parity vs {against}: max abs err {verification['max_abs_err_vs_torch']:.3g}"
        )
        add_artifact(
            ctx,
            files[0].name,
            graph=spec.name,
            format="onnx",
            precision="fp32",
            verification=verification,
        )
        for extra in files[1:]:
            add_artifact(ctx, extra.name, graph=spec.name, format="onnx-data", precision="fp32")


def calibration_spec(ctx: BuildContext) -> CalibrationSpec:
    o = ctx.opts
    return CalibrationSpec(o.calib_method, o.calib_samples, o.seed, o.truncation, o.calib_data)


def calibration_feeds(ctx: BuildContext, spec: GraphSpec) -> list[dict[str, np.ndarray]]:
    """Calibration batches for ``spec`` (cached per graph)."""
    if spec.name in ctx.cache:
        return ctx.cache[spec.name]
    cs = calibration_spec(ctx)
    if spec.name == "step":
        feeds = text_calibration_feeds(ctx.model, ctx.cfg, cs)
    elif spec.name == "encoder":
        feeds = [{"image": _decoded_uint8(ctx, f)} for f in calibration_feeds(ctx, ctx.main)]
    else:
        feeds = image_calibration_feeds(ctx.model, ctx.cfg, ctx.kind, cs)
    ctx.cache[spec.name] = feeds
    return feeds


def _decoded_uint8(ctx: BuildContext, feed: dict[str, np.ndarray]) -> np.ndarray:
    from genedge.imageio import to_uint8

    img = fp32_runner(ctx, ctx.main).run(feed)["image"]
    return img if img.dtype == np.uint8 else to_uint8(img)


def fp32_runner(ctx: BuildContext, spec: GraphSpec):
    from .parity import onnx_runner

    key = f"runner:{spec.stem}"
    if key not in ctx.cache:
        ctx.cache[key] = onnx_runner(ctx.tmp / f"{spec.stem}.onnx", spec)
    return ctx.cache[key]


def quality_feeds(ctx: BuildContext, spec: GraphSpec) -> list[dict[str, np.ndarray]]:
    """Held-out inputs (``quality_seed``, never used for calibration), cached per graph."""
    key = f"quality:{spec.name}"
    if key not in ctx.cache:
        ctx.cache[key] = _quality_feeds(ctx, spec)
    return ctx.cache[key]


def _quality_feeds(ctx: BuildContext, spec: GraphSpec) -> list[dict[str, np.ndarray]]:
    o = ctx.opts
    if spec.name == "step":
        cs = CalibrationSpec(o.calib_method, o.quality_samples, o.quality_seed, 1.0, o.calib_data)
        return text_calibration_feeds(ctx.model, ctx.cfg, cs, every_step=True)
    feed = image_feed(ctx.cfg, o.quality_samples, o.quality_seed, o.truncation)
    if spec.name == "encoder":
        return [{"image": _decoded_uint8(ctx, f)} for f in split_feed(feed, 100)]
    return split_feed(feed, 100)


def compare_to_fp32(ctx: BuildContext, spec: GraphSpec, runner: Any) -> dict[str, Any]:
    """PSNR/SSIM (image graphs) or max error, and task metrics, of ``runner`` vs fp32 on held-out seeds."""
    from .quality import image_quality, image_task_metrics, metric_drop

    feeds, ref_runner = quality_feeds(ctx, spec), fp32_runner(ctx, spec)
    ref = [ref_runner.run(f) for f in feeds]
    test = [runner.run(f) for f in feeds]
    rec: dict[str, Any] = {
        "seeds": [ctx.opts.quality_seed],
        "samples": sum(len(next(iter(f.values()))) for f in feeds),
        "backend": getattr(runner, "backend", "onnxruntime-cpu"),
    }
    if spec.name in ("generator", "decoder"):
        layout = spec.outputs[0].layout or "NHWC"
        a = np.concatenate([r["image"] for r in ref])
        b = np.concatenate([t["image"] for t in test])
        rec.update(image_quality(a, b, layout))
        labels = np.concatenate([f["label"] for f in feeds]) if "label" in feeds[0] else None
        ref_metrics = ctx.cache.setdefault(
            f"metrics:{spec.name}", image_task_metrics(a, layout, labels, ctx.real)
        )
        metrics = image_task_metrics(b, layout, labels, ctx.real)
        if metrics:
            rec["metrics"], rec["metrics_fp32"] = metrics, ref_metrics
            rec["metric_drop"] = metric_drop(ref_metrics, metrics)
    else:
        rec["max_abs_err_vs_fp32"] = max(
            float(np.max(np.abs(r[k].astype(np.float64) - t[k].astype(np.float64))))
            for r, t in zip(ref, test, strict=True)
            for k in r
        )
        if spec.name == "step":
            rec.update(_bpc_record(ctx, ref_runner, runner))
    return rec


def _bpc_record(ctx: BuildContext, ref_runner: Any, runner: Any) -> dict[str, Any]:
    from .quality import bits_per_char

    feeds = quality_feeds(ctx, ctx.main)
    tokens = np.stack([f["token"] for f in feeds], axis=1)  # (B, T)
    ref, test = bits_per_char(ref_runner, ctx.cfg, tokens), bits_per_char(runner, ctx.cfg, tokens)
    return {"metrics": {"bpc": test}, "metrics_fp32": {"bpc": ref}, "metric_drop": test - ref}


def gate(ctx: BuildContext, rec: dict[str, Any], *, use_metric: bool) -> bool:
    """PSNR floor (image graphs) and task-metric drop budget."""
    ok = rec.get("psnr_vs_fp32", float("inf")) >= ctx.opts.min_psnr
    if use_metric and "metric_drop" in rec:
        ok = ok and rec["metric_drop"] <= ctx.opts.max_quality_drop
    if "psnr_vs_fp32" not in rec and "metric_drop" not in rec:  # encoder: mu/logvar error only
        ok = rec["max_abs_err_vs_fp32"] <= ENCODER_TOL
    return bool(ok)


def stage_fp16(ctx: BuildContext) -> None:
    """fp16 with fp32 I/O and the overflow guard; keep more nodes fp32 while the PSNR floor fails."""
    for spec, _ in ctx.graphs:
        _fp16_graph(ctx, spec)


def _fp16_graph(ctx: BuildContext, spec: GraphSpec) -> None:
    import onnx

    from .fp16 import COMPUTE_OPS, fp16_from_onnx, largest_compute_nodes
    from .onnx_export import save_onnx
    from .parity import onnx_runner

    file = f"{spec.stem}.fp16.onnx"
    fp32 = onnx.load(str(ctx.tmp / f"{spec.stem}.onnx"))
    feeds = calibration_feeds(ctx, spec)[:4]
    keep: tuple[str, ...] = ()
    n_compute = sum(n.op_type in COMPUTE_OPS for n in fp32.graph.node)
    while True:
        model, blocked, ranges = fp16_from_onnx(fp32, feeds, keep_float=keep)
        save_onnx(model, ctx.tmp / file)
        rec = compare_to_fp32(ctx, spec, onnx_runner(ctx.tmp / file, spec))
        passed = gate(ctx, rec, use_metric=spec.name == "step")
        more = largest_compute_nodes(fp32, ranges, set(blocked), 1)
        if passed or not more or len(keep) >= n_compute:
            break
        keep = keep + tuple(more)
        ctx.log(
            f"{file}: PSNR {rec.get('psnr_vs_fp32', 0):.1f} dB below floor; keeping {more[0]} in fp32"
        )
    rec["verdict"] = "pass" if passed else "fail"
    ctx.log(f"{file}: {_summary(rec)}; kept fp32: {blocked or 'none'}")
    add_artifact(
        ctx,
        file,
        graph=spec.name,
        format="onnx",
        precision="fp16",
        verification=rec,
        recipe={"kept_float": blocked},
        quality_approved=passed,
    )


def stage_int8(ctx: BuildContext) -> None:
    """Q/DQ int8 of the main graph, gated on held-out seeds, mixed-precision search on failure."""
    import onnx

    from .int8 import WEIGHTED_OPS, int8_from_onnx, quantizable_nodes, quantized_weight_nodes
    from .mixed import GateResult, search_recipe
    from .parity import onnx_runner

    spec, o = ctx.main, ctx.opts
    src = ctx.tmp / f"{spec.stem}.onnx"
    feeds = calibration_feeds(ctx, spec)
    work = ctx.tmp / ".genedge-tmp-int8"
    work.mkdir(exist_ok=True)

    def build(kept: tuple[str, ...]) -> Path:
        return int8_from_onnx(
            src,
            work / f"cand{len(list(work.iterdir()))}.onnx",
            feeds,
            method=o.calib_method,
            keep_float=kept,
        )

    def evaluate(path: Path) -> GateResult:
        rec = compare_to_fp32(ctx, spec, onnx_runner(path, spec))
        score = rec.get("psnr_vs_fp32", 0.0) - 100.0 * max(rec.get("metric_drop", 0.0), 0.0)
        return GateResult(gate(ctx, rec, use_metric=True), score, rec)

    ctx.log(
        f"calibrating int8 ({o.calib_method}, {o.calib_samples} samples from {calibration_spec(ctx).source})"
    )
    candidates = quantizable_nodes(onnx.load(str(src)))
    recipe = search_recipe(build, evaluate, candidates, log=ctx.log)
    if not quantized_weight_nodes(onnx.load(str(recipe.path))):
        shutil.rmtree(work, ignore_errors=True)
        why = (
            f"{len(candidates)} such node(s); {len(recipe.kept_float)} kept in float by the "
            "quality gate, the quantizer quantized none of the others"
            if candidates
            else "the graph has none"
        )
        skip_precision(
            ctx, "int8", f"no {'/'.join(WEIGHTED_OPS)} weight of {src.name} is int8 ({why})"
        )
        return
    os.replace(recipe.path, ctx.tmp / "model.int8.onnx")
    shutil.rmtree(work, ignore_errors=True)
    rec = dict(recipe.result.record, verdict="pass" if recipe.result.passed else "fail")
    kept = list(recipe.kept_float)
    ctx.log(f"model.int8.onnx: {_summary(rec)}; kept in float: {kept or 'none'}")
    recipe_rec = (
        {"kept_float": kept, "sensitivity": recipe.sensitivity}
        if recipe.sensitivity
        else {"kept_float": kept}
    )
    add_artifact(
        ctx,
        "model.int8.onnx",
        graph=spec.name,
        format="onnx",
        precision="int8",
        verification=rec,
        calibration=calibration_spec(ctx).record(),
        recipe=recipe_rec,
        quality_approved=recipe.result.passed,
    )


def skip_precision(ctx: BuildContext, precision: str, reason: str) -> None:
    """Write no artifact for ``precision``: log why and record it in the manifest's
    ``source.skipped`` (a file labelled int8 that runs in float would be a lie)."""
    ctx.log(f"{precision} skipped: {reason}")
    ctx.skipped[precision] = reason


def _summary(rec: dict[str, Any]) -> str:
    parts = []
    if "psnr_vs_fp32" in rec:
        parts.append(f"PSNR {rec['psnr_vs_fp32']:.1f} dB, SSIM {rec['ssim_vs_fp32']:.4f}")
    if "metric_drop" in rec:
        parts.append(f"metric drop {rec['metric_drop']:.4f}")
    if "max_abs_err_vs_fp32" in rec:
        parts.append(f"max err {rec['max_abs_err_vs_fp32']:.3g}")
    return ", ".join(parts)


def stage_trt(ctx: BuildContext) -> None:
    from .trt_stage import build_engines

    build_engines(ctx)


# ---------------------------------------------------------------- manifest
def model_section(kind: str, cfg: Any, output_format: str) -> dict[str, Any]:
    """The manifest ``model`` record of docs/bundle.md."""
    d = dataclasses.asdict(cfg)
    if kind == "ar":
        d.update(
            vocab_size=cfg.vocab_size,
            state_names=list(cfg.state_names),
            state_shape=[cfg.layers, "B", cfg.hidden],
        )
        return d
    d.update(output_format=output_format, latent={"distribution": "normal"})
    return d


def producer_versions() -> dict[str, str]:
    """Versions of genedge and every package that shaped the artifacts (installed ones only)."""
    from importlib import metadata

    from genedge import __version__

    out = {"genedge": __version__}
    for name in ("torch", "onnx", "onnxruntime", "onnxslim", "onnxconverter-common", "tensorrt"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def manifest_dict(ctx: BuildContext) -> dict[str, Any]:
    source = dict(ctx.source, artifact_keys=ctx.keys, options_sha256=ctx.opts.artifact_key("all"))
    if ctx.skipped:
        source["skipped"] = dict(ctx.skipped)
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "kind": ctx.kind,
        "model": model_section(ctx.kind, ctx.cfg, ctx.opts.output_format),
        "graphs": {spec.name: spec.to_dict() for spec, _ in ctx.graphs},
        "artifacts": ctx.artifacts,
        "producer": producer_versions(),
        "source": source,
    }


# ---------------------------------------------------------------- entry point
STAGES: dict[str, Callable[[BuildContext], None]] = {
    "fp32": stage_fp32,
    "fp16": stage_fp16,
    "int8": stage_int8,
}


def is_current(prev: dict[str, Any] | None, opts: ExportOptions, source_sha: str) -> bool:
    """True when the bundle already holds exactly what ``opts`` asks for, from this checkpoint."""
    if opts.force or opts.trt or not prev or (prev.get("source") or {}).get("sha256") != source_sha:
        return False
    wanted = {s: opts.artifact_key(s) for s in (*opts.precisions, *(("trt",) if opts.trt else ()))}
    return prev["source"].get("artifact_keys") == wanted


def export_bundle(opts: ExportOptions, *, log: Log = _silent) -> Path:
    """Export ``opts.checkpoint`` into the bundle folder ``opts.out`` and return its path.

    Raises BadInputError/CorruptArtifactError (exit 2) for bad options or checkpoints,
    MissingExtraError (exit 3) for ``--trt`` without TensorRT, IntegrityError (exit 4)
    when another export holds the folder or a graph fails parity. On any error the
    previous bundle (if any) is untouched and no partial bundle is left.
    """
    from genedge.train.checkpoint import read_checkpoint_info

    opts = validate_export_options(opts)
    info = read_checkpoint_info(opts.checkpoint)
    source = {
        "checkpoint": opts.checkpoint.name,
        "sha256": sha256_file(opts.checkpoint),
        "step": info.step,
    }
    if info.meta.get("data"):
        source["data"] = info.meta["data"]

    def load() -> LoadedModel:
        from .onnx_export import load_generator
        from .wrappers import graphs_for

        model, cfg, kind = load_generator(opts.checkpoint)
        graphs = graphs_for(kind, model, cfg, opts.output_format)
        return LoadedModel(model, cfg, kind, graphs, info.meta.get("data"))

    return export_source(opts, source, load, log=log)


@dataclass(frozen=True)
class LoadedModel:
    """What the stages need from a generator, wherever it came from (checkpoint, user module,
    ONNX file): the model (calibration), its config (manifest ``model``), kind, every graph
    with its wrapper (main graph first), and the data it was trained on, if known."""

    model: Any
    cfg: Any
    kind: str
    graphs: list[tuple[GraphSpec, Any]]
    data: str | None = None


def export_source(
    opts: ExportOptions,
    source: dict[str, Any],
    load: Callable[[], LoadedModel],
    *,
    log: Log = _silent,
) -> Path:
    """Export the generator ``load()`` returns into ``opts.out``; ``source`` is the manifest's
    source record (its ``sha256`` identifies the generator for artifact reuse).

    ``load`` runs under the bundle lock, and not at all when the bundle is already current.
    Errors as ``export_bundle``; no partial bundle is left.
    """
    opts = validate_export_options(opts)
    if opts.trt:
        from .tensorrt import require_tensorrt

        require_tensorrt()
    inputs = (opts.checkpoint, opts.calib_data, opts.eval_data)
    with bundle_lock(opts.out, sources=tuple(Path(p) if p else None for p in inputs)):
        previous = read_previous(opts.out)
        if is_current(previous, opts, source["sha256"]):
            log(f"{opts.out} is current (same source sha256 and options): reused every artifact")
            return opts.out
        _build(opts, load(), source, previous, log)
    if opts.triton:
        _write_triton(opts, log)
    return opts.out


def _build(
    opts: ExportOptions,
    loaded: LoadedModel,
    source: dict[str, Any],
    previous: dict[str, Any] | None,
    log: Log,
) -> None:
    from genedge.manifest import write_manifest

    from .quality import load_reference_data
    from .speed import stage_speed

    model, cfg, kind, graphs = loaded.model, loaded.cfg, loaded.kind, loaded.graphs
    fd = None
    try:
        with atomic_dir(opts.out, before_swap=lambda: check_bundle_out(opts.out)) as tmp:
            fd = _hold_lock_in(tmp, opts.out)  # held until the new folder is in place
            ctx = BuildContext(opts, tmp, model, cfg, kind, graphs, source, previous, log)
            if kind != "ar":
                ctx.real = load_reference_data(opts.eval_data or loaded.data, cfg.image_size)
            for stage in (*opts.precisions, *(("trt",) if opts.trt else ())):
                records = reusable(ctx, stage)
                if records:
                    copy_previous(ctx, records, stage)
                else:
                    (STAGES.get(stage) or stage_trt)(ctx)
            stage_speed(ctx)
            write_manifest(tmp, manifest_dict(ctx))
    finally:
        if fd is not None:
            os.close(fd)


def _write_triton(opts: ExportOptions, log: Log) -> None:
    from genedge.manifest import read_manifest

    from .triton import write_triton_repository

    manifest = read_manifest(opts.out)
    written = write_triton_repository(
        opts.out, Path(opts.triton), manifest, max_batch_size=max(p[2] for p in opts.profiles)
    )
    log(f"Triton model repository: {', '.join(str(p.parent) for p in written)}")


def save_bundle_file(bundle: Path, name: str, data: bytes) -> Path:
    """Write one raw file into a bundle being built (engines, caches)."""
    atomic_write_bytes(bundle / name, data)
    return bundle / name

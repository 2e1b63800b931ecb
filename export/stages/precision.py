"""The precision stages of an export: fp32 (parity vs the reference), fp16, bf16 and int8 (gated).

Each stage writes its artifacts into ``ctx.tmp`` and appends their manifest records; the
reduced-precision stages keep nodes in float until the quality gate (``genedge.export.checks.gate``)
passes, and record the verdict either way. ``STAGES`` maps a precision to its stage; the
``--trt`` stage is ``genedge.export.stages.trt_stage``. bf16 writes no file: it is the fp32 graph
run with OpenVINO's bf16 inference precision, and its gate record goes on the fp32 artifact
(``inference_precisions``, docs/bundle.md).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from genedge.atomic import discard_staged
from genedge.export.checks.gate import compare_to_fp32, gate, summary
from genedge.export.checks.parity import ArtifactRunner, check_parity, onnx_runner
from genedge.export.context import BuildContext, add_artifact, calibration_feeds, calibration_spec
from genedge.export.routes.graph_spec import GraphSpec
from genedge.export.routes.onnx_export import onnx_from_module, save_onnx
from genedge.export.stages import int8
from genedge.export.stages.bf16 import bf16_emulation
from genedge.export.stages.fp16 import COMPUTE_OPS, fp16_from_onnx, largest_compute_nodes
from genedge.export.stages.mixed import GateResult, search_recipe
from genedge.export.stages.speed import interleaved_p50, open_for_speed, speed_feed
from genedge.export.stages.trt_stage import build_engines
from genedge.lazy import lazy_import
from genedge.precisions import INFERENCE_PRECISIONS, SUFFIXES, onnx_file
from genedge.runtime.machine import bf16_support
from genedge.runtime.select import BackendOptions, open_file

onnx = lazy_import("onnx")


def stage_fp32(ctx: BuildContext) -> None:
    """Export every graph, check parity vs torch (raises ParityError), record."""
    for spec, wrapper in ctx.graphs:
        ctx.log(f"exporting {spec.name} -> {spec.stem}.onnx")
        build = getattr(wrapper, "build_onnx", None)  # a source that makes its own graph
        model = (
            build(spec, ctx.opts.opset)
            if build
            else onnx_from_module(wrapper, spec, opset=ctx.opts.opset)
        )
        files = save_onnx(model, ctx.tmp / f"{spec.stem}.onnx")
        against = getattr(wrapper, "reference_name", "torch")
        verification = dataclasses.replace(
            check_parity(
                wrapper.reference(), files[0], spec, ctx.cfg, ctx.kind, ctx.opts.parity_seeds
            ),
            reference=against,
            checks=("parity",),
        )
        ctx.log(
            f"{spec.stem}.onnx parity vs {against}: max abs err {verification.max_abs_err_vs_torch:.3g}"
        )
        add_artifact(
            ctx,
            files[0].name,
            graph=spec.name,
            format="onnx",
            precision="fp32",
            verification=verification,
            quality_approved=True,  # the reference the other precisions are gated against
        )
        for extra in files[1:]:
            add_artifact(ctx, extra.name, graph=spec.name, format="onnx-data", precision="fp32")


def stage_fp16(ctx: BuildContext) -> None:
    """fp16 with fp32 I/O and the overflow guard; keep more nodes fp32 while the PSNR floor fails."""
    for spec, _ in ctx.graphs:
        _fp16_graph(ctx, spec)


def _fp16_graph(ctx: BuildContext, spec: GraphSpec) -> None:
    file = f"{spec.stem}.{SUFFIXES['fp16']}.onnx"
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
    ctx.log(f"{file}: {summary(rec)}; kept fp32: {blocked or 'none'}; gate: {rec['reason']}")
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


def stage_bf16(ctx: BuildContext) -> None:
    """Every fp32 graph in bf16, gated like fp16; recorded on the fp32 artifact.

    On a CPU with AVX-512 BF16 or AMX the graph runs on OpenVINO with the bf16 hint, as
    users will run it. Elsewhere the gate runs the graph with every weight and tensor rounded
    to bf16 on ONNX Runtime (``export.bf16``), recorded as ``"method": "emulated"``: the
    bundle then carries a bf16 gate for the machines that have it, and the runtime still
    refuses bf16 (exit 3) on the ones that do not.
    """
    native, why = bf16_support()
    runner = INFERENCE_PRECISIONS["bf16"]  # the backend that runs the hint
    if not native:
        ctx.log(f"bf16 gate emulated on ONNX Runtime: {why}")
    for spec, _ in ctx.graphs:
        src = ctx.tmp / f"{spec.stem}.onnx"
        if native:
            path, backend, precision, label = src, runner, "bf16", f"{runner}-cpu-bf16"
        else:
            path = ctx.tmp / f".genedge-tmp-{spec.stem}.bf16-emulated.onnx"
            onnx.save(bf16_emulation(onnx.load(str(src))), str(path))
            backend, precision, label = None, "fp32", "onnxruntime-cpu-bf16-emulated"
        b = open_file(
            path,
            backend,
            precision,
            BackendOptions(check_inputs=False),
            inputs=spec.inputs,
            outputs=spec.outputs,
        )
        try:
            rec = compare_to_fp32(ctx, spec, ArtifactRunner(b, label))
        finally:
            b.close()
            if not native:
                discard_staged(ctx.tmp, path)
        rec["method"] = runner if native else "emulated"
        passed = gate(ctx, rec, use_metric=spec.name == "step")  # as fp16
        rec["verdict"] = "pass" if passed else "fail"
        ctx.log(
            f"{spec.stem}.onnx in bf16 ({'OpenVINO' if native else 'emulated'}): {summary(rec)}"
        )
        fp32 = next(
            a
            for a in ctx.artifacts
            if a["graph"] == spec.name and a["format"] == "onnx" and a.get("precision") == "fp32"
        )
        fp32["inference_precisions"] = {
            "bf16": {"backend": runner, "verification": rec, "quality_approved": passed}
        }


def stage_int8(ctx: BuildContext) -> None:
    """Q/DQ int8 of the main graph, gated on held-out seeds, mixed-precision search on failure."""
    spec, o = ctx.main, ctx.opts
    src = ctx.tmp / f"{spec.stem}.onnx"
    feeds = calibration_feeds(ctx, spec)
    work = ctx.tmp / ".genedge-tmp-int8"
    work.mkdir(exist_ok=True)

    def build(kept: tuple[str, ...]) -> Path:
        return int8.int8_from_onnx(
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

    try:  # the candidates folder goes, whichever way the search ends
        ctx.log(
            f"calibrating int8 ({o.calib_method}, {o.calib_samples} samples from {calibration_spec(ctx).source})"
        )
        if o.max_quality_drop < 5 / o.quality_samples:
            ctx.log(
                f"warning: the task-metric budget {o.max_quality_drop:g} is under 5 samples of "
                f"{o.quality_samples} (one sample moves an accuracy by {1 / o.quality_samples:g})"
            )
        candidates = int8.quantizable_nodes(onnx.load(str(src)))
        recipe = search_recipe(build, evaluate, candidates, log=ctx.log)
        if not int8.quantized_weight_nodes(onnx.load(str(recipe.path))):
            why = (
                f"{len(candidates)} such node(s); {len(recipe.kept_float)} kept in float by the "
                "quality gate, the quantizer quantized none of the others"
                if candidates
                else "the graph has none"
            )
            skip_precision(
                ctx,
                "int8",
                f"no {'/'.join(int8.WEIGHTED_OPS)} weight of {src.name} is int8 ({why})",
            )
            return
        pointless = _fallback_not_worth_it(ctx, src, recipe) if recipe.kept_float else None
        if pointless:
            skip_precision(ctx, "int8", pointless)
            return
        os.replace(recipe.path, ctx.tmp / onnx_file("int8"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rec = dict(recipe.result.record, verdict="pass" if recipe.result.passed else "fail")
    kept = list(recipe.kept_float)
    ctx.log(f"{onnx_file('int8')}: {summary(rec)}; kept in float: {kept or 'none'}")
    ctx.log(f"{onnx_file('int8')} gate: {rec.get('reason', '')}")
    recipe_rec: dict = {"kept_float": kept}
    if recipe.sensitivity:
        recipe_rec["sensitivity"] = recipe.sensitivity
    if kept and recipe.all_int8 is not None:  # what made the search keep nodes in float
        recipe_rec["all_int8"] = _gate_numbers(recipe.all_int8.record)
    add_artifact(
        ctx,
        onnx_file("int8"),
        graph=spec.name,
        format="onnx",
        precision="int8",
        verification=rec,
        calibration=calibration_spec(ctx).record(),
        recipe=recipe_rec,
        quality_approved=recipe.result.passed,
    )


FALLBACK_SIZE = 0.9  # a fallback recipe below 90% of fp32's bytes counts as smaller


def _fallback_not_worth_it(ctx: BuildContext, src: Path, recipe) -> str | None:
    """Why a recipe with nodes kept in float is no better than fp32 (neither smaller nor
    faster at batch 16 on ONNX Runtime CPU), or None when it is worth keeping."""
    size, size32 = recipe.path.stat().st_size, src.stat().st_size
    if size < FALLBACK_SIZE * size32:
        return None
    runners = [open_for_speed(p) for p in (src, recipe.path)]
    try:
        if None in runners:
            return None
        (p32, p8), _ = interleaved_p50(runners, speed_feed(ctx, 16))
    finally:
        for r in runners:
            if r is not None:
                r.close()
    first = recipe.all_int8.record.get("reason", "") if recipe.all_int8 else ""
    return fallback_refusal(size / size32, p32 / p8, len(recipe.kept_float), first)


def fallback_refusal(size_ratio: float, speedup: float, kept: int, why: str) -> str | None:
    """The reason to write no int8 file for a fallback recipe that is neither smaller
    (``size_ratio`` of fp32's bytes) nor faster (``speedup`` over fp32) than fp32; else None."""
    if size_ratio < FALLBACK_SIZE or speedup > 1.0:
        return None
    return (
        f"all-int8 failed the gate ({why}); the fallback keeping {kept} node(s) in float is "
        f"{size_ratio:.0%} of fp32's size and {speedup:.2f}x its speed (batch 16, ort-cpu): "
        "no better than fp32, so no int8 file"
    )


def _gate_numbers(rec: dict) -> dict:
    keys = ("psnr_vs_fp32", "metric_drop", "metric_budget", "samples", "reason")
    return {k: rec[k] for k in keys if k in rec}


def skip_precision(ctx: BuildContext, precision: str, reason: str) -> None:
    """Write no artifact for ``precision``: log why and record it in the manifest's
    ``source.skipped`` (a file labelled int8 that runs in float would be a lie)."""
    ctx.log(f"{precision} skipped: {reason}")
    ctx.skipped[precision] = reason


def stage_trt(ctx: BuildContext) -> None:
    build_engines(ctx)


STAGES: dict[str, Callable[[BuildContext], None]] = {
    "fp32": stage_fp32,
    "fp16": stage_fp16,
    "bf16": stage_bf16,
    "int8": stage_int8,
    "trt": stage_trt,
}

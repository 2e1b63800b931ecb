"""The quality gate: a reduced-precision graph against its fp32 graph on held-out seeds.

``compare_to_fp32`` measures (PSNR/SSIM and task metrics for image graphs, max error and
bits-per-char for the text step, max error for the encoder); ``gate`` decides from that
record and the export options; ``summary`` is its one-line log form. The metric
definitions themselves live in ``genedge.export.checks.quality``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genedge.export.checks.quality import (
    gated_metrics,
    image_quality,
    image_task_metrics,
    metric_drop,
)
from genedge.export.context import BuildContext, fp32_runner, quality_feeds
from genedge.export.routes.graph_spec import GraphSpec
from genedge.metrics import bits_per_char

ENCODER_TOL = 0.05  # max |mu, logvar - fp32| for a reduced-precision encoder
# comparisons allow float rounding: 0.755 - 0.745 is 0.010000000000000009, a drop *of* 0.01
GATE_TOLERANCE = 1e-9
NO_METRIC = "image quality only: no reference data; pass --eval-data for the task metric"
NO_GATED_METRIC = "image quality only: an unconditional model's distances are recorded, not gated"


def compare_to_fp32(ctx: BuildContext, spec: GraphSpec, runner: Any) -> dict[str, Any]:
    """PSNR/SSIM (image graphs) or max error, and task metrics, of ``runner`` vs fp32 on held-out seeds."""
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
        ref_metrics = ctx.fp32_metrics.setdefault(
            spec.name, image_task_metrics(a, layout, labels, ctx.real)
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
    feeds = quality_feeds(ctx, ctx.main)
    tokens = np.stack([f["token"] for f in feeds], axis=1)  # (B, T)
    ref, test = bits_per_char(ref_runner, ctx.cfg, tokens), bits_per_char(runner, ctx.cfg, tokens)
    return {"metrics": {"bpc": test}, "metrics_fp32": {"bpc": ref}, "metric_drop": test - ref}


def gate(ctx: BuildContext, rec: dict[str, Any], *, use_metric: bool) -> bool:
    """PSNR floor (image graphs) and task-metric drop budget, each with ``GATE_TOLERANCE``.

    Writes into ``rec`` what decided: ``checks`` (which ran: ``psnr``, ``task_metric``,
    ``max_err``), the ``psnr_floor`` and ``metric_budget`` it was held to, and ``reason``, one
    line with the measured values against them.
    """
    o, checks, why, ok = ctx.opts, [], [], True
    if "psnr_vs_fp32" in rec:
        good = rec["psnr_vs_fp32"] >= o.min_psnr - GATE_TOLERANCE
        checks.append("psnr")
        rec["psnr_floor"] = o.min_psnr
        why.append(f"PSNR {rec['psnr_vs_fp32']:.1f} dB {'>=' if good else '<'} {o.min_psnr:g}")
        ok = ok and good
    gated = gated_metrics(rec.get("metrics_fp32") or {})
    if use_metric and "metric_drop" in rec and gated:
        good = rec["metric_drop"] <= o.max_quality_drop + GATE_TOLERANCE
        checks.append("task_metric")
        rec["metric_budget"] = o.max_quality_drop
        drop = f"{'/'.join(gated)} drop {rec['metric_drop']:.4f}"
        why.append(f"{drop} {'<=' if good else '>'} budget {o.max_quality_drop:g}")
        ok = ok and good
    elif use_metric and spec_is_image(rec):
        why.append(f"no task metric ({NO_GATED_METRIC if rec.get('metrics') else NO_METRIC})")
    if not checks:  # encoder: mu/logvar error only
        ok = rec["max_abs_err_vs_fp32"] <= ENCODER_TOL + GATE_TOLERANCE
        checks.append("max_err")
        why.append(f"max err {rec['max_abs_err_vs_fp32']:.3g} vs {ENCODER_TOL:g}")
    rec["checks"] = checks
    rec["reason"] = f"{'; '.join(why)} on {rec.get('samples', '?')} held-out samples"
    return bool(ok)


def spec_is_image(rec: dict[str, Any]) -> bool:
    return "psnr_vs_fp32" in rec


def summary(rec: dict[str, Any]) -> str:
    """A comparison record in one line: PSNR/SSIM, metric drop, max error (those present)."""
    parts = []
    if "psnr_vs_fp32" in rec:
        parts.append(f"PSNR {rec['psnr_vs_fp32']:.1f} dB, SSIM {rec['ssim_vs_fp32']:.4f}")
    if "metric_drop" in rec:
        parts.append(f"metric drop {rec['metric_drop']:.4f}")
    if "max_abs_err_vs_fp32" in rec:
        parts.append(f"max err {rec['max_abs_err_vs_fp32']:.3g}")
    return ", ".join(parts)

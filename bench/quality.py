"""Quality beside speed: what each precision costs, read from the manifest's verification records.

The exporter measured these on fixed seeds (docs/bundle.md "Artifact records"); the
bench only shows them next to the timings, it never re-derives them (the definitions live in
``genedge.metrics`` and ``genedge.train.eval``).
"""

from __future__ import annotations

from typing import Any

from genedge.manifest import MAIN_GRAPH, Manifest

FIELDS = (
    "max_abs_err_vs_torch",
    "max_abs_err_vs_fp32",
    "psnr_vs_fp32",
    "ssim_vs_fp32",
    "metric_drop",
)


def quality_rows(manifest: Manifest) -> list[dict[str, Any]]:
    """One row per ONNX/engine artifact of the main graph: precision, errors, task metrics."""
    graph = MAIN_GRAPH.get(manifest.kind, "generator")
    rows = []
    for a in manifest.artifacts:
        if a.graph != graph or a.format not in ("onnx", "engine"):
            continue
        v = a.verification
        row: dict[str, Any] = {"file": a.file, "format": a.format, "precision": a.precision}
        row.update({k: getattr(v, k) for k in FIELDS})
        row["metrics"] = dict(v.metrics)
        row["metrics_fp32"] = dict(v.metrics_fp32)  # same seeds, the fp32 graph
        row["verdict"] = v.verdict
        row["calibration"] = a.calibration.to_dict() if a.calibration else None
        row["kept_float"] = len(a.recipe.kept_float or ()) if a.recipe else 0
        row["quality_approved"] = a.quality_approved if a.precision == "int8" else None
        row["export_speed"] = _export_speed(a.speed)
        rows.append(row)
    return rows


def _export_speed(speed: Any) -> dict[str, dict[str, Any]]:
    """The export-time CPU record (docs/bundle.md ``speed``) as ``{batch: {p50_ms, ...}}``."""
    if speed is None:
        return {}
    return {str(b): s.to_dict() for b, s in sorted(speed.batch.items())}


SKIP_METRICS = ("num_samples",)


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    """Task metric names present in any row, in first-seen order (sample counts left out)."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(k for k in row["metrics"] if k not in SKIP_METRICS))
    return list(names)

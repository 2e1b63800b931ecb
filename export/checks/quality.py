"""Export's use of the quality metrics: one artifact's record against fp32, and the drop.

``image_quality`` and ``image_task_metrics`` assemble the verification record of an image
graph; ``metric_drop`` is how the gate reads task metrics. The metric definitions live in
``genedge.metrics`` (PSNR, SSIM, bits per character; numpy) and ``genedge.train.eval``
(Frechet distance, k-NN precision/recall, conditional accuracy; torch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genedge.metrics import psnr, ssim


def to_float_nchw(images: np.ndarray, layout: str) -> np.ndarray:
    """Graph output -> float32 (N, C, H, W) in [-1, 1], what the task metrics take."""
    from genedge.train.eval import float_images_from_uint8

    return images.astype(np.float32) if layout == "NCHW" else float_images_from_uint8(images)


def image_quality(ref: np.ndarray, test: np.ndarray, layout: str) -> dict[str, float]:
    """``psnr_vs_fp32``, ``ssim_vs_fp32``, ``max_abs_err_vs_fp32`` of one image batch."""
    err = float(np.max(np.abs(ref.astype(np.float64) - test.astype(np.float64)), initial=0.0))
    return {
        "max_abs_err_vs_fp32": err,
        "psnr_vs_fp32": _finite(psnr(ref, test, layout=layout)),
        "ssim_vs_fp32": ssim(ref, test, layout=layout),
    }


def _finite(x: float, cap: float = 200.0) -> float:
    return min(x, cap)  # JSON has no inf; 200 dB stands for "identical"


def load_reference_data(src: str | None, image_size: int | None = None) -> Any | None:
    """Real data (ImageData) for task metrics via genedge.train.data, or None when unavailable."""
    if not src:
        return None
    try:
        from genedge.train.data import load_image_data
    except ImportError:
        return None
    return load_image_data(src, image_size=image_size)


def image_task_metrics(
    images: np.ndarray, layout: str, labels: np.ndarray | None, real: Any
) -> dict[str, float]:
    """Task metrics from ``genedge.train.eval.image_metrics`` ({} when it or the data is missing)."""
    if real is None:
        return {}
    try:
        from genedge.train.eval import image_metrics
    except ImportError:
        return {}
    out = image_metrics(to_float_nchw(images, layout), labels, real)
    return {k: float(v) for k, v in dict(out).items() if isinstance(v, (int, float, np.floating))}


# recorded beside the task metrics, but about the yardstick rather than the images
CONTEXT_METRICS = frozenset({"judge_heldout_accuracy"})


def gated_metrics(ref: dict[str, Any]) -> list[str]:
    """The metrics of ``ref`` that ``metric_drop`` reads (accuracy-like, bits per character)."""
    return [
        k
        for k, v in ref.items()
        if v is not None and k not in CONTEXT_METRICS and ("acc" in k or k == "bpc")
    ]


def metric_drop(ref: dict[str, float], test: dict[str, float]) -> float:
    """Largest degradation over the gated metrics: accuracy-like (fraction) drop, bpc increase."""
    drops = [0.0]
    for k in gated_metrics(ref):
        v = ref[k]
        if test.get(k) is None:
            continue
        scale = 100.0 if abs(v) > 1.0 and "acc" in k else 1.0
        drops.append((v - test[k]) / scale if "acc" in k else test[k] - v)
    return max(drops)

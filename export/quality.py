"""Quality of reduced-precision artifacts against fp32: PSNR/SSIM (numpy), task metrics.

Images compared here are what the graphs output: uint8 (B, H, W, C) (peak 255) or float
(B, C, H, W) in [-1, 1] (peak 2). Task metrics come from ``genedge.train.eval`` when it is
available (conditional accuracy, Frechet distance for digits) and bits per character for ``ar``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_nhwc_float(images: np.ndarray, layout: str) -> tuple[np.ndarray, float]:
    x = images.astype(np.float64)
    if layout == "NCHW":
        x = x.transpose(0, 2, 3, 1)
    return x, (255.0 if images.dtype == np.uint8 else 2.0)


def psnr(ref: np.ndarray, test: np.ndarray, *, layout: str = "NHWC") -> float:
    """Peak signal-to-noise ratio in dB over a batch (inf when identical)."""
    a, peak = _as_nhwc_float(ref, layout)
    b, _ = _as_nhwc_float(test, layout)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def _gaussian_filter(x: np.ndarray, size: int = 7, sigma: float = 1.5) -> np.ndarray:
    """'valid' separable Gaussian blur over axes 1, 2 of (N, H, W, C)."""
    k = np.exp(-0.5 * ((np.arange(size) - size // 2) / sigma) ** 2)
    k /= k.sum()
    win = np.lib.stride_tricks.sliding_window_view(x, size, axis=1) @ k  # (N, H', W, C)
    return np.lib.stride_tricks.sliding_window_view(win, size, axis=2) @ k  # (N, H', W', C)


def ssim(ref: np.ndarray, test: np.ndarray, *, layout: str = "NHWC") -> float:
    """Mean structural similarity (Wang et al. 2004, 7x7 Gaussian window, sigma 1.5)."""
    a, peak = _as_nhwc_float(ref, layout)
    b, _ = _as_nhwc_float(test, layout)
    size = min(7, a.shape[1], a.shape[2])
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    f = lambda x: _gaussian_filter(x, size)  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    var_a, var_b, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(s.mean())


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


def metric_drop(ref: dict[str, float], test: dict[str, float]) -> float:
    """Largest degradation over the gated metrics: accuracy-like (fraction) drop, bpc increase."""
    drops = [0.0]
    for k, v in ref.items():
        if k not in test:
            continue
        scale = 100.0 if abs(v) > 1.0 and "acc" in k else 1.0
        if "acc" in k:
            drops.append((v - test[k]) / scale)
        elif k == "bpc":
            drops.append(test[k] - v)
    return max(drops)


def bits_per_char(runner: Any, cfg: Any, tokens: np.ndarray) -> float:
    """Bits per character of token rows (B, T) int64 under a step-graph runner (teacher forcing)."""
    B, T = tokens.shape
    state = {s: np.zeros((cfg.layers, B, cfg.hidden), np.float32) for s in cfg.state_names}
    nll = 0.0
    for t in range(T - 1):
        out = runner.run({"token": tokens[:, t], **state})
        logits = out["logits"].astype(np.float64)
        logp = logits - logits.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        nll -= logp[np.arange(B), tokens[:, t + 1]].sum()
        state = {s: out[f"{s}_out"] for s in cfg.state_names}
    return float(nll / (B * (T - 1)) / np.log(2))

"""The quality metrics that need only numpy: PSNR, SSIM, bits per character.

Where every metric genedge reports is defined:

- here: ``psnr`` and ``ssim`` of two image batches (an artifact against fp32), and
  ``bits_per_char`` of a step graph on token rows (teacher forcing through any runner);
- ``genedge.train.eval`` (torch): Frechet distance, k-NN precision/recall, conditional
  accuracy (``image_metrics``) and a checkpoint's bits per character on held-out text
  (``text_metrics``), in the feature spaces of ``genedge.train.features``;
- ``genedge.export.checks.quality``: how export records them and ``metric_drop``, what its gate
  reads; ``genedge.bench.quality`` only shows the manifest's records beside timings.

Images are what the graphs output: uint8 (B, H, W, C) (peak 255) or float (B, C, H, W)
in [-1, 1] (peak 2).
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

"""Feature spaces for image metrics (DESIGN.md section 8) and what they share.

Both work on float32 (N, C, H, W) images in [-1, 1]:

- the judge (``genedge.train.judge``): a small CNN trained on a labelled dataset's own
  labels, cached per dataset; its penultimate layer is the feature space and its logits
  give conditional accuracy. The bundled digits are one case of it.
- ``RandomConvFeatures``: a fixed-seed, randomly initialised conv net for unlabelled data.
  Nothing is downloaded or trained. Its raw activations are tiny (random weights shrink
  them layer by layer), so ``unit_variance_scale`` rescales real and generated features
  alike until the real features' mean per-dimension variance is 1: Frechet distances then
  read on a fixed scale (two samples of the same data land near the estimator's bias,
  O(D^2 / N); noise lands in the hundreds), and k-NN precision/recall, being scale-free,
  do not change. FID proper uses ImageNet Inception-v3 pool features; its weights need a
  network fetch and Inception on 16x16 grayscale digits is meaningless (it expects 299x299
  natural photos). Random conv features still separate distributions well (Naeem et al.
  2020 report that randomly initialised embeddings give usable fidelity/diversity
  metrics), but numbers in this space compare runs on the same data, size and seed only,
  never with published FIDs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genedge.user_cache import user_cache


class RandomConvFeatures(nn.Module):
    """(B, C, H, W) in [-1, 1], H, W >= 8 -> 128-d features from fixed random weights."""

    feature_dim = 128

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream alone
            torch.manual_seed(seed)
            self.convs = nn.Sequential(
                nn.Conv2d(channels, 32, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(64, 32, 3, stride=2, padding=1),
                nn.ReLU(),
            )
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x)  # (B, 32, H/4, W/4)
        return F.adaptive_avg_pool2d(h, 2).flatten(1)  # (B, 128)


def unit_variance_scale(real_features: np.ndarray) -> float:
    """The factor that makes the mean per-dimension variance of (N, D) real features 1."""
    mean_var = float(np.mean(np.var(real_features, axis=0)))
    return 1.0 / np.sqrt(mean_var) if mean_var > 0 else 1.0


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, size, size), antialiased bilinear (area-like when shrinking)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def cache_root() -> Path:
    """genedge's user cache (``genedge.user_cache``)."""
    return user_cache()


@torch.no_grad()
def classify(model: nn.Module, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """float32 (N, C, H, W) in [-1, 1] -> predicted class, int64 (N,)."""
    out = [
        model(torch.from_numpy(np.ascontiguousarray(images[i : i + batch], np.float32))).argmax(1)
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out).numpy().astype(np.int64)


@torch.no_grad()
def extract_features(net: nn.Module, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """float32 (N, C, H, W) in [-1, 1] -> float64 (N, D) features from ``net.features``."""
    out = [
        net.features(torch.from_numpy(np.ascontiguousarray(images[i : i + batch], np.float32)))
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out).double().numpy()

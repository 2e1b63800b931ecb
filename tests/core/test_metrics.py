"""The numpy quality metrics (genedge.metrics) on inputs with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from genedge.metrics import bits_per_char, psnr, ssim


def test_psnr_ssim_known_values():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (4, 16, 16, 1), dtype=np.uint8)
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    b = np.clip(a.astype(int) + 1, 0, 255).astype(np.uint8)
    mse = np.mean((a.astype(float) - b) ** 2)
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / mse))
    noisy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert 0 < ssim(a, noisy) < ssim(a, b) < 1
    f = rng.uniform(-1, 1, (2, 1, 8, 8)).astype(np.float32)  # float NCHW, peak 2
    assert psnr(f, f + 0.02, layout="NCHW") == pytest.approx(10 * np.log10(4 / 0.02**2), rel=1e-3)


class _FixedLogits:
    """A one-layer step graph whose logits ignore the token: log2(V) bits when uniform."""

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits  # (V,)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        B = len(feed["token"])
        return {"logits": np.tile(self.logits, (B, 1)), "h_out": feed["h"]}


def test_bits_per_char_known_values():
    cfg = SimpleNamespace(layers=1, hidden=2, state_names=("h",))
    tokens = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], dtype=np.int64)  # (B, T)
    assert bits_per_char(_FixedLogits(np.zeros(4)), cfg, tokens) == pytest.approx(2.0)
    p = np.array([0.5, 0.25, 0.125, 0.125])
    expected = -np.mean([np.log2(p[t]) for row in tokens for t in row[1:]])
    assert bits_per_char(_FixedLogits(np.log(p)), cfg, tokens) == pytest.approx(expected)

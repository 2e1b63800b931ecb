"""Seeded latents exactly as docs/bundle.md, labels, and latent walks."""

from __future__ import annotations

import numpy as np
import pytest

from genedge.errors import BadInputError
from genedge.runtime.latents import (
    LatentPath,
    cached_latents,
    circle_basis,
    make_labels,
    seeded_latents,
    slerp,
    walk_latents,
)


def test_latents_follow_the_bundle_formula() -> None:
    z = seeded_latents(5, 16, seed=7)
    ref = np.random.default_rng(7).standard_normal((5, 16), dtype=np.float32)
    assert z.dtype == np.float32 and np.array_equal(z, ref)


def test_truncation_resamples_from_the_same_generator_then_scales() -> None:
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((64, 8), dtype=np.float32)
    bad = np.abs(ref) > 2
    while bad.any():
        ref[bad] = rng.standard_normal(int(bad.sum()), dtype=np.float32)
        bad = np.abs(ref) > 2
    z = seeded_latents(64, 8, seed=3, truncation=0.5)
    assert np.array_equal(z, ref * np.float32(0.5))
    assert np.abs(z).max() <= 1.0


@pytest.mark.parametrize("t", [0.0, -1.0, 1.5])
def test_bad_truncation(t) -> None:
    with pytest.raises(BadInputError, match="truncation"):
        seeded_latents(1, 4, truncation=t)


def test_cached_latents_are_equal_and_read_only() -> None:
    a = cached_latents(2, 4, seed=1)
    assert np.array_equal(a, seeded_latents(2, 4, seed=1)) and cached_latents(2, 4, seed=1) is a
    with pytest.raises(ValueError):
        a[0, 0] = 1.0


def test_labels() -> None:
    assert make_labels(5, 3).tolist() == [0, 1, 2, 0, 1]
    assert make_labels(3, 10, 4).tolist() == [4, 4, 4]
    assert make_labels(2, 10, [1, 9]).dtype == np.int64
    assert make_labels(2, 0) is None
    for bad in (10, [0, 10], -1, [1, 2, 3], np.array([0.5, 1.0])):
        with pytest.raises(BadInputError):
            make_labels(2, 10, bad)
    with pytest.raises(BadInputError, match="unconditional"):
        make_labels(2, 0, 1)


def test_circle_walk_preserves_norm_and_loops() -> None:
    a, b = seeded_latents(1, 32, 0), seeded_latents(1, 32, 1)
    a2, b2 = circle_basis(a, b)
    assert abs(float((a2 * b2).sum())) < 1e-3
    zs = walk_latents([0, 1], 24, 32, kind="circle")
    norms = np.linalg.norm(zs, axis=1)
    assert np.allclose(norms, np.linalg.norm(a), rtol=1e-5)
    assert np.allclose(zs[0], a[0], atol=1e-6)


def test_slerp_and_lerp_walks_hit_the_seeds() -> None:
    for kind in ("lerp", "slerp"):
        zs = walk_latents([0, 1, 2], 4, 8, kind=kind)
        assert zs.shape == (9, 8)
        assert np.allclose(zs[0], seeded_latents(1, 8, 0)[0], atol=1e-6)
        assert np.allclose(zs[4], seeded_latents(1, 8, 1)[0], atol=1e-6)
        assert np.allclose(zs[-1], seeded_latents(1, 8, 2)[0], atol=1e-6)
    a = seeded_latents(1, 8, 0)
    assert np.allclose(slerp(a, a, 0.3), a, atol=1e-6)  # parallel: no division by zero


def test_latent_path_matches_walk() -> None:
    out = np.empty((2, 8), np.float32)
    p = LatentPath("circle", 2, 8, seed=0, period=10)
    assert np.allclose(p.at(10, out.copy()), p.at(0, out.copy()))
    q = LatentPath("lerp", 1, 8, seed=5, period=4)
    assert np.allclose(q.at(4, out[:1]), cached_latents(1, 8, 6))

"""Logit filters on known logits and seeded token draws."""

from __future__ import annotations

import numpy as np
import pytest

from genedge.errors import BadInputError
from genedge.runtime.sampling import (
    TemperatureFilter,
    TopKFilter,
    TopPFilter,
    make_filters,
    sample_token,
    softmax,
)

LOGITS = np.log(np.array([0.5, 0.25, 0.15, 0.1]))


def test_top_k_keeps_the_k_largest() -> None:
    x = TopKFilter(2)(LOGITS.copy())
    assert np.isfinite(x).tolist() == [True, True, False, False]


def test_top_p_keeps_the_smallest_nucleus() -> None:
    assert np.isfinite(TopPFilter(0.5)(LOGITS.copy())).tolist() == [True, False, False, False]
    assert np.isfinite(TopPFilter(0.7)(LOGITS.copy())).tolist() == [True, True, False, False]
    assert np.isfinite(TopPFilter(0.8)(LOGITS.copy())).tolist() == [True, True, True, False]


def test_temperature_sharpens() -> None:
    p = softmax(TemperatureFilter(0.5)(LOGITS.copy()))
    assert np.allclose(p, np.array([0.25, 0.0625, 0.0225, 0.01]) / 0.345)


def test_draws_are_seeded_and_follow_the_distribution() -> None:
    def draws(seed):
        rng = np.random.default_rng(seed)
        return [sample_token(LOGITS, rng) for _ in range(4000)]

    a = draws(0)
    assert a == draws(0)
    freq = np.bincount(a, minlength=4) / len(a)
    assert np.allclose(freq, [0.5, 0.25, 0.15, 0.1], atol=0.03)
    rng = np.random.default_rng(0)
    assert {sample_token(LOGITS, rng, make_filters(1.0, top_k=1)) for _ in range(50)} == {0}
    assert sample_token(LOGITS, rng, greedy=True) == 0


@pytest.mark.parametrize("t, k, p", [(-1, 0, 1.0), (1.0, -1, 1.0), (1.0, 0, 0.0), (1.0, 0, 1.5)])
def test_bad_settings(t, k, p) -> None:
    with pytest.raises(BadInputError):
        make_filters(t, k, p)


def _top_p_by_stable_index_sort(logits: np.ndarray, p: float) -> np.ndarray:
    """The nucleus as a stable sort of token ids defines it (ties: lower ids first)."""
    order = np.argsort(-logits, kind="stable")
    keep = np.searchsorted(np.cumsum(softmax(logits[order])), p) + 1
    logits[order[keep:]] = -np.inf
    return logits


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.999])
def test_top_p_keeps_the_set_a_stable_index_sort_keeps_ties_included(p) -> None:
    rng = np.random.default_rng(7)
    for trial in range(40):
        x = rng.standard_normal(600)
        if trial % 2:
            x = np.round(x, 1)  # many ties, some at the cut
        if trial % 5 == 0:
            x[rng.integers(0, 600, 50)] = -np.inf  # masked tokens (top-k, penalties)
        got = TopPFilter(p)(x.copy())
        want = _top_p_by_stable_index_sort(x.copy(), p)
        assert np.array_equal(np.isfinite(got), np.isfinite(want)), (trial, p)
        assert np.array_equal(got[np.isfinite(got)], x[np.isfinite(got)])  # kept: untouched

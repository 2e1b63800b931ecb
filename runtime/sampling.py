"""Logit filters and token sampling for text generation (numpy only).

Filters are small callables applied in order to a float64 (V,) logits buffer, in place;
``sample_token`` then draws from the softmax with a seeded ``np.random.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genedge.errors import BadInputError
from genedge.latents import is_real


@dataclass(frozen=True)
class TemperatureFilter:
    """Divide logits by ``temperature`` (> 0); 0 means greedy and is handled by ``sample_token``."""

    temperature: float

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        logits /= self.temperature
        return logits


@dataclass(frozen=True)
class TopKFilter:
    """Keep the ``k`` largest logits (ties at the k-th value are kept), set the rest to -inf."""

    k: int

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        if 0 < self.k < logits.shape[-1]:
            kth = np.partition(logits, -self.k)[-self.k]
            logits[logits < kth] = -np.inf
        return logits


@dataclass(frozen=True)
class TopPFilter:
    """Nucleus: keep the smallest set of most likely tokens whose probability reaches ``p``."""

    p: float

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        """Ties at the smallest kept value keep their lowest token ids first (the order of a
        stable sort). The values are sorted, not their indices: a stable index sort of a
        152k vocabulary took ~20x as long as a value sort."""
        if self.p >= 1.0:
            return logits
        ranked = np.sort(logits)[::-1]  # the values, largest first
        keep = int(np.searchsorted(np.cumsum(softmax(ranked)), self.p)) + 1  # tokens to reach p
        if keep >= len(ranked):
            return logits
        last = ranked[keep - 1]  # the smallest kept value
        drop = logits < last
        tied = np.flatnonzero(logits == last)
        drop[tied[keep - int(np.count_nonzero(logits > last)) :]] = True
        logits[drop] = -np.inf
        return logits


MIN_TEMPERATURE = 1e-30  # below this, logits / T overflow float64 (1e-6 still samples as greedy)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


def make_filters(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> list:
    """The filter chain for these settings, validated (temperature >= 0, top_k >= 0, 0 < top_p <= 1)."""
    numbers = all(is_real(v) for v in (temperature, top_k, top_p))
    if (
        not numbers
        or not all(math.isfinite(v) for v in (temperature, top_k, top_p))
        or temperature < 0
        or top_k < 0
        or top_k != int(top_k)
        or not 0 < top_p <= 1
    ):
        raise BadInputError(
            f"Sampling settings temperature={temperature}, top_k={top_k}, top_p={top_p} are invalid; "
            "expected a finite temperature >= 0 (0: greedy), an integer top_k >= 0 (0: off), 0 < top_p <= 1."
        )
    if 0 < temperature < MIN_TEMPERATURE:  # logits / 1e-300 overflow to inf and NaN probabilities
        raise BadInputError(
            f"temperature {temperature!r} is below {MIN_TEMPERATURE:g}; use 0 for greedy decoding."
        )
    filters: list = []
    if temperature > 0 and temperature != 1.0:
        filters.append(TemperatureFilter(temperature))
    if top_k > 0:
        filters.append(TopKFilter(int(top_k)))
    if top_p < 1.0:
        filters.append(TopPFilter(top_p))
    return filters


def sample_token(
    logits: np.ndarray,
    rng: np.random.Generator,
    filters: Sequence = (),
    greedy: bool = False,
    work: np.ndarray | None = None,
) -> int:
    """One token id from float logits (V,): argmax when ``greedy``, else a draw after ``filters``.

    ``work``: a float64 (V,) scratch buffer; with it a step without top-k/top-p allocates
    nothing. The draw inverts the cumulative sum of ``exp(x - max)`` at a uniform point of its
    total: the softmax's distribution without dividing by the sum.
    """
    if greedy:
        return int(np.argmax(logits))
    x = np.empty(logits.shape, np.float64) if work is None else work
    np.copyto(x, logits)  # float64 copy: the filters work in place on it
    for f in filters:
        x = f(x)
    np.subtract(x, x.max(), out=x)
    np.exp(x, out=x)
    cdf = np.cumsum(x, out=x)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))

"""One way to measure speed: candidates interleaved round by round, feeds built from the
declared tensors, medians and ratios with their spread.

Export's speed record (``export.speed``), ``genedge tune`` (``runtime.tune``) and
``genedge bench`` (``bench.runner``) all time through ``interleave``: every round gives each
candidate one turn, so a load spike or a cache state falls on all of them alike, and the
order changes from round to round so that nobody always runs right after the same one: a
turn inherits what the one before left (caches it evicted, cores it left idle), so the
orders form a Williams design, in which every candidate follows every other equally often
over ``balance_period(count)`` rounds (bench's image runs keep a fixed order: their turns
begin by letting the previous one's threads park).
What a turn does is the caller's: one timed call, a block of calls for a time, or a
settle, a re-warm and a budget of calls. The load of each round is measured where asked
(``genedge.cpu_load.RoundLoad``), so a timing taken on a busy machine is known as such.
Ratios come round by round: round k of two candidates shared the machine's state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from genedge.cpu_load import RoundLoad
from genedge.manifest import Manifest, TensorSpec

Turn = Callable[[int, int], list[float]]  # (candidate, round) -> that turn's times


def feed_for(
    inputs: Sequence[TensorSpec],
    batch: int,
    int_ranges: Mapping[str, tuple[int, int]] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Inputs of ``batch`` for tensors ``inputs`` (symbolic dims take ``batch``): normal
    floats, integers cycling through their range (``int_ranges``; 0 where not given)."""
    rng = np.random.default_rng(seed)
    ranges = int_ranges or {}
    feed = {}
    for s in inputs:
        shape = tuple(d if isinstance(d, int) else batch for d in s.shape)
        if s.np_dtype.kind == "f":
            feed[s.name] = rng.standard_normal(shape).astype(s.np_dtype)
        else:
            lo, hi = ranges.get(s.name, (0, 0))
            values = lo + np.arange(int(np.prod(shape))) % (hi - lo + 1)
            feed[s.name] = values.reshape(shape).astype(s.np_dtype)
    return feed


def int_ranges(manifest: Manifest) -> dict[str, tuple[int, int]]:
    """The valid range of each integer input of the bundle's graphs (labels, tokens)."""
    k = manifest.model.num_classes if manifest.kind != "ar" else 0
    ranges = {"label": (0, max(k - 1, 0))}
    if manifest.kind == "ar":
        ranges["token"] = (0, max(manifest.model.vocab_size - 1, 0))
    return ranges


def interleave(
    count: int,
    turn: Turn,
    *,
    seconds: float | None = None,
    rounds: int | None = None,
    min_rounds: int = 3,
    max_rounds: int | None = None,
    rotate: bool = True,
    load: RoundLoad | None = None,
    after_round: Callable[[int], None] | None = None,
) -> list[list[list[float]]]:
    """``times[i][r]``: what ``turn(i, r)`` returned for candidate ``i`` in round ``r``.

    Either a fixed number of ``rounds``, or rounds for ``seconds`` (at least ``min_rounds``,
    at most ``max_rounds``). ``rotate``: round r runs the candidates in ``round_order(count,
    r)`` (else 0, 1, ...). ``after_round(rounds done)`` is called after each round (a
    progress line).
    """
    if (seconds is None) == (rounds is None):
        raise ValueError("interleave needs exactly one of seconds / rounds")
    times: list[list[list[float]]] = [[] for _ in range(count)]
    t_end = time.perf_counter() + (seconds or 0.0)
    r = 0
    while _more(r, rounds, min_rounds, max_rounds, t_end):
        if load is not None:
            load.start()
        for i in round_order(count, r) if rotate else range(count):
            times[i].append(turn(i, r))
        if load is not None:
            load.stop()
        r += 1
        if after_round is not None:
            after_round(r)
    return times


def round_order(count: int, r: int) -> list[int]:
    """Round ``r``'s order of ``count`` candidates in a Williams design: 0, 1, count-1, 2,
    count-2, ... shifted by r, and for an odd count the same rows reversed in rounds count to
    2*count-1. Within the rounds of one period each candidate runs right after each other
    one equally often (once; twice for an odd count); a plain rotation would put most turns
    of a candidate after the same one."""
    base = [0]
    lo, hi = 1, count - 1
    while lo <= hi:
        base.append(lo)
        if lo != hi:
            base.append(hi)
        lo, hi = lo + 1, hi - 1
    row = [(c + r) % count for c in base]
    return row[::-1] if count % 2 and r % (2 * count) >= count else row


def balance_period(count: int) -> int:
    """Rounds after which ``round_order`` has put every candidate after every other equally
    often: ``count``, or ``2 * count`` for an odd count (1 for a single candidate)."""
    return 1 if count < 2 else count * (2 if count % 2 else 1)


def _more(done: int, rounds: int | None, low: int, high: int | None, t_end: float) -> bool:
    if rounds is not None:
        return done < rounds
    if high is not None and done >= high:
        return False
    return done < low or time.perf_counter() < t_end


def time_runs(run: Callable[[], Any], *, seconds: float = 0.0, runs: int = 1) -> list[float]:
    """Times (ms) of ``run``: at least ``runs`` calls, and calls until ``seconds`` passed."""
    out: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(out) < runs or time.perf_counter() < t_end:
        t0 = time.perf_counter_ns()
        run()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def median(times: Sequence[Sequence[float]]) -> float:
    """The median of one candidate's times, every round pooled."""
    return float(np.median(np.concatenate([np.asarray(t, dtype=float) for t in times])))


def round_medians(times: Sequence[Sequence[float]]) -> list[float]:
    """The median of each round's times of one candidate."""
    return [float(np.median(t)) for t in times]


def round_ratios(num: Sequence[float], den: Sequence[float]) -> list[float]:
    """``num[k] / den[k]`` per round k (rounds where either is missing or zero left out)."""
    return [a / b for a, b in zip(num, den, strict=False) if a and b]


def spread(values: Sequence[float], low: float = 10, high: float = 90) -> tuple[float, float]:
    """The ``low``-th and ``high``-th percentiles of ``values``: a range one odd round
    cannot stretch."""
    lo, hi = np.percentile(np.asarray(values, dtype=float), [low, high])
    return float(lo), float(hi)


def relative_to_fastest(rounds: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Per label: the median over rounds of its round time over the round's fastest.

    ``rounds[label][i]`` is the label's time in round i; every label has the same rounds.
    A load spike slows every candidate of its round alike and cancels out here, where pooled
    medians let it decide between two close candidates.
    """
    per_round = np.array(list(rounds.values()), dtype=float)  # (labels, rounds)
    ratios = per_round / per_round.min(axis=0, keepdims=True)
    return {label: float(np.median(r)) for label, r in zip(rounds, ratios, strict=True)}

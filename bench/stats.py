"""Latency statistics from raw ``perf_counter_ns`` timings: pure functions, no I/O.

Percentile method: linear interpolation between closest ranks, the definition of
numpy's default ``method='linear'`` (Hyndman & Fan type 7). For sorted samples
``x[0] <= ... <= x[n-1]`` and ``q`` in [0, 100]::

    h = (n - 1) * q / 100;  lo = floor(h)
    P(q) = x[lo] + (h - lo) * (x[lo + 1] - x[lo])

So p50 of ``[1, 2, 3, 4]`` is 2.5 and p90 is 3.7. With n samples only percentiles
below ``100 * (1 - 1/n)`` are backed by more than one sample: p99.9 means something
from n >= 1000 on, and ``LatencyStats.p999_reliable`` says so.

Everything here takes the *measured* iterations only: warm-up and load time never
reach these functions (``genedge.bench.timer`` drops them before).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# where a result's latency CDF is kept (percent): enough points to redraw the plot's curve
CDF_QUANTILES = (
    0.0, 0.1, 0.5, 1.0, 2.0, *(float(q) for q in range(5, 100, 5)),
    97.5, 99.0, 99.5, 99.9, 99.99, 100.0,
)  # fmt: skip
NS_PER_MS = 1e6
NS_PER_S = 1e9


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, by linear interpolation."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    h = (n - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return float(sorted_values[lo]) + (h - lo) * (
        float(sorted_values[hi]) - float(sorted_values[lo])
    )


@dataclass(frozen=True)
class LatencyStats:
    """Summary of ``n`` measured calls; every time in nanoseconds (``*_ms`` helpers below)."""

    n: int
    mean: float
    std: float  # population standard deviation
    min: float
    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    total: float  # sum of the measured calls

    @property
    def p999_reliable(self) -> bool:
        return self.n >= 1000

    def ms(self, field: str) -> float:
        return float(getattr(self, field)) / NS_PER_MS

    def to_dict(self) -> dict[str, Any]:
        d = {k: (v / NS_PER_MS if k not in ("n",) else v) for k, v in asdict(self).items()}
        return {"unit": "ms", **d, "p999_reliable": self.p999_reliable}


def latency_stats(times_ns: Sequence[int | float]) -> LatencyStats:
    """Percentiles (see module docstring), mean, population std, min, max of the timings."""
    if not times_ns:
        raise ValueError("no timings: at least one measured iteration is needed")
    xs = sorted(float(t) for t in times_ns)
    n = len(xs)
    mean = math.fsum(xs) / n
    var = math.fsum((x - mean) ** 2 for x in xs) / n
    p50, p90, p99, p999 = (percentile(xs, q) for q in PERCENTILES)
    return LatencyStats(n, mean, math.sqrt(var), xs[0], p50, p90, p99, p999, xs[-1], math.fsum(xs))


def iqr(values: Sequence[float]) -> tuple[float, float]:
    """The interquartile range (25th and 75th percentiles, ``percentile``'s interpolation):
    the middle half of ``values``, which one preempted round cannot stretch as it does
    min..max."""
    xs = sorted(float(v) for v in values if not math.isnan(v))
    if not xs:
        raise ValueError("interquartile range of an empty sample")
    return percentile(xs, 25.0), percentile(xs, 75.0)


def round_p50s(times_ns: Sequence[int | float], round_sizes: Sequence[int]) -> list[float | None]:
    """The median (ns) of each round's calls, in order (``None`` for a round with no calls):
    ``times_ns`` holds the rounds back to back, ``round_sizes`` says how many calls each."""
    out: list[float | None] = []
    i = 0
    for size in round_sizes:
        out.append(latency_stats(times_ns[i : i + size]).p50 if size else None)
        i += size
    return out


def timing_summary(times_ns: Sequence[int | float], round_sizes: Sequence[int]) -> dict[str, Any]:
    """What a saved report keeps of one case's raw timings, in ms: each round's call count and
    median (the per-round ranges of the ratios come from these) and the latency CDF at
    ``CDF_QUANTILES``. The percentiles themselves are in ``LatencyStats.to_dict``."""
    xs = sorted(float(t) for t in times_ns)
    p50s = round_p50s(times_ns, round_sizes)
    return {
        "rounds": {
            "sizes": list(round_sizes),
            "p50_ms": [None if p is None else p / NS_PER_MS for p in p50s],
        },
        "cdf_ms": {
            "q": list(CDF_QUANTILES),
            "ms": [percentile(xs, q) / NS_PER_MS for q in CDF_QUANTILES] if xs else [],
        },
    }


def throughput(stats: LatencyStats, samples_per_call: int) -> float:
    """Samples per second over the measured calls (``n * batch / sum of call times``)."""
    if stats.total <= 0:
        return math.inf
    return stats.n * samples_per_call * NS_PER_S / stats.total


def intervals(timestamps_ns: Sequence[int | float]) -> list[float]:
    """Differences between consecutive timestamps (frame intervals)."""
    return [float(b) - float(a) for a, b in zip(timestamps_ns[:-1], timestamps_ns[1:], strict=True)]


@dataclass(frozen=True)
class JitterStats:
    """Frame-interval jitter: |interval - target period|, in nanoseconds."""

    frames: int
    period: float  # the target interval 1/fps
    interval: LatencyStats  # the raw intervals
    deviation: LatencyStats  # |interval - period|

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "period_ms": self.period / NS_PER_MS,
            "interval": self.interval.to_dict(),
            "jitter": self.deviation.to_dict(),
        }


def jitter(timestamps_ns: Sequence[int | float], fps: float) -> JitterStats:
    """Interval and jitter percentiles of frame timestamps against the period ``1/fps``."""
    gaps = intervals(timestamps_ns)
    if not gaps:
        raise ValueError("jitter needs at least two frame timestamps")
    period = NS_PER_S / fps
    return JitterStats(
        len(timestamps_ns),
        period,
        latency_stats(gaps),
        latency_stats([abs(g - period) for g in gaps]),
    )


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; ``nan`` when the denominator is zero or missing."""
    if not denominator or math.isnan(denominator):
        return math.nan
    return numerator / denominator

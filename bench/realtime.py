"""Real-time mode: the runtime's stream loop at a target fps, and the highest fps that holds.

A frame's arrival is taken on the consumer side (when the stream hands it over), so the
interval jitter is what a display would see. Missed deadlines come from the runtime's
own counter (``stream.stats``); where it has none, an interval longer than 1.5 periods
counts as a miss (a frame slot went by without a frame). The highest fps that holds is
found by bisection over short runs, each of which must miss nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from genedge.runtime import Sampler
from genedge.runtime.realtime import DEFAULT_PRIORITY

from .cases import describe, open_kwargs
from .options import BenchOptions
from .runner import CaseResult
from .stats import NS_PER_S, intervals, jitter

LATE_FACTOR = 1.5
SEARCH_STEPS = 6
SEARCH_SECONDS = 1.0
MAX_FPS = 2000.0


def runtime_missed(stats: dict[str, Any]) -> int | None:
    """The runtime's missed-deadline counter, whatever its exact name (``missed``, ``missed_deadlines``)."""
    for key, value in stats.items():
        if "miss" in key and isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


def summarize_stream(
    arrivals_ns: list[int], fps: float, seconds: float, runtime_stats: dict[str, Any]
) -> dict[str, Any]:
    """Counters and jitter percentiles of one stream run from consumer-side arrival times."""
    period = NS_PER_S / fps
    gaps = intervals(arrivals_ns)
    late = sum(1 for g in gaps if g > LATE_FACTOR * period)
    missed = runtime_missed(runtime_stats)
    out: dict[str, Any] = {
        "fps": fps,
        "seconds": seconds,
        "frames": len(arrivals_ns),
        "expected_frames": int(fps * seconds),
        "missed_deadlines": missed if missed is not None else late,
        "late_intervals": late,
        "missed_source": "runtime" if missed is not None else f"intervals > {LATE_FACTOR} periods",
        "runtime_stats": runtime_stats,
    }
    if len(arrivals_ns) > 1:
        j = jitter(arrivals_ns, fps)
        out["achieved_fps"] = (len(arrivals_ns) - 1) * NS_PER_S / (arrivals_ns[-1] - arrivals_ns[0])
        out.update(j.to_dict())
    return out


def stream_once(sampler: Any, fps: float, seconds: float) -> dict[str, Any]:
    """Run ``sampler.stream(fps=, seconds=)`` to its end, timing each frame's arrival, with the
    consumer at real-time priority as ``genedge live`` runs it."""
    clock = time.perf_counter_ns
    stream = sampler.stream(fps=fps, seconds=seconds, realtime_priority=DEFAULT_PRIORITY)
    arrivals: list[int] = []
    try:
        for _frame in stream:
            arrivals.append(clock())
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return summarize_stream(arrivals, fps, seconds, describe(getattr(stream, "stats", None)))


def highest_fps(
    holds: Callable[[float], bool], hi: float, *, steps: int = SEARCH_STEPS
) -> tuple[float, bool]:
    """Bisection for the highest fps in (0, hi] where ``holds(fps)``; returns (fps, hi_held).

    ``hi`` is tried first (if it holds, the answer is "at least hi"). The lower bound
    starts at ``hi / 2**steps`` and is checked before bisecting; if even that fails the
    answer is 0.
    """
    if holds(hi):
        return hi, True
    lo = hi / 2**steps
    if not holds(lo):
        return 0.0, False
    for _ in range(steps):
        mid = math.sqrt(lo * hi)  # geometric: fps spans orders of magnitude
        lo, hi = (mid, hi) if holds(mid) else (lo, mid)
    return lo, False


def _search_ceiling(results: list[CaseResult], backend: str, precision: str) -> float:
    """No stream can beat 1/p50 of a batch-1 call; search a little above it."""
    for r in results:
        if (
            r.kind == "runtime"
            and r.batch == 1
            and r.backend == backend
            and r.precision == precision
        ):
            return min(MAX_FPS, 1.2 * NS_PER_S / r.stats.p50)
    return 240.0


def realtime_bench(
    o: BenchOptions, results: list[CaseResult], notes: list[str]
) -> dict[str, Any] | None:
    """The stream at ``o.fps`` for ``o.fps_seconds``, then the highest fps with no miss."""
    measured = [r for r in results if r.kind == "runtime" and r.batch == 1] or [
        r for r in results if r.kind == "runtime"
    ]
    if not measured:
        notes.append("real-time mode: no runtime configuration was measured")
        return None
    backend, precision = measured[0].backend, measured[0].precision
    sampler = Sampler.open(o.bundle, **open_kwargs(Sampler.open, backend, precision, o.threads))
    try:
        if not hasattr(sampler, "stream"):
            notes.append("real-time mode: this runtime's Sampler has no stream()")
            return None
        at_target = stream_once(sampler, float(o.fps or 30.0), o.fps_seconds)
        run_s = min(SEARCH_SECONDS, o.fps_seconds)
        fps, capped = highest_fps(
            lambda f: stream_once(sampler, f, run_s)["missed_deadlines"] == 0,
            _search_ceiling(results, backend, precision),
        )
    finally:
        close = getattr(sampler, "close", None)
        if close is not None:
            close()
    return {
        "backend": backend,
        "precision": precision,
        "at_target": at_target,
        "highest_fps_without_miss": fps,
        "search_ceiling_reached": capped,
        "search": {"steps": SEARCH_STEPS, "seconds_per_run": run_s},
    }

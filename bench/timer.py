"""The measuring loop: warm-up (discarded), then ``perf_counter_ns`` around every call.

``fn`` is the whole hot call a user makes (inputs already prepared, outputs into
preallocated buffers). On a GPU ``sync`` must wait for the device (stream
synchronize), otherwise we would time the enqueue only; it runs inside the timed
region, after ``fn``, exactly as a user who reads the result must wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

Call = Callable[[], object]


@dataclass(frozen=True)
class Budget:
    """How much to measure per case: a number of calls or a wall-clock duration."""

    iters: int | None = None
    seconds: float | None = None
    warmup: int = 20

    def __post_init__(self) -> None:
        if (self.iters is None) == (self.seconds is None):
            raise ValueError("Budget needs exactly one of iters / seconds")
        if self.iters is not None and self.iters < 1:
            raise ValueError(f"iters must be >= 1, got {self.iters}")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")


def warm_up(fn: Call, count: int, sync: Call | None = None) -> None:
    """Run ``fn`` ``count`` times untimed (lazy allocation, kernel selection, caches)."""
    for _ in range(count):
        fn()
        if sync is not None:
            sync()


def time_calls(fn: Call, count: int, sync: Call | None = None) -> list[int]:
    """``count`` timed calls; returns each call's duration in nanoseconds."""
    clock = time.perf_counter_ns
    out: list[int] = []
    append = out.append
    for _ in range(count):
        t0 = clock()
        fn()
        if sync is not None:
            sync()
        append(clock() - t0)
    return out


def time_for(
    fn: Call, seconds: float, sync: Call | None = None, *, min_calls: int = 1
) -> list[int]:
    """Timed calls until ``seconds`` of wall time have passed (at least ``min_calls``)."""
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    out: list[int] = []
    while len(out) < min_calls or clock() < deadline:
        t0 = clock()
        fn()
        if sync is not None:
            sync()
        out.append(clock() - t0)
    return out


def measure(fn: Call, budget: Budget, sync: Call | None = None) -> list[int]:
    """Warm up, then time ``fn`` for the budget; warm-up calls are never returned."""
    warm_up(fn, budget.warmup, sync)
    if budget.iters is not None:
        return time_calls(fn, budget.iters, sync)
    assert budget.seconds is not None
    return time_for(fn, budget.seconds, sync)


def time_once(fn: Call) -> tuple[object, int]:
    """Call ``fn`` once; return its result and its duration in nanoseconds (load, compile)."""
    t0 = time.perf_counter_ns()
    result = fn()
    return result, time.perf_counter_ns() - t0

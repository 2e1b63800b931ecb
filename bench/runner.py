"""Interleaved measurement of many cases: A B C A B C ... so machine noise hits all alike.

1. open every target once (load time measured, reported apart, never in steady state;
   library imports happen before, in ``preload``, and show in the cold start instead);
2. prepare each target for each batch size and time its first call (for torch.compile
   this is the compile time);
3. warm every case up (discarded);
4. rounds: each case in turn waits ``SETTLE_S`` (so the previous case's spinning
   thread-pool workers, ORT's or OpenMP's, park and stop competing for the cores), gets
   one untimed re-warm call (its caches were just evicted by the previous case) and then
   its share of the budget, timed call by call.

A target that raises ``SkipCase`` becomes a note; any other exception from a target is
a bug and propagates (``run_cases`` closes what it opened first).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from genedge.cpu_load import RoundLoad
from genedge.runtime.measure import interleave

from .cases import Inputs, SkipCase, Target
from .memory import current_rss_bytes
from .stats import LatencyStats, latency_stats, round_p50s, throughput, timing_summary
from .timer import Budget, Call, time_calls, time_for, time_once, warm_up

DEFAULT_ROUNDS = 10
REWARM_CALLS = 1
# ONNX Runtime's intra-op workers with the default spin policy keep spinning ~26 ms after
# the last run (measured: onnxruntime-genai's pool, ORT 1.32, 2 threads); a case started
# sooner shares its cores with them.
SETTLE_S = 0.05


@dataclass(frozen=True)
class CaseResult:
    """Steady-state timings of one target at one batch size, plus its one-off costs."""

    label: str
    kind: str
    backend: str
    precision: str
    batch: int
    stats: LatencyStats
    throughput: float  # samples/s over the measured calls
    load_ms: float  # open(): session creation, file reads (excluded from stats)
    first_call_ms: float  # first call after prepare (includes torch.compile's compile)
    rss_load_mib: float | None  # current-RSS growth while opening this target
    times_ns: tuple[int, ...] = field(repr=False, default=())
    info: dict[str, Any] = field(default_factory=dict)
    round_sizes: tuple[int, ...] = ()  # calls timed in each round, in order (splits times_ns)

    def round_p50s(self) -> list[float]:
        """The median of each round's calls (ns): how stable the case was across the run."""
        return [p for p in round_p50s(self.times_ns, self.round_sizes) if p is not None]

    def to_dict(self) -> dict[str, Any]:
        """The case as a saved report keeps it: statistics and a summary of the timings
        (``timing_summary``), never the raw per-call timings."""
        d = {
            "label": self.label,
            "kind": self.kind,
            "backend": self.backend,
            "precision": self.precision,
            "batch": self.batch,
            "latency": self.stats.to_dict(),
            "throughput_samples_per_s": self.throughput,
            "load_ms": self.load_ms,
            "first_call_ms": self.first_call_ms,
            "rss_load_mib": self.rss_load_mib,
            "info": self.info,
        }
        d.update(timing_summary(self.times_ns, self.round_sizes))
        return d


@dataclass
class _Live:
    target: Target
    inputs: Inputs
    call: Call
    sync: Callable[[], None] | None
    load_ms: float
    first_call_ms: float
    rss_load_mib: float | None
    times: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)


def split_budget(budget: Budget, rounds: int) -> list[int | float]:
    """Per-round share of the budget: calls (iters) or seconds; rounds <= iters."""
    if budget.iters is not None:
        r = max(1, min(rounds, budget.iters))
        base, extra = divmod(budget.iters, r)
        return [base + (1 if i < extra else 0) for i in range(r)]
    assert budget.seconds is not None
    return [budget.seconds / rounds] * rounds


def rounds_of(budget: Budget, rounds: int) -> int:
    """How many rounds ``measure_interleaved`` runs for this budget."""
    return len(split_budget(budget, rounds))


def _open(target: Target, notes: list[str]) -> tuple[float, float | None] | None:
    """Import the target's libraries (untimed: imports are part of the cold start), then time open()."""
    preload = getattr(target, "preload", None)
    try:
        if preload is not None:
            preload()
    except SkipCase as e:
        notes.append(f"{target.label}: skipped ({e})")
        return None
    rss0 = current_rss_bytes()
    try:
        _, load_ns = time_once(target.open)
    except SkipCase as e:
        notes.append(f"{target.label}: skipped ({e})")
        return None
    rss1 = current_rss_bytes()
    grown = (rss1 - rss0) / 2**20 if rss0 is not None and rss1 is not None else None
    return load_ns / 1e6, grown


def _prepare(target: Target, inputs: Inputs, notes: list[str]) -> tuple[Call, float] | None:
    try:
        call = target.prepare(inputs)
        _, first_ns = time_once(call)
    except SkipCase as e:
        notes.append(f"{target.label} batch {inputs.batch}: skipped ({e})")
        return None
    return call, first_ns / 1e6


def start_cases(
    targets: Sequence[Target], inputs: Sequence[Inputs], notes: list[str]
) -> list[_Live]:
    """Open every target and prepare it for every batch size (steps 1 and 2)."""
    live: list[_Live] = []
    for target in targets:
        opened = _open(target, notes)
        if opened is None:
            continue
        load_ms, rss = opened
        sync = getattr(target, "sync", None)
        for inp in inputs:
            prepared = _prepare(target, inp, notes)
            if prepared is not None:
                live.append(_Live(target, inp, prepared[0], sync, load_ms, prepared[1], rss))
    return live


def measure_interleaved(
    live: Sequence[_Live],
    budget: Budget,
    rounds: int = DEFAULT_ROUNDS,
    step: Callable[[], None] | None = None,
    load: RoundLoad | None = None,
) -> None:
    """Warm-up, then rounds over all cases; appends each case's timings to ``.times``.
    ``step`` is called after each case's share of each round (a progress bar); ``load``
    measures how long this process waited for a CPU in each round."""
    for case in live:
        warm_up(case.call, budget.warmup, case.sync)
    shares = split_budget(budget, rounds)

    def turn(i: int, r: int) -> list[float]:
        case = live[i]
        time.sleep(SETTLE_S)
        warm_up(case.call, REWARM_CALLS, case.sync)
        if budget.iters is not None:
            chunk = time_calls(case.call, int(shares[r]), case.sync)
        else:
            chunk = time_for(case.call, float(shares[r]), case.sync)
        case.times.extend(chunk)
        case.rounds.append(len(chunk))
        if step is not None:
            step()
        return chunk

    interleave(len(live), turn, rounds=len(shares), rotate=False, load=load)


def _result(case: _Live) -> CaseResult:
    t = case.target
    stats = latency_stats(case.times)
    case_info = getattr(t, "case_info", None)
    info = {**(getattr(t, "info", {}) or {}), **(case_info(case.inputs.batch) if case_info else {})}
    label_for = getattr(t, "label_for", None)
    return CaseResult(
        label=label_for(case.inputs.batch) if label_for else t.label,
        kind=t.kind,
        backend=str(info.get("backend") or t.backend) if label_for else t.backend,
        precision=str(info.get("precision") or t.precision) if label_for else t.precision,
        batch=case.inputs.batch,
        stats=stats,
        throughput=throughput(stats, case.inputs.batch),
        load_ms=case.load_ms,
        first_call_ms=case.first_call_ms,
        rss_load_mib=case.rss_load_mib,
        times_ns=tuple(case.times),
        info=info,
        round_sizes=tuple(case.rounds),
    )


def run_cases(
    targets: Sequence[Target],
    inputs: Sequence[Inputs],
    budget: Budget,
    *,
    rounds: int = DEFAULT_ROUNDS,
    notes: list[str] | None = None,
    step: Callable[[], None] | None = None,
    load: RoundLoad | None = None,
) -> list[CaseResult]:
    """Measure every target at every batch size, interleaved; close every target after.
    ``step`` is called once per case and round (``rounds_of(budget, rounds)`` rounds)."""
    notes = [] if notes is None else notes
    try:
        live = start_cases(targets, inputs, notes)
        measure_interleaved(live, budget, rounds, step, load)
        return [_result(c) for c in live]
    finally:
        for target in targets:
            target.close()

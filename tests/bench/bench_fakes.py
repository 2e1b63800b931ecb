"""In-memory targets for the bench's own tests: calls that sleep a known time."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from genedge.bench.cases import Inputs, SkipCase
from genedge.bench.runner import CaseResult
from genedge.bench.stats import latency_stats, throughput


@dataclass
class SleepTarget:
    """Each call sleeps ``sleep_s`` per sample; counts calls and remembers the order of rounds."""

    label: str
    sleep_s: float
    kind: str = "fake"
    backend: str = "fake"
    precision: str = "fp32"
    skip: str | None = None
    calls: int = 0
    log: list[str] | None = None
    opened: bool = False
    closed: bool = False
    info: dict = field(default_factory=dict)

    def open(self) -> None:
        if self.skip:
            raise SkipCase(self.skip)
        time.sleep(0.01)  # load time: must not reach the steady-state stats
        self.opened = True

    def prepare(self, inputs: Inputs):
        def call() -> None:
            self.calls += 1
            if self.log is not None:
                self.log.append(self.label)
            time.sleep(self.sleep_s)

        return call

    def close(self) -> None:
        self.closed = True


def fake_result(
    label: str,
    kind: str,
    backend: str,
    precision: str,
    batch: int,
    p50_ms: float,
    n: int = 5,
    *,
    round_ms: list[float] | None = None,
) -> CaseResult:
    """A result of ``n`` calls of ``p50_ms`` each, or with ``round_ms`` one round of 3 calls
    per entry, round k taking ``round_ms[k]`` ms."""
    if round_ms is None:
        times, rounds = [int(p50_ms * 1e6)] * n, ()
    else:
        times, rounds = [int(ms * 1e6) for ms in round_ms for _ in range(3)], (3,) * len(round_ms)
    stats = latency_stats(times)
    return CaseResult(
        label,
        kind,
        backend,
        precision,
        batch,
        stats,
        throughput(stats, batch),
        1.0,
        1.0,
        None,
        tuple(times),
        round_sizes=rounds,
    )

"""How busy the CPUs were while something was timed: load averages and this process's wait.

The 1-minute load average says how many tasks wanted a CPU; the time this process's own
threads spent runnable but waiting for one (Linux ``/proc/self/task/*/schedstat``, second
field) says whether that competition reached the measurement. Both are recorded beside
timings (``genedge bench``, export's speed record), and a timing taken while the machine was
busy is marked as such and not used to choose a backend. stdlib only.
"""

from __future__ import annotations

import glob
import os
import time
from typing import Any

BUSY_WAIT = 0.1  # a round is busy when this process's threads waited 10% of it for a CPU


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS keeps none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on (affinity, cgroup-pinned sets), else ``os.cpu_count``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def runqueue_wait_ns() -> int | None:
    """Nanoseconds this process's threads have spent runnable but waiting for a CPU (the
    second field of ``/proc/self/task/*/schedstat``); None where it is not kept.
    Other processes competing for the cores show here, whatever the load average says."""
    total, seen = 0, False
    for path in glob.glob("/proc/self/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[1])
            seen = True
        except (OSError, ValueError, IndexError):  # a thread that just ended
            continue
    return total if seen else None


class RoundLoad:
    """Per-round load of a timed run: the fraction of each round's wall time this process's
    threads waited for a CPU (``start`` and ``stop`` around each round), and the load
    averages when it was created and when ``record`` is called."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.before = load_average()
        self._t0: int | None = None
        self._w0: int | None = None

    def start(self) -> None:
        self._w0, self._t0 = runqueue_wait_ns(), time.perf_counter_ns()

    def stop(self) -> None:
        w1, t1 = runqueue_wait_ns(), time.perf_counter_ns()
        if self._w0 is not None and w1 is not None and self._t0 is not None and t1 > self._t0:
            self.waits.append((w1 - self._w0) / (t1 - self._t0))

    @property
    def busy_rounds(self) -> int:
        return sum(w > BUSY_WAIT for w in self.waits)

    def record(self) -> dict[str, Any]:
        """``wait_fraction`` per round, ``busy_rounds``, ``rounds``, the threshold, and whether
        the machine was ``busy``: a busy round, or a load average above the usable CPUs."""
        after = load_average()
        loads = [la[0] for la in (self.before, after) if la]
        busy = bool(self.busy_rounds) or bool(loads and max(loads) > usable_cpus())
        return {
            "wait_fraction": [round(w, 3) for w in self.waits],
            "busy_rounds": self.busy_rounds,
            "rounds": len(self.waits),
            "busy_above": BUSY_WAIT,
            "load_average": [self.before, after],
            "busy": busy,
        }

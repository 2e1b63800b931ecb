"""How busy the CPUs were while something was timed: load averages and this process's wait.

The 1-minute load average says how many tasks wanted a CPU. During a measurement, the CPU
time other processes took (all CPUs' busy time in ``/proc/stat`` less this process's own)
says whether another job competed with it, and the time this process's threads spent
runnable but waiting for a CPU (``/proc/self/task/*/schedstat``) says how much that cost it.
They are recorded beside timings (``genedge bench``, export's speed record); a timing taken
while other processes used over ``BUSY_SHARE`` of the machine is marked busy and is not
used to choose a backend. Linux only where it reads ``/proc``; elsewhere nothing is claimed.
stdlib only.
"""

from __future__ import annotations

import glob
import os
import time
from typing import Any

BUSY_WAIT = 0.1  # a round is busy when this process's threads waited 10% of it for a CPU
BUSY_SHARE = 0.25  # the machine is busy when other processes took a quarter of its CPU time


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


def cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds all CPUs spent busy, CPU seconds this process used) so far; None without
    ``/proc/stat``. Steal time counts as busy: another guest had the CPU."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    busy = sum(fields[i] for i in (0, 1, 2, 5, 6, 7) if i < len(fields))  # not idle, iowait
    t = os.times()
    return busy / hz, t.user + t.system


class RoundLoad:
    """Per-round load of a timed run: the fraction of each round's wall time this process's
    threads waited for a CPU (``start`` and ``stop`` around each round), and the load
    averages when it was created and when ``record`` is called."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.before = load_average()
        self._t0: int | None = None
        self._w0: int | None = None
        self._c0: tuple[float, float] | None = None
        self._others_s = self._wall_s = 0.0

    def start(self) -> None:
        self._w0, self._c0, self._t0 = runqueue_wait_ns(), cpu_seconds(), time.perf_counter_ns()

    def stop(self) -> None:
        w1, c1, t1 = runqueue_wait_ns(), cpu_seconds(), time.perf_counter_ns()
        if self._t0 is None or t1 <= self._t0:
            return
        if self._w0 is not None and w1 is not None:
            self.waits.append((w1 - self._w0) / (t1 - self._t0))
        if self._c0 is not None and c1 is not None:
            # signed: both counters tick in 1/CLK_TCK steps, so one short round reads a tick
            # too many or too few; clipping each round would keep only the "too many" ones
            self._others_s += (c1[0] - self._c0[0]) - (c1[1] - self._c0[1])
            self._wall_s += (t1 - self._t0) / 1e9

    @property
    def others_share(self) -> float | None:
        """The share of the machine's CPU time other processes took during the rounds."""
        if self._wall_s <= 0:
            return None
        share = self._others_s / (self._wall_s * (os.cpu_count() or 1))
        return min(max(share, 0.0), 1.0)  # tick rounding can leave a total just out of range

    @property
    def busy_rounds(self) -> int:
        return sum(w > BUSY_WAIT for w in self.waits)

    def record(self) -> dict[str, Any]:
        """``wait_fraction`` per round, ``busy_rounds`` (rounds that waited over ``BUSY_WAIT``),
        ``rounds``, the load averages before and now, ``others_share``, and whether the
        machine was ``busy``: other processes took over ``BUSY_SHARE`` of its CPU time."""
        share = self.others_share
        return {
            "wait_fraction": [round(w, 3) for w in self.waits],
            "busy_rounds": self.busy_rounds,
            "rounds": len(self.waits),
            "load_average": [self.before, load_average()],
            "others_share": None if share is None else round(share, 3),
            "busy": share is not None and share > BUSY_SHARE,
        }

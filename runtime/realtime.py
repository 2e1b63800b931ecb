"""Waiting for a due time with sub-millisecond accuracy: sleep, then spin, at real-time priority.

A frame loop sleeps until ~1 ms before a frame is due and spins the rest. On a shared
2-core machine a thread at normal (CFS) priority is still woken or preempted late now
and then: measured here over 60 s at 60 fps, 5-6 frames were handed over 1.2-3 ms late
while the frames themselves were ready 16 ms early; kernel threads (kworker, kdamond) and
other processes took the core. With the waiting thread at ``SCHED_FIFO`` those wake-ups
come within ~0.06 ms, so the stream raises the *consumer's* thread to ``SCHED_FIFO`` only
for the wait itself and restores its previous policy before the frame is handed over:
the caller's own work and the inference worker keep normal priority, so a busy consumer
can never starve the machine.

Linux only, and only where permitted (root, ``CAP_SYS_NICE``, or an ``RLIMIT_RTPRIO``
limit, e.g. ``@audio - rtprio 20`` in limits.conf). Elsewhere, or when the kernel says
no (containers without the capability), the wait falls back to normal priority once and
says so on the ``genedge.runtime`` logger; ``RealtimeWait.active`` tells which is in use.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from genedge.errors import BadInputError

log = logging.getLogger("genedge.runtime")
DEFAULT_PRIORITY = 10  # low among real-time priorities: above every normal thread, below IRQ threads
# only threads under these policies are raised (and put back); real-time callers are left alone
_NORMAL_POLICIES = tuple(getattr(os, n) for n in ("SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE") if hasattr(os, n))


def check_priority(priority: object) -> int | None:
    """``None`` (normal scheduling) or an integer ``SCHED_FIFO`` priority 1..99 (exit 2 otherwise)."""
    if priority is None:
        return None
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 99:
        raise BadInputError(f"realtime_priority {priority!r}: expected an integer 1..99, or None for "
                            "normal scheduling.")
    return priority


def allowed_priority(priority: int) -> int | None:
    """The ``SCHED_FIFO`` priority this process may ask for (``priority`` capped by the
    rlimit), or ``None`` when the platform has no ``SCHED_FIFO`` (anything but Linux)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "sched_setscheduler"):
        return None
    lo, hi = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
    p = min(max(int(priority), lo), hi)
    if os.geteuid() != 0:  # root (CAP_SYS_NICE) ignores the rlimit; others are capped by it
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
        if soft != resource.RLIM_INFINITY:
            if soft < lo:
                return p  # try anyway: CAP_SYS_NICE may still allow it; a refusal is handled
            p = min(p, int(soft))
    return p


class RealtimeWait:
    """``wait(t)``: sleep until ``spin_s`` before ``t``, spin until ``t``; at ``SCHED_FIFO``
    ``priority`` when permitted (``priority=None``: always normal priority).

    One instance per stream. It raises whichever thread calls ``wait`` and puts that
    thread's previous policy back before returning, so any thread may call it.
    """

    def __init__(self, priority: int | None = DEFAULT_PRIORITY, spin_s: float = 1e-3) -> None:
        self.spin_s = spin_s
        priority = check_priority(priority)
        self.priority = None if priority is None else allowed_priority(priority)
        self.active = self.priority is not None
        self.refusal: str | None = None if self.active or priority is None else "no SCHED_FIFO on this platform"

    def _raise(self) -> tuple[int, os.sched_param] | None:
        """Switch this thread to SCHED_FIFO; returns what to restore, or None if not switched."""
        try:
            before = (os.sched_getscheduler(0), os.sched_getparam(0))
            if before[0] & ~getattr(os, "SCHED_RESET_ON_FORK", 0) not in _NORMAL_POLICIES:
                return None  # FIFO, RR, DEADLINE: the caller chose its scheduling; leave it be
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.priority))
            return before
        except OSError as e:  # EPERM: no capability / no rt budget in this cgroup
            self.active = False
            self.refusal = f"{type(e).__name__}: {e.strerror or e}"
            log.info("real-time priority (SCHED_FIFO %d) refused (%s); frames are waited for at normal "
                     "priority, so a busy machine can make some late. Allow it with CAP_SYS_NICE or an "
                     "rtprio limit.", self.priority, self.refusal)
            return None

    def wait(self, t: float) -> float:
        """Return at ``t`` (``time.perf_counter`` seconds) or as soon after as the OS allows;
        returns the time reached. Never returns early."""
        before = self._raise() if self.active and t - time.perf_counter() > 0 else None
        try:
            reached = wait_until(t, self.spin_s)
        finally:
            if before is not None:
                self._restore(before)
        # back at normal priority the kernel may run another task first: the time the caller
        # really gets control is after the restore, and that is what a stream must record
        return reached if before is None else time.perf_counter()

    def _restore(self, before: tuple[int, os.sched_param]) -> None:
        try:
            os.sched_setscheduler(0, before[0], before[1])
        except OSError as e:  # cannot happen for the normal policies we raise from; never kill a stream
            log.warning("could not restore the thread's scheduling policy %d (%s)", before[0], e)

    def describe(self) -> str:
        if self.active:
            return f"SCHED_FIFO {self.priority} while waiting"
        return "normal" + (f" (real-time refused: {self.refusal})" if self.refusal else "")


def wait_until(t: float, spin_s: float = 1e-3) -> float:
    """Sleep until ~``spin_s`` before ``t``, then spin until ``t``; returns the time reached.

    The spin keeps the GIL for at most ``spin_s``; the stream's worker is a frame ahead, so
    it can wait. Yielding instead (``sleep(0)``) measured ~45 us median overshoot vs ~0.1 us.
    """
    rem = t - time.perf_counter()
    if rem > spin_s:
        time.sleep(rem - spin_s)
    while (now := time.perf_counter()) < t:
        pass
    return now

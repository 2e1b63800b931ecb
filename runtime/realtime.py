"""Waiting for a due time with sub-millisecond accuracy: sleep, then spin, at real-time priority.

A frame loop sleeps until ~1 ms before a frame is due and spins the rest. On a shared
2-core machine a thread at normal (CFS) priority is still woken or preempted late now
and then: measured here over 60 s at 60 fps, 5-6 frames were handed over 1.2-3 ms late
while the frames themselves were ready 16 ms early; kernel threads (kworker, kdamond) and
other processes took the core. At ``SCHED_FIFO`` those wake-ups come within ~0.06 ms.

The consuming thread is raised at its first wait and stays raised until ``release()``
(the stream calls it when it ends or is closed). Raising it only around each wait is not
enough: switching back to the normal scheduler lets the kernel run another task first,
and measured with the hand-over timed *after* the switch that cost 7 late frames in 30 s
(0 when held). So the consumer's own per-frame work runs at real-time priority too, as in
audio and robot control loops; the inference worker and ORT's threads keep normal
priority, and the kernel's real-time throttling (95% of each second by default) keeps a
busy consumer from locking the machine up. Callers already at FIFO, RR or DEADLINE are
left as they are.

Linux only, and only where permitted (root, ``CAP_SYS_NICE``, or an ``RLIMIT_RTPRIO``
limit, e.g. ``@audio - rtprio 20`` in limits.conf). Elsewhere, or when the kernel says
no (containers without the capability), the wait falls back to normal priority once and
says so on the ``genedge.runtime`` logger; ``RealtimeWait.active`` tells which is in use.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from genedge.errors import BadInputError

log = logging.getLogger("genedge.runtime")
DEFAULT_PRIORITY = (
    10  # low among real-time priorities: above every normal thread, below IRQ threads
)
# only threads under these policies are raised (and put back); real-time callers are left alone
_NORMAL_POLICIES = tuple(
    getattr(os, n) for n in ("SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE") if hasattr(os, n)
)


def check_priority(priority: object) -> int | None:
    """``None`` (normal scheduling) or an integer ``SCHED_FIFO`` priority 1..99 (exit 2 otherwise)."""
    if priority is None:
        return None
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 99:
        raise BadInputError(
            f"realtime_priority {priority!r}: expected an integer 1..99, or None for "
            "normal scheduling."
        )
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
    """``wait(t)``: sleep until ``spin_s`` before ``t``, spin until ``t``, with the calling thread
    at ``SCHED_FIFO`` ``priority`` from its first wait until ``release()`` (``priority=None``:
    normal scheduling throughout).

    One instance per stream; any thread may wait (each is raised once, and ``release`` puts
    every raised thread back by its thread id, from whichever thread calls it).
    """

    def __init__(self, priority: int | None = DEFAULT_PRIORITY, spin_s: float = 1e-3) -> None:
        self.spin_s = spin_s
        priority = check_priority(priority)
        self.priority = None if priority is None else allowed_priority(priority)
        self.active = self.priority is not None
        self.refusal: str | None = (
            None if self.active or priority is None else "no SCHED_FIFO on this platform"
        )
        # native thread id -> (policy and param before, the Thread) for the threads raised
        self._raised: dict[int, tuple[tuple[int, os.sched_param], threading.Thread] | None] = {}

    def _raise(self, tid: int) -> None:
        """Switch the calling thread (``tid``) to SCHED_FIFO, remembering what to put back."""
        self._raised[tid] = None
        try:
            before = (os.sched_getscheduler(0), os.sched_getparam(0))
            if before[0] & ~getattr(os, "SCHED_RESET_ON_FORK", 0) not in _NORMAL_POLICIES:
                return  # FIFO, RR, DEADLINE: the caller chose its scheduling; leave it be
            # RESET_ON_FORK: threads this one starts meanwhile (a Sampler's ORT pool, the next
            # stream's worker) begin at normal priority instead of inheriting FIFO for good
            os.sched_setscheduler(
                0,
                os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0),
                os.sched_param(self.priority),
            )
            self._raised[tid] = (before, threading.current_thread())
        except OSError as e:  # EPERM: no capability / no rt budget in this cgroup
            self.active = False
            self.refusal = f"{type(e).__name__}: {e.strerror or e}"
            log.info(
                "real-time priority (SCHED_FIFO %d) refused (%s); frames are waited for at normal "
                "priority, so a busy machine can make some late. Allow it with CAP_SYS_NICE or an "
                "rtprio limit.",
                self.priority,
                self.refusal,
            )

    def wait(self, t: float) -> float:
        """Return at ``t`` (``time.perf_counter`` seconds) or as soon after as the OS allows;
        returns the time reached. Never returns early."""
        if self.active:
            tid = threading.get_native_id()
            if tid not in self._raised:
                self._raise(tid)
        return wait_until(t, self.spin_s)

    def release(self) -> None:
        """Put every raised thread back on the policy it had; safe to call twice."""
        raised, self._raised = self._raised, {}
        for tid, entry in raised.items():
            if entry is None:
                continue
            (policy, param), thread = entry
            if not thread.is_alive():  # ended: its id may belong to another thread by now
                continue
            try:
                os.sched_setscheduler(tid if tid != threading.get_native_id() else 0, policy, param)
            except OSError as e:
                log.debug("scheduling policy of thread %d not restored (%s)", tid, e)

    def describe(self) -> str:
        if self.active:
            return f"SCHED_FIFO {self.priority} (consumer thread, during the stream)"
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

"""How much of a run's training budget is spent: steps, or wall clock with ``--minutes``.

Schedules that span the run (the character model's learning rate, the VAE's KL warm-up)
read ``Budget.progress``; with ``--minutes`` the clock starts at the first step, and a
resumed run has a fresh budget, as the training loop gives it.
"""

from __future__ import annotations

import math
import time

from .options import TrainOptions


class Budget:
    def __init__(self, opts: TrainOptions) -> None:
        self.minutes, self.steps = opts.minutes, opts.steps
        self._t0: float | None = None

    def progress(self, steps_done: int) -> float:
        """Fraction of the budget used before step ``steps_done`` (0-based), in [0, inf)."""
        if self.minutes is not None:
            if self._t0 is None:
                self._t0 = time.perf_counter()
            return (time.perf_counter() - self._t0) / (self.minutes * 60.0)
        return steps_done / max(self.steps or 1, 1)


def hold_then_cosine(
    step: int, progress: float, *, warmup_steps: int, decay_start: float, floor: float
) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup_steps``, 1 until ``decay_start``
    of the budget, then a cosine down to ``floor`` at its end (``progress`` 1)."""
    warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    t = min(max((progress - decay_start) / (1.0 - decay_start), 0.0), 1.0)
    return warmup * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t)))


PACE_WINDOW_S = 5.0  # the first seconds of step time: what this machine does when idle
PACE_WARMUP_STEPS = 2  # first steps pay for allocation and kernel selection
FAR_SHORT = 0.5  # a --minutes run that made under half its idle-pace steps says so


class StepPace:
    """Training-step times of one run: the pace of its first seconds (a low percentile of
    those steps, which other work on the machine slows least) and how the steps a ``--minutes``
    run made compare with what that pace fits in the budget."""

    def __init__(self) -> None:
        self.step_s: list[float] = []
        self._early_s = 0.0

    def add(self, seconds: float) -> None:
        """One training step's wall time (eval and sampling excluded)."""
        self.step_s.append(seconds)

    def idle_steps_per_s(self) -> float | None:
        """Steps per second in the run's first ``PACE_WINDOW_S`` seconds of steps (None: too
        few steps to say)."""
        early, spent = [], 0.0
        for s in self.step_s[PACE_WARMUP_STEPS:]:
            if spent >= PACE_WINDOW_S and len(early) >= 3:
                break
            early.append(s)
            spent += s
        if len(early) < 3:
            return None
        early.sort()
        fast = early[len(early) // 4]  # 25th percentile
        return 1.0 / fast if fast > 0 else None

    def report(self, steps: int, budget_s: float | None) -> tuple[str, bool]:
        """(one line for the end of a run, whether it fell far short of its idle pace).
        ``budget_s``: the ``--minutes`` budget in seconds (None for a ``--steps`` run)."""
        rate = self.idle_steps_per_s()
        if budget_s is None or rate is None:
            return f"{steps} steps", False
        fits = int(rate * budget_s)
        line = (
            f"{steps} steps in {budget_s / 60:g} min; at this machine's pace in the first "
            f"seconds ({rate:.1f} steps/s) the budget fits about {fits}"
        )
        if fits and steps < FAR_SHORT * fits:
            return (
                f"{line}: this run made {steps / fits:.0%} of that (a busy machine, or "
                f"evaluation took the time), so expect a weaker model. For reproducible results "
                f"pass --steps {fits} instead of --minutes.",
                True,
            )
        return line, False

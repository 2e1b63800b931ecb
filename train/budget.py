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

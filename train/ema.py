"""Exponential moving average of a generator, and BatchNorm re-estimation for export.

The EMA tracks parameters and floating buffers (BatchNorm running statistics) with a
warm-up (decay ramps from ~0.1 to ``decay``), so early checkpoints are not dominated by
the random init. Running statistics averaged over many different weight sets need not
match the EMA weights themselves; ``recalibrated_copy`` re-estimates them on the EMA
weights from prior samples before a checkpoint is written or evaluated.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.model.buffers(), model.buffers(), strict=True):
            if e.dtype.is_floating_point:
                e.lerp_(b, 1.0 - d)
            else:
                e.copy_(b)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


@torch.no_grad()
def recalibrated_copy(model: nn.Module, batches: Callable[[], list[tuple]]) -> nn.Module:
    """A copy of ``model`` in eval mode whose BatchNorm statistics are re-estimated.

    ``batches()`` yields argument tuples for ``model(*args)`` (e.g. seeded z and labels);
    a cumulative average (momentum None) over all of them replaces the running stats.
    """
    out = copy.deepcopy(model)
    norms = [m for m in out.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return out.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    out.train()
    for args in batches():
        out(*args)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return out.eval()

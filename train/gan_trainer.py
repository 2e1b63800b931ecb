"""GAN training: hinge loss, spectral-norm projection D with a small auxiliary classifier, EMA G.

One step: G makes one fake batch; D steps on cat([real, fake.detach()]) through DDP (its
gradients are averaged); then G steps on D(fake) computed through ``D.module`` so D's
gradients are neither synced nor used (they are cleared before D's next step).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import ddp
from .ema import EMA, recalibrated_copy
from .gan import Discriminator, GanConfig, Generator
from .image_family import EVAL_SEED, ImageFamily
from .options import TrainOptions

AUX_WEIGHT = 0.2  # auxiliary-classifier loss weight (real and fake for D, fake for G)
EMA_DECAY = 0.999
BETAS = (0.0, 0.9)
BN_BATCHES = 8  # prior batches of 128 to re-estimate BatchNorm statistics on the EMA weights


def translate(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """DiffAugment-style random translation with zero padding, differentiable: (B, C, H, W)."""
    if max_shift <= 0:
        return x
    B, _, H, W = x.shape
    pad = F.pad(x, (max_shift,) * 4, value=-1.0)  # background is -1 (black)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, B)).to(x.device)
    rows = torch.arange(H, device=x.device)[None, :] + dy[:, None]  # (B, H)
    cols = torch.arange(W, device=x.device)[None, :] + dx[:, None]  # (B, W)
    bidx = torch.arange(B, device=x.device)[:, None, None]
    out = pad.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


class GanFamily(ImageFamily):
    kind = "gan"

    def __init__(self, opts: TrainOptions, ctx: ddp.DistContext) -> None:
        super().__init__(opts, ctx)
        self.cfg = GanConfig.sized(
            self.image_size,
            latent_dim=opts.latent_dim or 64,
            num_classes=self.num_classes,
            channels=self.channels,
        )
        G, D = Generator(self.cfg).to(self.device), Discriminator(self.cfg).to(self.device)
        self.ema = EMA(G, EMA_DECAY)
        self.G, self.D = ddp.wrap(G, ctx), ddp.wrap(D, ctx)
        self.opt_g = torch.optim.Adam(G.parameters(), lr=opts.lr, betas=BETAS)
        self.opt_d = torch.optim.Adam(D.parameters(), lr=opts.lr, betas=BETAS)
        self.shift = max(1, self.image_size // 8)
        self._exported: tuple[int, nn.Module] | None = None  # (ema.updates, recalibrated copy)

    @property
    def latent_dim(self) -> int:
        return self.cfg.latent_dim

    def _aux(self, logits: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor:
        if logits is None or labels is None:
            return torch.zeros((), device=self.device)
        return F.cross_entropy(logits, labels)

    def train_step(self) -> dict[str, float]:
        real, y_real = self.batch()  # (B, C, H, W), (B,)
        B = real.shape[0]
        z = torch.randn(B, self.cfg.latent_dim).to(self.device)
        y_fake = self.fake_labels(B)
        fake = self.G(z, y_fake)  # (B, C, H, W)
        loss_d, acc = self.d_step(real, y_real, fake.detach(), y_fake)
        loss_g = self.g_step(fake, y_fake)
        self.ema.update(ddp.unwrap(self.G))
        return {"loss_d": loss_d, "loss_g": loss_g, "d_acc": acc}

    def d_step(
        self,
        real: torch.Tensor,
        y_real: torch.Tensor | None,
        fake: torch.Tensor,
        y_fake: torch.Tensor | None,
    ) -> tuple[float, float]:
        B = real.shape[0]
        x = translate(torch.cat([real, fake]), self.shift)  # (2B, C, H, W)
        y = None if y_real is None else torch.cat([y_real, y_fake])
        out, logits = self.D(x, y)
        loss = F.relu(1.0 - out[:B]).mean() + F.relu(1.0 + out[B:]).mean()
        if logits is not None:
            loss = loss + AUX_WEIGHT * (
                self._aux(logits[:B], y_real) + self._aux(logits[B:], y_fake)
            )
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        acc = ((out[:B] > 0).float().mean() + (out[B:] < 0).float().mean()).item() / 2
        return loss.item(), acc

    def g_step(self, fake: torch.Tensor, y_fake: torch.Tensor | None) -> float:
        out, logits = ddp.unwrap(self.D)(translate(fake, self.shift), y_fake)
        loss = -out.mean() + AUX_WEIGHT * self._aux(logits, y_fake)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return loss.item()

    # -- outputs
    def export_model(self) -> tuple[nn.Module, Any]:
        """EMA generator with BatchNorm statistics re-estimated on its own weights (cached per step)."""
        if self._exported is None or self._exported[0] != self.ema.updates:

            def batches() -> list[tuple]:
                return [self.prior(128, EVAL_SEED + 1 + i) for i in range(BN_BATCHES)]

            self._exported = (self.ema.updates, recalibrated_copy(self.ema.model, batches))
        return self._exported[1], self.cfg

    def sample(self):
        return self.grid(self.export_model()[0])

    def evaluate(self) -> dict[str, float]:
        G, cfg = self.export_model()
        return self.eval_metrics(G, cfg)

    def trained_module(self) -> nn.Module:
        return nn.ModuleList([ddp.unwrap(self.G), ddp.unwrap(self.D)])

    def state_dict(self) -> dict[str, Any]:
        return {
            "G": ddp.unwrap(self.G).state_dict(),
            "D": ddp.unwrap(self.D).state_dict(),
            "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ddp.unwrap(self.G).load_state_dict(state["G"])
        ddp.unwrap(self.D).load_state_dict(state["D"])
        self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])

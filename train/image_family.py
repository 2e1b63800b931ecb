"""What GAN and VAE training share: image data, this rank's shard, batches, grids, eval."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from genedge.errors import BadInputError
from genedge.imageio import make_grid, to_uint8

from .data import load_image_data
from .ddp import DistContext
from .eval import evaluate_generator, feature_space
from .options import TrainOptions

GRID_SEED = 20240601
EVAL_SEED = 1234


class ImageFamily:
    """Loads ``opts.data``; keeps the full set (for eval) and this rank's shard (for training)."""

    kind = "image"

    def __init__(self, opts: TrainOptions, ctx: DistContext) -> None:
        self.opts, self.ctx, self.device = opts, ctx, ctx.device
        self.data = load_image_data(
            opts.data, image_size=opts.image_size, need_labels=opts.conditional
        )
        if len(self.data.images) < ctx.world_size * 2:
            raise BadInputError(
                f"--data {opts.data!r}: {len(self.data.images)} images are too few to train on."
            )
        self.num_classes = int(self.data.num_classes or 0) if opts.conditional else 0
        images = torch.from_numpy(
            np.ascontiguousarray(self.data.images[ctx.rank :: ctx.world_size])
        )
        self.images = images.to(self.device)  # (N_rank, C, H, W) in [-1, 1]
        labels = self.data.labels[ctx.rank :: ctx.world_size] if self.num_classes else None
        self.labels = (
            None
            if labels is None
            else torch.from_numpy(np.asarray(labels, np.int64)).to(self.device)
        )
        _, self.channels, self.image_size, width = self.data.images.shape
        if width != self.image_size:
            raise BadInputError(
                f"--data {opts.data!r}: images are {self.image_size}x{width}; expected square images.",
                hint="Pass --image-size N to resize them.",
            )
        if ctx.is_main:  # the data's judge trains (or loads) before --minutes' clock starts
            feature_space(self.data)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Random real batch: images (B, C, H, W), labels (B,) or None."""
        idx = torch.randint(0, len(self.images), (self.opts.batch_size,)).to(self.device)
        return self.images[idx], None if self.labels is None else self.labels[idx]

    def fake_labels(self, B: int) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        return torch.randint(0, self.num_classes, (B,)).to(self.device)

    def prior(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Seeded latents (n, Z) and labels ``arange(n) % K`` (no global RNG touched)."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.latent_dim, generator=g).to(self.device)
        labels = torch.arange(n) % self.num_classes if self.num_classes else None
        return z, None if labels is None else labels.to(self.device)

    @property
    def latent_dim(self) -> int:
        raise NotImplementedError

    @torch.no_grad()
    def grid(self, G: nn.Module) -> np.ndarray:
        """Conditional: one row per class (10 samples each); else an 8x8 grid. uint8 (H, W, C)."""
        cols = 10 if self.num_classes else 8
        rows = self.num_classes if self.num_classes else 8
        z, _ = self.prior(rows * cols, GRID_SEED)
        labels = (
            torch.arange(rows).repeat_interleave(cols).to(self.device) if self.num_classes else None
        )
        x = G(z, labels).float().cpu().numpy()  # (rows*cols, C, H, W)
        return make_grid(to_uint8(x), ncols=cols, scale=max(1, 64 // self.image_size))

    def eval_metrics(self, G: nn.Module, cfg: Any) -> dict[str, float]:
        G = G.to(self.device).eval()
        return evaluate_generator(G, cfg, self.data, n=self.opts.eval_samples, seed=EVAL_SEED)

    def data_info(self) -> dict[str, Any]:
        return {
            "name": getattr(self.data, "name", self.opts.data),
            "images": int(len(self.data.images)),
            "shape": [self.channels, self.image_size, self.image_size],
            "num_classes": self.num_classes,
        }

    def checkpoint_meta(self) -> dict[str, str]:
        return {"data": self.opts.data, "image_size": str(self.image_size)}

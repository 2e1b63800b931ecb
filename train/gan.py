"""DCGAN-style generator with resize-convolution upsampling and a projection discriminator.

G: z (B, Z) [+ label (B,)] -> image (B, C, H, W) in [-1, 1]. Upsampling is nearest
Upsample + 3x3 Conv (no checkerboard artefacts; INT8 kernels exist on ORT CPU and
TensorRT). D: spectral-normalised convs, sum pooling, a projection term for the label
(Miyato & Koyama 2018) and an optional auxiliary classifier head (AC-GAN) that
sharpens class conditioning on small data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass(frozen=True)
class GanConfig:
    latent_dim: int = 64
    num_classes: int = 0  # 0: unconditional
    image_size: int = 16
    channels: int = 1
    g_width: int = 128  # channels at the lowest resolution; halved per upsampling
    d_width: int = 32  # channels after the first downsampling; doubled per downsampling
    embed_dim: int = 32

    @classmethod
    def sized(cls, image_size: int, **fields: object) -> GanConfig:
        """The config for ``image_size`` with channel widths scaled to it (see ``g_width_for``)."""
        return cls(image_size=image_size, g_width=g_width_for(image_size), **fields)

    @property
    def n_up(self) -> int:
        return max(1, int(math.log2(self.image_size / 4)))

    @property
    def base_size(self) -> int:
        return self.image_size // 2**self.n_up

    def validate(self) -> None:
        if self.image_size % 2**self.n_up or self.image_size < 8:
            raise ValueError(
                f"image_size {self.image_size} must be >= 8 and divisible by {2**self.n_up}"
            )


G_MIN_WIDTH = 16  # the generator's width at full resolution, where a conv costs the most
G_BASE_MIN_WIDTH = 128  # the lowest-resolution width never drops below this (int8 pays off)


def g_width_for(image_size: int) -> int:
    """Generator width at the base resolution for ``image_size``: 128 up to 32x32, then x2 per x2.

    Widths halve per upsampling down to ``G_MIN_WIDTH`` at full resolution, so within a
    generator every up-block costs the same multiply-adds, and that cost follows the pixel
    count: 16 and 32 -> 128, 64 -> 256 (widths 256, 128, 64, 32, 16), 128 -> 512.
    """
    n_up = max(1, int(math.log2(image_size / 4)))
    return max(G_BASE_MIN_WIDTH, G_MIN_WIDTH * 2**n_up)


class UpBlock(nn.Module):
    """Nearest x2 upsample then 3x3 conv: (B, Cin, H, W) -> (B, Cout, 2H, 2W)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.bn(self.conv(x)))


class Generator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        cond = cfg.embed_dim if cfg.num_classes else 0
        self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim) if cfg.num_classes else None
        c0, s0 = cfg.g_width, cfg.base_size
        self.fc = nn.Linear(cfg.latent_dim + cond, c0 * s0 * s0)
        self.bn0 = nn.BatchNorm2d(c0)
        widths = [max(c0 // 2**i, G_MIN_WIDTH) for i in range(cfg.n_up + 1)]
        self.ups = nn.ModuleList(
            UpBlock(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.to_img = nn.Conv2d(widths[-1], cfg.channels, 3, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels (B,)")
            z = torch.cat([z, self.embed(labels)], dim=1)  # (B, Z + E)
        B, c0, s0 = z.shape[0], self.cfg.g_width, self.cfg.base_size
        h = self.fc(z).view(B, c0, s0, s0)  # (B, C0, S0, S0)
        h = F.relu(self.bn0(h))
        for up in self.ups:
            h = up(h)  # (B, C, 2H, 2W)
        return torch.tanh(self.to_img(h))  # (B, C_img, H, W) in [-1, 1]


class Discriminator(nn.Module):
    """Returns (realness (B,), class logits (B, K) or None).

    Strided 4x4 convs down to the generator's base size, then a dense layer on the
    flattened map: cheap enough for CPU training (about 1.5 MFLOP per 16x16 image).
    """

    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        w, layers, c = cfg.d_width, [], cfg.channels
        for i in range(cfg.n_up):
            c_out = w * 2**i
            layers += [
                spectral_norm(nn.Conv2d(c, c_out, 4, stride=2, padding=1)),
                nn.LeakyReLU(0.2),
            ]
            c = c_out
        self.blocks = nn.Sequential(*layers)  # (B, C, H, W) -> (B, c, S0, S0)
        feat = 4 * w
        self.fc = spectral_norm(nn.Linear(c * cfg.base_size**2, feat))
        self.out = spectral_norm(nn.Linear(feat, 1))
        self.proj = spectral_norm(nn.Embedding(cfg.num_classes, feat)) if cfg.num_classes else None
        self.aux = nn.Linear(feat, cfg.num_classes) if cfg.num_classes else None

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = F.leaky_relu(self.fc(self.blocks(x).flatten(1)), 0.2)  # (B, F)
        out = self.out(h).squeeze(1)  # (B,)
        if self.proj is not None and labels is not None:
            out = out + (self.proj(labels) * h).sum(dim=1)
        logits = self.aux(h) if self.aux is not None else None  # (B, K)
        return out, logits

"""Convolutional VAE. The decoder is the generator; the encoder is kept for reconstruction.

``VAE.forward(z, labels=None)`` decodes, so a loaded VAE is called like any genedge
generator: ``G(z, labels) -> (B, C, H, W)`` in [-1, 1]. Training uses ``encode`` and
``reconstruct``. Optional class conditioning concatenates a label embedding to z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VaeConfig:
    latent_dim: int = 16
    num_classes: int = 0
    image_size: int = 16
    channels: int = 1
    width: int = 32
    embed_dim: int = 16
    beta: float = 1.0  # KL weight (beta-VAE); used by training only

    @property
    def n_down(self) -> int:
        return max(1, int(math.log2(self.image_size / 4)))

    @property
    def base_size(self) -> int:
        return self.image_size // 2**self.n_down

    def validate(self) -> None:
        if self.image_size % 2**self.n_down or self.image_size < 8:
            raise ValueError(
                f"image_size {self.image_size} must be >= 8 and divisible by {2**self.n_down}"
            )


class Encoder(nn.Module):
    """image (B, C, H, W) in [-1, 1] -> mu (B, Z), logvar (B, Z)."""

    def __init__(self, cfg: VaeConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cfg.channels
        for i in range(cfg.n_down):
            c_out = cfg.width * 2**i
            layers += [nn.Conv2d(c, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c = c_out
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(c * cfg.base_size**2, 2 * cfg.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.convs(x).flatten(1)  # (B, C*S*S)
        mu, logvar = self.fc(h).chunk(2, dim=1)  # (B, Z) each
        return mu, logvar.clamp(-12.0, 8.0)


class Decoder(nn.Module):
    """z (B, Z) [+ label] -> image (B, C, H, W) in [-1, 1], resize-convolution upsampling."""

    def __init__(self, cfg: VaeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        cond = cfg.embed_dim if cfg.num_classes else 0
        self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim) if cfg.num_classes else None
        self.c0 = cfg.width * 2 ** (cfg.n_down - 1)
        self.fc = nn.Linear(cfg.latent_dim + cond, self.c0 * cfg.base_size**2)
        ups: list[nn.Module] = []
        c = self.c0
        for _ in range(cfg.n_down):
            c_out = max(c // 2, 16)
            ups += [
                nn.Upsample(scale_factor=2.0, mode="nearest"),
                nn.Conv2d(c, c_out, 3, padding=1),
                nn.LeakyReLU(0.2),
            ]
            c = c_out
        self.ups = nn.Sequential(*ups)
        self.to_img = nn.Conv2d(c, cfg.channels, 3, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("this decoder is class-conditional: pass labels (B,)")
            z = torch.cat([z, self.embed(labels)], dim=1)  # (B, Z + E)
        s = self.cfg.base_size
        h = F.leaky_relu(self.fc(z), 0.2).view(z.shape[0], self.c0, s, s)  # (B, C0, S, S)
        return torch.tanh(self.to_img(self.ups(h)))  # (B, C, H, W)


class VAE(nn.Module):
    def __init__(self, cfg: VaeConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z, labels)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def reconstruct(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, *, sample: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) -> (reconstruction, mu, logvar); reparameterised when ``sample``."""
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return self.decoder(z, labels), mu, logvar

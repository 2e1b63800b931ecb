"""The classic DCGAN (Radford et al. 2015), written as plain PyTorch user code.

Nothing here imports genedge: this is the kind of file a user already has, and the file
`genedge export --module examples/byo/dcgan.py:Generator28` imports (which runs it).

- ``Generator28``: 28x28 (MNIST), ConvTranspose2d + BatchNorm + ReLU, Tanh out; optional
  class conditioning (a label embedding concatenated to z).
- ``Generator64``: the 64x64 generator of the PyTorch DCGAN tutorial.
Both take z as ``(B, nz, 1, 1)`` and return images ``(B, nc, H, W)`` in [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn


class Generator28(nn.Module):
    """z (B, nz, 1, 1) [, labels (B,)] -> (B, nc, 28, 28) in [-1, 1]."""

    def __init__(self, nz: int = 64, ngf: int = 32, nc: int = 1, num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        emb = 16 if num_classes else 0
        self.embed = nn.Embedding(num_classes, emb) if num_classes else None
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz + emb, ngf * 4, 7, 1, 0, bias=False),  # (B, 4g, 7, 7)
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),  # (B, 2g, 14, 14)
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False),  # (B, nc, 28, 28)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            y = self.embed(labels)[:, :, None, None]  # (B, E, 1, 1)
            z = torch.cat([z, y], dim=1)
        return self.main(z)


class Generator64(nn.Module):
    """z (B, nz, 1, 1) -> (B, nc, 64, 64) in [-1, 1] (the PyTorch DCGAN tutorial's netG)."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 1) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),  # (B, 8g, 4, 4)
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),  # (B, 4g, 8, 8)
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),  # (B, 2g, 16, 16)
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),  # (B, g, 32, 32)
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),  # (B, nc, 64, 64)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    """(B, nc, S, S) [, labels] -> logits (B,), for S = 28 or 64; labels as an extra channel."""

    def __init__(self, size: int = 28, ndf: int = 32, nc: int = 1, num_classes: int = 0) -> None:
        super().__init__()
        self.size, self.num_classes = size, num_classes
        self.embed = nn.Embedding(num_classes, size * size) if num_classes else None
        c = nc + (1 if num_classes else 0)
        layers: list[nn.Module] = [nn.Conv2d(c, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        s, ch = size // 2, ndf
        while s > 7:
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch * 2),
                nn.LeakyReLU(0.2, True),
            ]
            s, ch = s // 2, ch * 2
        layers += [nn.Conv2d(ch, 1, s, 1, 0, bias=False)]  # (B, 1, 1, 1)
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            y = self.embed(labels).view(-1, 1, self.size, self.size)  # (B, 1, S, S)
            x = torch.cat([x, y], dim=1)
        return self.main(x).view(-1)


def weights_init(m: nn.Module) -> None:
    """The DCGAN paper's initialisation: N(0, 0.02) convs, N(1, 0.02) BatchNorm scales."""
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)

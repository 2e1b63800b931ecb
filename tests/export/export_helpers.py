"""Shared by the export tests (a module with a unique name: `conftest` is ambiguous in a full run)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from genedge.export.options import ExportOptions
from genedge.train.ar import ArConfig, CharRNN
from genedge.train.checkpoint import save_checkpoint
from genedge.train.gan import GanConfig, Generator
from genedge.train.vae import VAE, VaeConfig

torch.set_num_threads(1)  # tiny models on 2 shared cores: threads only spin

GAN_CFG = GanConfig(latent_dim=16, num_classes=4, image_size=8, channels=1, g_width=16, embed_dim=8)
VAE_CFG = VaeConfig(latent_dim=8, image_size=8, channels=1, width=16)
GRU_CFG = ArConfig(vocab="?abcde ", cell="gru", embed_dim=8, hidden=16, layers=2)
LSTM_CFG = dataclasses.replace(GRU_CFG, cell="lstm")


def make_checkpoint(path: Path, kind: str, cfg, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = {"gan": Generator, "vae": VAE, "ar": CharRNN}[kind](cfg).eval()
    if kind == "gan":  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return save_checkpoint(path, model, cfg, kind=kind)


def fast_options(ckpt: Path, out: Path, **kw) -> ExportOptions:
    """Small calibration and quality budgets: a bundle in a few seconds on 2 shared cores."""
    base = dict(source=ckpt, out=out, calib_samples=32, quality_samples=16, parity_seeds=(0,))
    base.update(kw)
    return ExportOptions(**base)

"""Tiny random generators saved as real checkpoints, and small-budget export options."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from genedge.export.options import ExportOptions  # noqa: E402
from genedge.train.ar import ArConfig, CharRNN  # noqa: E402
from genedge.train.checkpoint import save_checkpoint  # noqa: E402
from genedge.train.gan import GanConfig, Generator  # noqa: E402
from genedge.train.vae import VAE, VaeConfig  # noqa: E402

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


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpts")
    return {
        "gan": make_checkpoint(d / "gan.safetensors", "gan", GAN_CFG),
        "vae": make_checkpoint(d / "vae.safetensors", "vae", VAE_CFG),
        "gru": make_checkpoint(d / "gru.safetensors", "ar", GRU_CFG),
        "lstm": make_checkpoint(d / "lstm.safetensors", "ar", LSTM_CFG),
    }


def fast_options(ckpt: Path, out: Path, **kw) -> ExportOptions:
    """Small calibration and quality budgets: a bundle in a few seconds on 2 shared cores."""
    base = dict(checkpoint=ckpt, out=out, calib_samples=32, quality_samples=16, parity_seeds=(0,))
    base.update(kw)
    return ExportOptions(**base)


@pytest.fixture(scope="session")
def gan_bundle(ckpts, tmp_path_factory) -> Path:
    from genedge.export.bundle import export_bundle

    return export_bundle(fast_options(ckpts["gan"], tmp_path_factory.mktemp("b") / "gan"))


@pytest.fixture(scope="session")
def vae_bundle(ckpts, tmp_path_factory) -> Path:
    from genedge.export.bundle import export_bundle

    return export_bundle(fast_options(ckpts["vae"], tmp_path_factory.mktemp("b") / "vae"))


@pytest.fixture(scope="session")
def lstm_bundle(ckpts, tmp_path_factory) -> Path:
    from genedge.export.bundle import export_bundle

    return export_bundle(fast_options(ckpts["lstm"], tmp_path_factory.mktemp("b") / "lstm"))

"""Tiny bundles for the runtime tests, written by the real exporter (fp32, random weights).

Each fixture trains nothing: a seeded random-weight model is saved as a checkpoint and
exported once per session by ``genedge.export``, the exporter users run. Without torch the
bundle tests skip and the torch-free tests still run; with torch, an exporter that fails to
import or to export fails these tests.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class TinyBundle:
    path: Path
    checkpoint: Path
    kind: str
    config: Any


def _model(kind: str, **cfg: Any):
    import torch

    from genedge.train.ar import ArConfig, CharRNN
    from genedge.train.gan import GanConfig, Generator
    from genedge.train.vae import VAE, VaeConfig

    torch.manual_seed(0)
    if kind == "gan":
        c = GanConfig(**{"latent_dim": 16, "g_width": 32, **cfg})
        return Generator(c).eval(), c
    if kind == "vae":
        c = VaeConfig(latent_dim=8, width=16, **cfg)
        return VAE(c).eval(), c
    c = ArConfig(
        vocab="\x00 abcdefghijklmnopqrstuvwxyz.,\n", hidden=32, layers=1, embed_dim=16, **cfg
    )
    return CharRNN(c).eval(), c


def build_bundle(
    root: Path, name: str, kind: str, output_format: str = "uint8", **cfg: Any
) -> TinyBundle:
    """Export a random-weight ``kind`` model into ``root/name`` (fp32 only)."""
    pytest.importorskip("torch")
    from genedge.export.bundle import export_bundle
    from genedge.export.options import ExportOptions
    from genedge.train.checkpoint import save_checkpoint

    model, config = _model(kind, **cfg)
    ckpt = save_checkpoint(root / f"{name}.safetensors", model, config, kind=kind)
    out = root / name
    export_bundle(
        ExportOptions(source=ckpt, out=out, precisions=("fp32",), output_format=output_format)
    )
    return TinyBundle(out, ckpt, kind, config)


@pytest.fixture(scope="session")
def bundles_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def bundle_factory(bundles_root: Path):
    """``build_bundle`` bound to the session's folder: ``bundle_factory(name, kind, **cfg)``."""
    return lambda name, kind, output_format="uint8", **cfg: build_bundle(
        bundles_root, name, kind, output_format, **cfg
    )


@pytest.fixture(scope="session")
def gan_bundle(bundles_root: Path) -> TinyBundle:
    return build_bundle(bundles_root, "gan", "gan")


@pytest.fixture(scope="session")
def cgan_bundle(bundles_root: Path) -> TinyBundle:
    return build_bundle(bundles_root, "cgan", "gan", num_classes=10)


@pytest.fixture(scope="session")
def digits_gan_bundle(bundles_root: Path) -> TinyBundle:
    """The digits generator at its real size (``train gan --conditional`` defaults), random weights:
    for the real-time checks, whose cost does not depend on what the weights learned."""
    from genedge.train.gan import GanConfig

    d = GanConfig()
    return build_bundle(
        bundles_root,
        "digits-gan",
        "gan",
        num_classes=10,
        latent_dim=d.latent_dim,
        g_width=d.g_width,
    )


@pytest.fixture(scope="session")
def float_gan_bundle(bundles_root: Path) -> TinyBundle:
    return build_bundle(bundles_root, "fgan", "gan", output_format="float")


@pytest.fixture(scope="session")
def vae_bundle(bundles_root: Path) -> TinyBundle:
    return build_bundle(bundles_root, "vae", "vae")


def _user_dcgan(num_classes: int):
    """A conditional ConvTranspose DCGAN written as user code (random weights)."""
    import torch
    from torch import nn

    class UserDCGAN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(num_classes, 4)
            self.main = nn.Sequential(
                nn.ConvTranspose2d(12, 16, 4, 1, 0, bias=False),  # (B, 16, 4, 4)
                nn.BatchNorm2d(16),
                nn.ReLU(True),
                nn.ConvTranspose2d(16, 1, 4, 2, 1, bias=False),  # (B, 1, 8, 8)
                nn.Tanh(),
            )

        def forward(self, z, labels):
            return self.main(torch.cat([z, self.embed(labels)[:, :, None, None]], 1))

    torch.manual_seed(0)
    return UserDCGAN().eval()


@pytest.fixture(scope="session")
def byo_bundle(bundles_root: Path) -> TinyBundle:
    """Your own generator: a user's module through ``export_generator`` (fp32)."""
    pytest.importorskip("torch")
    from genedge.export.routes.byo import export_generator

    g = _user_dcgan(3)
    out = export_generator(
        g,
        bundles_root / "byo",
        latent_dim=8,
        latent_shape=(8, 1, 1),
        num_classes=3,
        precisions=("fp32",),
    )
    return TinyBundle(out, Path("<module>"), "gan", None)


@pytest.fixture(scope="session")
def byo_onnx_bundle(bundles_root: Path) -> TinyBundle:
    """Your own generator as an ONNX file with its own tensor names, through ``genedge export``."""
    torch = pytest.importorskip("torch")
    from genedge.export.options import ExportOptions
    from genedge.export.routes.source_onnx import export_onnx_file

    g = _user_dcgan(3)
    src = bundles_root / "user.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        _user_onnx(torch, g, src)
    out = export_onnx_file(
        src, ExportOptions(source=src, out=bundles_root / "byo-onnx", precisions=("fp32",))
    )
    return TinyBundle(out, src, "gan", None)


def _user_onnx(torch: Any, g: Any, src: Path) -> None:
    torch.onnx.export(
        g,
        (torch.zeros(2, 8, 1, 1), torch.zeros(2, dtype=torch.long)),
        str(src),
        dynamo=False,
        opset_version=17,
        input_names=["noise", "digit"],
        output_names=["picture"],
        dynamic_axes={n: {0: "batch"} for n in ("noise", "digit", "picture")},
    )


@pytest.fixture(scope="session")
def ar_bundle(bundles_root: Path) -> TinyBundle:
    return build_bundle(bundles_root, "ar", "ar")


@pytest.fixture
def bundle_copy(tmp_path: Path):
    """Copy a bundle folder to a fresh path (for tampering tests)."""

    def copy(b: TinyBundle) -> Path:
        dst = tmp_path / b.path.name
        shutil.copytree(b.path, dst)
        return dst

    return copy

"""Tiny bundles for the runtime tests, written by the real exporter (fp32, random weights).

Each fixture trains nothing: a seeded random-weight model is saved as a checkpoint and
exported once per session. Without torch (or a working exporter) a tiny GAN bundle is
built by hand with ``torch.onnx.export`` + ``write_manifest``; without torch at all the
bundle tests skip and the torch-free tests still run.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs torch to build test bundles")


@dataclass(frozen=True)
class TinyBundle:
    path: Path
    checkpoint: Path
    kind: str
    config: Any


def _exporter():
    try:
        from genedge.export.bundle import export_bundle
        from genedge.export.options import ExportOptions
    except Exception:  # the exporter is someone else's work in progress
        return None
    return export_bundle, ExportOptions


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


def _hand_built_gan(folder: Path, model: Any, cfg: Any, output_format: str) -> None:
    """The minimal bundle of docs/bundle.md for a GAN, when the exporter is unavailable."""
    import torch

    from genedge.manifest import artifact_record, write_manifest

    class Graph(torch.nn.Module):
        def forward(self, z, *label):
            x = model(z, *label)
            if output_format == "float":
                return x
            return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)

    folder.mkdir(parents=True)
    cond = cfg.num_classes > 0
    args = (torch.randn(2, cfg.latent_dim),) + ((torch.zeros(2, dtype=torch.long),) if cond else ())
    names = ["z"] + (["label"] if cond else [])
    torch.onnx.export(
        Graph(),
        args,
        str(folder / "model.onnx"),
        input_names=names,
        output_names=["image"],
        dynamic_axes={n: {0: "B"} for n in [*names, "image"]},
        opset_version=17,
        dynamo=False,
    )
    rec = artifact_record(
        folder,
        "model.onnx",
        graph="generator",
        format="onnx",
        precision="fp32",
        verification={"verdict": "pass"},
    )
    write_manifest(
        folder,
        {
            "format": "genedge.bundle",
            "schema_version": 1,
            "kind": "gan",
            "model": {
                "latent_dim": cfg.latent_dim,
                "num_classes": cfg.num_classes,
                "image_size": cfg.image_size,
                "channels": cfg.channels,
                "output_format": output_format,
                "latent": {"distribution": "normal"},
            },
            "graphs": {},
            "artifacts": [rec.to_dict()],
            "producer": {},
            "source": {},
        },
    )


def build_bundle(
    root: Path, name: str, kind: str, output_format: str = "uint8", **cfg: Any
) -> TinyBundle:
    """Export a random-weight ``kind`` model into ``root/name`` (fp32 only)."""
    pytest.importorskip("torch")
    from genedge.train.checkpoint import save_checkpoint

    model, config = _model(kind, **cfg)
    ckpt = save_checkpoint(root / f"{name}.safetensors", model, config, kind=kind)
    out = root / name
    exporter = _exporter()
    if exporter is not None:
        export_bundle, ExportOptions = exporter
        export_bundle(
            ExportOptions(
                checkpoint=ckpt, out=out, precisions=("fp32",), output_format=output_format
            )
        )
    elif kind == "gan":
        _hand_built_gan(out, model, config, output_format)
    else:
        pytest.skip("genedge.export is not importable; only the hand-built GAN bundle is available")
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

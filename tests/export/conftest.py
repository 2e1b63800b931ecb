"""Tiny random generators saved as real checkpoints, and small-budget export options."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from export_helpers import GAN_CFG, GRU_CFG, LSTM_CFG, VAE_CFG, fast_options, make_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpts")
    return {
        "gan": make_checkpoint(d / "gan.safetensors", "gan", GAN_CFG),
        "vae": make_checkpoint(d / "vae.safetensors", "vae", VAE_CFG),
        "gru": make_checkpoint(d / "gru.safetensors", "ar", GRU_CFG),
        "lstm": make_checkpoint(d / "lstm.safetensors", "ar", LSTM_CFG),
    }


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

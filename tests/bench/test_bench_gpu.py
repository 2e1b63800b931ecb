"""GPU only: the TensorRT backend (with and without CUDA graphs) and trtexec on the same engine."""

from __future__ import annotations

import json
import shutil

import pytest

from genedge.cli import main

pytestmark = pytest.mark.gpu


def test_bench_tensorrt_and_trtexec(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from genedge.export.bundle import export_bundle
    from genedge.export.options import ExportOptions
    from genedge.train import save_checkpoint
    from genedge.train.gan import GanConfig, Generator

    cfg = GanConfig(latent_dim=8, num_classes=3, image_size=8, g_width=16)
    ckpt = save_checkpoint(
        tmp_path / "run" / "generator.safetensors", Generator(cfg).eval(), cfg, kind="gan"
    )
    bundle = export_bundle(
        ExportOptions(
            source=ckpt,
            out=tmp_path / "bundle",
            precisions=("fp32", "fp16"),
            trt=True,
            profiles=((1, 4, 8),),
        )
    )
    baselines = "ort,trtexec" if shutil.which("trtexec") else "ort"
    assert (
        main(
            [
                "bench",
                str(bundle),
                "--backend",
                "tensorrt",
                "--precision",
                "fp16",
                "--batch",
                "1,8",
                "--iters",
                "50",
                "--baselines",
                baselines,
                "--json",
                str(tmp_path / "b.json"),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "b.json").read_text())
    labels = {r["label"] for r in data["results"]}
    assert "runtime tensorrt fp16" in labels and "runtime tensorrt fp16 +cuda-graphs" in labels
    if shutil.which("trtexec"):
        assert data["trtexec"] and "gpu_compute" in data["trtexec"][0]
    assert data["environment"]["gpus"]

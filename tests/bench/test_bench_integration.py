"""End to end: export a tiny random conditional GAN (fp32) and bench it for a few iterations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genedge.cli import main


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from genedge.export.bundle import export_bundle
    from genedge.export.options import ExportOptions
    from genedge.train import save_checkpoint
    from genedge.train.gan import GanConfig, Generator

    root = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    cfg = GanConfig(latent_dim=8, num_classes=3, image_size=8, g_width=16)
    ckpt = save_checkpoint(
        root / "run" / "generator.safetensors", Generator(cfg).eval(), cfg, kind="gan"
    )
    return export_bundle(ExportOptions(checkpoint=ckpt, out=root / "bundle", precisions=("fp32",)))


def test_bench_tiny_bundle_end_to_end(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(
        [
            "bench",
            str(tiny_bundle),
            "--backend",
            "ort-cpu",
            "--batch",
            "1,2",
            "--iters",
            "6",
            "--warmup",
            "2",
            "--rounds",
            "2",
            "--threads",
            "1",
            "--baselines",
            "torch,ort",
            "--fps",
            "20",
            "--fps-seconds",
            "0.3",
            "--json",
            str(out / "b.json"),
            "--markdown",
            str(out / "b.md"),
        ]
    )
    captured = capsys.readouterr()
    printed = captured.out
    assert rc == 0
    said = captured.err.splitlines()[0]  # before the run: what it will measure
    assert said.startswith("bench: ") and "timed cases x 6 calls, 1 cold start," in said
    data = json.loads((out / "b.json").read_text())
    kinds = {(r["kind"], r["batch"]) for r in data["results"]}
    # the source checkpoint is found beside the bundle (RUN/generator.safetensors, sha256 checked)
    assert {("runtime", 1), ("runtime", 2), ("ort", 1), ("torch", 2)} <= kinds
    for r in data["results"]:
        assert r["latency"]["n"] == 6 and sum(r["rounds"]["sizes"]) == 6 and "times_ns" not in r
        cdf = r["cdf_ms"]["ms"]
        assert (
            cdf[0] == r["latency"]["min"] and cdf[-1] == r["latency"]["max"] and cdf == sorted(cdf)
        )
        assert r["latency"]["p50"] <= r["latency"]["p99"] <= r["latency"]["max"]
    names = {(r["name"], r["batch"]) for r in data["ratios"]}
    assert ("speedup vs torch eager", 1) in names and ("overhead vs bare ORT", 2) in names
    assert ("runtime-sample", 1) in kinds  # Sampler.sample(n, seed=0) beside bare ORT
    over = {r["subject"] for r in data["ratios"] if r["name"] == "overhead vs bare ORT"}
    assert over == {"runtime ort-cpu fp32", "runtime ort-cpu fp32 sample()"}
    assert all(len(r["rounds"]["p50_ms"]) == 2 for r in data["results"])
    assert data["cold_start"] and "open_to_first_result_ms" in data["cold_start"][0]
    assert data["realtime"]["at_target"]["frames"] > 0
    assert data["environment"]["command"].startswith(
        f"genedge bench {tiny_bundle} --backend ort-cpu"
    )
    assert "--iters 6" in data["environment"]["command"]
    assert data["environment"]["manifest_sha256"] and data["environment"]["libraries"]["numpy"]
    assert data["quality"][0]["precision"] == "fp32"
    assert "Must-hold targets" not in printed and "speedup vs torch eager" in printed
    assert "## Ratios" in (out / "b.md").read_text()

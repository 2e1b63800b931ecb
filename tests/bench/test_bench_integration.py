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
    return export_bundle(ExportOptions(source=ckpt, out=root / "bundle", precisions=("fp32",)))


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
    assert "━" not in captured.err  # stderr is not a terminal here: no progress bar
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


def test_bench_records_flops_and_the_matmul_rate(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "b.json"
    args = ["bench", str(tiny_bundle), "--backend", "ort-cpu", "--batch", "1,4", "--iters", "4"]
    args += ["--warmup", "1", "--rounds", "2", "--threads", "1", "--cold-runs", "0"]
    assert main([*args, "--baselines", "ort", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    per_call = data["flops"]["per_call"]
    assert per_call["4"] == pytest.approx(4 * per_call["1"]) and per_call["1"] > 0
    probe = data["environment"]["matmul"]
    assert probe["threads"] == 1 and probe["gflops"] > 0 and probe["n"] == 512
    for r in data["results"]:
        expected = per_call[str(r["batch"])] / (r["latency"]["p50"] * 1e6)
        assert r["effective_gflops"] == pytest.approx(expected)
    printed = capsys.readouterr().out
    assert "GFLOP/s" in printed and "matrix multiply (numpy float32 512x512" in printed


def test_standalone_openvino_baseline_matches_ort(tiny_bundle, tmp_path):
    """The standalone OpenVINO case computes what bare ORT computes, on the same file."""
    pytest.importorskip("openvino")
    import numpy as np

    from genedge.bench.cases import OrtTarget, make_inputs, onnx_path
    from genedge.bench.openvino_baseline import OpenVinoTarget
    from genedge.manifest import read_manifest

    manifest = read_manifest(tiny_bundle)
    path = onnx_path(manifest, "fp32")
    inputs = make_inputs(manifest, 3, seed=1)
    ov, ort = OpenVinoTarget(path, "fp32", 1), OrtTarget(path, "ort-cpu", "fp32", 1)
    for t in (ov, ort):
        t.preload()
        t.open()
    try:
        got = np.asarray(next(iter(ov.prepare(inputs)().values())))
        want = ort.prepare(inputs)()[0]
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.abs(got.astype(np.int32) - want.astype(np.int32)).max() <= 1  # uint8 levels
        assert ov.info["config"] == {
            "ENABLE_CPU_PINNING": "NO",
            "INFERENCE_NUM_THREADS": 1,
            "INFERENCE_PRECISION_HINT": "f32",
        }
        assert ov.case_info(3)["compile_ms"] > 0
    finally:
        ov.close()
        ort.close()


def test_openvino_baseline_without_the_package_is_a_note(tiny_bundle, monkeypatch):
    import sys

    from genedge.bench.options import BenchOptions
    from genedge.bench.suite import run_bench

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    o = BenchOptions(
        bundle=tiny_bundle,
        backends=("ort-cpu",),
        batches=(1,),
        iters=2,
        warmup=0,
        rounds=1,
        cold_runs=0,
        threads=1,
        baselines=("openvino",),
    )
    report = run_bench(o)
    assert not any(r.kind == "openvino" for r in report.results)
    assert any("openvino" in n and "not installed" in n for n in report.notes)

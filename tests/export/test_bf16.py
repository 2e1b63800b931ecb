"""bf16 at export: refused (exit 3, naming the CPU flags) where the CPU has neither AVX-512
BF16 nor AMX, and otherwise gated against fp32 like fp16, the record on the fp32 artifact.

This machine may lack bf16: the gate path runs with the capability probe faked (OpenVINO
then computes in f32 or emulates; the gate's code path and records are what is checked).
"""

from __future__ import annotations

import json

import pytest
from export_helpers import fast_options

from genedge.cli import main
from genedge.errors import IncompatibleEnvironmentError
from genedge.runtime import openvino_backend as ovb


def test_bf16_refused_before_any_work(ckpts, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(ovb, "cpu_flags", lambda *a: {"sse2", "avx2", "avx512f"})
    from genedge.export.bundle import export_bundle

    out = tmp_path / "b"
    with pytest.raises(IncompatibleEnvironmentError, match="avx512_bf16 or amx_bf16"):
        export_bundle(fast_options(ckpts["gan"], out, precisions=("fp32", "bf16")))
    assert not out.exists()
    code = main(["export", str(ckpts["gan"]), "--out", str(out), "--precision", "fp32,bf16"])
    assert code == 3 and "avx512_bf16" in capsys.readouterr().err
    assert not out.exists()


def test_bf16_gate_recorded_on_the_fp32_artifact(ckpts, tmp_path, monkeypatch) -> None:
    pytest.importorskip("openvino")
    monkeypatch.setattr(ovb, "cpu_flags", lambda *a: {"avx512_bf16"})
    monkeypatch.setenv("GENEDGE_CACHE", str(tmp_path / "cache"))
    from genedge.export.bundle import export_bundle
    from genedge.manifest import read_manifest
    from genedge.runtime import Sampler

    out = export_bundle(fast_options(ckpts["gan"], tmp_path / "b", precisions=("bf16",)))
    raw = json.loads((out / "manifest.json").read_text())
    assert [a["precision"] for a in raw["artifacts"] if a["format"] == "onnx"] == ["fp32"]
    rec = raw["artifacts"][0]["inference_precisions"]["bf16"]
    v = rec["verification"]
    assert rec["backend"] == "openvino" and v["backend"] == "openvino-cpu-bf16"
    assert v["psnr_vs_fp32"] > 0 and 0 < v["ssim_vs_fp32"] <= 1 and v["samples"] == 16
    assert v["verdict"] == ("pass" if rec["quality_approved"] else "fail")
    assert rec["quality_approved"] == (v["psnr_vs_fp32"] >= 30.0)
    m = read_manifest(out)  # the typed record round-trips
    assert m.artifacts[0].inference_precisions.entries["bf16"].backend == "openvino"
    with Sampler.open(out, backend="openvino", precision="bf16", threads=1) as s:
        assert s.info.precision == "bf16" and s.info.file == "model.onnx"
    if rec["quality_approved"]:  # gated and the CPU has it: openvino's default precision
        with Sampler.open(out, backend="openvino", threads=1) as s:
            assert s.info.precision == "bf16"
    with Sampler.open(out, backend="ort-cpu", threads=1) as s:  # a hint ORT does not run
        assert s.info.precision == "fp32"
    from genedge.export.inspection import describe_bundle, format_report

    rows = {p["precision"]: p for p in describe_bundle(out)["precisions"]}
    assert rows["bf16"]["file"] == "model.onnx" and rows["bf16"]["backend"] == "openvino"
    assert rows["bf16"]["psnr_vs_fp32"] == v["psnr_vs_fp32"]
    assert "model.onnx (openvino)" in format_report(describe_bundle(out))


def test_reexport_without_bf16_drops_its_record(ckpts, tmp_path, monkeypatch) -> None:
    pytest.importorskip("openvino")
    monkeypatch.setattr(ovb, "cpu_flags", lambda *a: {"amx_bf16"})
    from genedge.export.bundle import export_bundle

    out = export_bundle(fast_options(ckpts["gan"], tmp_path / "b", precisions=("fp32", "bf16")))
    assert "inference_precisions" in json.loads((out / "manifest.json").read_text())["artifacts"][0]
    export_bundle(fast_options(ckpts["gan"], out, precisions=("fp32",)))  # fp32 reused
    assert (
        "inference_precisions"
        not in json.loads((out / "manifest.json").read_text())["artifacts"][0]
    )


def test_manifest_refuses_a_bad_hint_record(tmp_path) -> None:
    from genedge.errors import CorruptArtifactError
    from genedge.manifest import Artifact

    ok = Artifact(
        "model.onnx",
        "generator",
        "onnx",
        "0" * 64,
        1,
        precision="fp32",
        inference_precisions={"bf16": {"backend": "openvino", "quality_approved": True}},
    )
    assert ok.to_dict()["inference_precisions"]["bf16"]["quality_approved"] is True
    for bad in ({"int4": {"backend": "openvino"}}, {"bf16": {"backend": "ort-cpu"}}):
        with pytest.raises(CorruptArtifactError, match="inference_precisions"):
            Artifact("model.onnx", "generator", "onnx", "0" * 64, 1, inference_precisions=bad)

"""bf16 at export: gated against fp32 like fp16, the record on the fp32 artifact; on
OpenVINO where the CPU has AVX-512 BF16 or AMX, by emulated bf16 rounding where it has not
(and the runtime then refuses bf16 on that CPU, exit 3, naming the flags).

This machine may lack bf16: the OpenVINO gate path runs with the capability probe faked
(OpenVINO then computes in f32; the gate's code path and records are what is checked).
"""

from __future__ import annotations

import json

import pytest
from export_helpers import fast_options

from genedge.cli import main
from genedge.errors import IncompatibleEnvironmentError
from genedge.runtime import machine


def test_bf16_gate_emulated_where_the_cpu_lacks_it(ckpts, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(machine, "cpu_flags", lambda *a: {"sse2", "avx2", "avx512f"})
    from genedge.runtime import Sampler

    out = tmp_path / "b"
    code = main(["export", str(ckpts["gan"]), "--out", str(out), "--precision", "fp32,bf16"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "bf16 (emulated)" in printed.out + printed.err
    fp32 = json.loads((out / "manifest.json").read_text())["artifacts"][0]
    rec = fp32["inference_precisions"]["bf16"]
    v = rec["verification"]
    assert v["method"] == "emulated" and v["backend"] == "onnxruntime-cpu-bf16-emulated"
    # bf16 keeps 8 significant bits: measurably off fp32, still a picture of the same thing
    assert 25.0 < v["psnr_vs_fp32"] < 90.0 and 0.9 < v["ssim_vs_fp32"] <= 1.0
    assert rec["quality_approved"] == (v["psnr_vs_fp32"] >= 30.0)
    assert not any(p.name.startswith(".genedge-tmp") for p in out.iterdir())
    with pytest.raises(IncompatibleEnvironmentError, match="avx512_bf16 or amx_bf16"):
        Sampler.open(out, backend="openvino", precision="bf16")


def test_bf16_round_is_round_to_nearest_even() -> None:
    import numpy as np

    from genedge.export.stages.bf16 import bf16_round

    big = np.finfo(np.float32).max  # past the largest bf16: rounds to inf
    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-9, -2.5, np.inf, big], np.float32)
    want = np.array([1.0, 1.0, 1 + 2**-6, 1.0, -2.5, np.inf, np.inf], np.float32)
    got = bf16_round(x)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(bf16_round(np.array([np.nan], np.float32)))[0]
    # every result is a bf16 value: its low 16 bits are zero
    assert not (
        bf16_round(np.random.default_rng(0).standard_normal(1000).astype(np.float32)).view(
            np.uint32
        )
        & 0xFFFF
    ).any()


def test_bf16_gate_recorded_on_the_fp32_artifact(ckpts, tmp_path, monkeypatch) -> None:
    pytest.importorskip("openvino")
    monkeypatch.setattr(machine, "cpu_flags", lambda *a: {"avx512_bf16"})
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
    monkeypatch.setattr(machine, "cpu_flags", lambda *a: {"amx_bf16"})
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

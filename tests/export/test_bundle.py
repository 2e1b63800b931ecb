"""The bundle: manifest, hashes, parity gate, reuse, lock, eval."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from pathlib import Path

import numpy as np
import pytest
from export_helpers import fast_options

from genedge.errors import IntegrityError
from genedge.export.bundle import LOCK_NAME, export_bundle
from genedge.export.checks.parity import ParityError
from genedge.manifest import TensorSpec, read_manifest, sha256_file


def test_manifest_validates_and_every_hash_matches(gan_bundle):
    m = read_manifest(gan_bundle)
    assert m.kind == "gan" and m.model.latent_dim == 16 and m.model.num_classes == 4
    assert m.model.output_format == "uint8" and m.model.latent_distribution == "normal"
    assert m.model.image_shape == (8, 8, 1) and m.model.extra["g_width"] == 16
    assert {a.file for a in m.artifacts} == {"model.onnx", "model.fp16.onnx", "model.int8.onnx"}
    for a in m.artifacts:
        assert m.path_of(a) and sha256_file(gan_bundle / a.file) == a.sha256
        assert a.graph == "generator" and a.verification.verdict in ("pass", "fail")
    g = m.graphs["generator"]
    assert [t.name for t in g.inputs] == ["z", "label"]
    assert g.outputs == (TensorSpec("image", "uint8", ("B", 8, 8, 1), "NHWC"),)
    assert {"genedge", "torch", "onnx", "onnxruntime", "onnxslim"} <= set(m.producer)
    assert m.source["checkpoint"] == "gan.safetensors" and len(m.source["sha256"]) == 64
    # the checkpoint's place, relative to the bundle, so baselines find it without flags
    assert not Path(m.source["path"]).is_absolute()
    assert sha256_file(gan_bundle / m.source["path"]) == m.source["sha256"]
    (fp32,) = m.find(precision="fp32")
    assert fp32.verification.max_abs_err_vs_torch <= 1
    (int8,) = m.find(precision="int8")
    assert int8.calibration.to_dict() == {
        "method": "minmax",
        "source": "prior",
        "samples": 32,
        "seed": 0,
        "truncation": 1.0,
    }
    assert int8.verification.psnr_vs_fp32 is not None
    assert int8.verification.ssim_vs_fp32 is not None
    assert int8.recipe is not None and int8.recipe.kept_float is not None


def test_vae_bundle_has_encoder_and_decoder(vae_bundle):
    m = read_manifest(vae_bundle)
    assert set(m.graphs) == {"decoder", "encoder"}
    assert {(a.file, a.graph) for a in m.artifacts} >= {
        ("model.onnx", "decoder"),
        ("encoder.onnx", "encoder"),
        ("encoder.fp16.onnx", "encoder"),
    }


def test_ar_bundle_records_vocab_and_state(lstm_bundle):
    m = read_manifest(lstm_bundle)
    assert m.model.vocab == "?abcde " and m.model.state_names == ("h", "c")
    assert m.model.state_shape == (2, "B", 16) and m.model.vocab_size == 7
    assert [t.name for t in m.graphs["step"].outputs] == ["logits", "h_out", "c_out"]
    (int8,) = m.find(precision="int8")
    assert "bpc" in int8.verification.metrics


def test_reexport_reuses_unchanged_artifacts(ckpts, tmp_path):
    logs: list[str] = []
    opts = fast_options(ckpts["gan"], tmp_path / "b", precisions=("fp32", "fp16"))
    export_bundle(opts, log=logs.append)
    before = (tmp_path / "b" / "manifest.json").read_bytes()
    export_bundle(opts, log=logs.append)
    assert "is current" in logs[-1] and (tmp_path / "b" / "manifest.json").read_bytes() == before
    logs.clear()
    export_bundle(dataclasses.replace(opts, precisions=("fp32", "int8")), log=logs.append)
    assert any(line.startswith("reused model.onnx") for line in logs)
    m = read_manifest(tmp_path / "b")
    assert {a.precision for a in m.artifacts} == {"fp32", "int8"}  # fp16 no longer asked for
    assert any(
        line.startswith("removed model.fp16.onnx (fp16): not asked for this time")
        and "--precision fp32,int8,fp16" in line
        for line in logs
    ), logs
    logs.clear()
    export_bundle(
        dataclasses.replace(opts, precisions=("fp32", "int8"), force=True), log=logs.append
    )
    assert not any("reused" in line or "removed" in line for line in logs)


def test_triton_repository_is_written_for_a_current_bundle(ckpts, tmp_path):
    logs: list[str] = []
    opts = fast_options(ckpts["gan"], tmp_path / "b", precisions=("fp32",))
    export_bundle(opts, log=logs.append)
    repo = tmp_path / "triton"
    export_bundle(dataclasses.replace(opts, triton=repo), log=logs.append)
    assert any("is current" in line for line in logs)
    assert logs[-1].startswith("Triton model repository:")
    model = repo / "b_generator"
    assert (model / "config.pbtxt").is_file()
    assert (model / "1" / "model.onnx").read_bytes() == (tmp_path / "b" / "model.onnx").read_bytes()


def test_parity_failure_raises_and_leaves_no_bundle(ckpts, tmp_path, monkeypatch):
    import genedge.export.routes.onnx_export as onnx_export

    real_slim = onnx_export.slim_model

    def sabotaged(model):
        from onnx import numpy_helper

        model = real_slim(model)
        w = next(t for t in model.graph.initializer if numpy_helper.to_array(t).ndim == 4)
        w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * 3.0, w.name))
        return model

    monkeypatch.setattr(onnx_export, "slim_model", sabotaged)
    with pytest.raises(ParityError, match="fails parity"):
        export_bundle(fast_options(ckpts["gan"], tmp_path / "b"))
    assert not (tmp_path / "b").exists() and os.listdir(tmp_path) == []


def test_parity_failure_keeps_previous_bundle(ckpts, gan_bundle, tmp_path, monkeypatch):
    import shutil

    import genedge.export.checks.parity as parity

    out = tmp_path / "b"
    shutil.copytree(gan_bundle, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(parity, "PARITY_TOL", {"uint8": -1.0, "float32": -1.0})  # nothing can pass
    with pytest.raises(ParityError):
        export_bundle(fast_options(ckpts["gan"], out, force=True))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temp folder left


def test_concurrent_export_is_refused(ckpts, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(IntegrityError, match="being written by another genedge command"):
            export_bundle(fast_options(ckpts["gan"], out, precisions=("fp32",)))
    finally:
        os.close(fd)
    export_bundle(fast_options(ckpts["gan"], out, precisions=("fp32",)))  # free again
    assert read_manifest(out).find(precision="fp32")


def test_evaluate_bundle(gan_bundle, lstm_bundle):
    from genedge.export.checks.evaluate import evaluate_bundle

    res = evaluate_bundle(gan_bundle, n=32, seed=5)
    assert set(res["artifacts"]) == {"model.onnx", "model.fp16.onnx", "model.int8.onnx"}
    assert res["artifacts"]["model.int8.onnx"]["psnr_vs_fp32"] > 20
    assert evaluate_bundle(gan_bundle, precisions=["fp16"], n=16)["artifacts"].keys() == {
        "model.fp16.onnx"
    }
    text = evaluate_bundle(lstm_bundle, n=128)
    bpc = [a["metrics"]["bpc_on_fp32_samples"] for a in text["artifacts"].values()]
    assert np.ptp(bpc) < 0.1 and 0 < bpc[0] < 10
    json.dumps(res)  # plain JSON for --json


def test_seeded_latents_follow_the_bundle_contract():
    from genedge.latents import default_labels as seeded_labels
    from genedge.latents import seeded_latents

    z = seeded_latents(5, 3, seed=7)
    assert np.array_equal(z, np.random.default_rng(7).standard_normal((5, 3), dtype=np.float32))
    zt = seeded_latents(500, 8, seed=1, truncation=0.5)
    assert np.abs(zt).max() <= 1.0 and zt.dtype == np.float32
    assert seeded_labels(5, 3).tolist() == [0, 1, 2, 0, 1]

"""Triton config text (parsed with Triton's own protobuf schema when installed) and metric_drop."""

from __future__ import annotations

import pytest

from genedge.export.checks.quality import metric_drop
from genedge.export.stages.triton import config_pbtxt, write_triton_repository
from genedge.manifest import graph_io_from, read_manifest


def _parse(text: str):
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_triton_config_parses_with_triton_schema(gan_bundle, tmp_path):
    (cfg_path,) = write_triton_repository(
        gan_bundle, tmp_path / "repo", read_manifest(gan_bundle), max_batch_size=16
    )
    cfg = _parse(cfg_path.read_text())
    assert cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 16
    assert [(i.name, list(i.dims)) for i in cfg.input] == [("z", [16]), ("label", [1])]
    assert list(cfg.input[1].reshape.shape) == []  # (B,) label: one scalar per request
    assert cfg.output[0].name == "image" and list(cfg.output[0].dims) == [8, 8, 1]
    from tritonclient.grpc import model_config_pb2 as pb

    assert cfg.input[0].data_type == pb.TYPE_FP32 and cfg.input[1].data_type == pb.TYPE_INT64
    assert cfg.output[0].data_type == pb.TYPE_UINT8
    assert cfg.HasField("dynamic_batching") and cfg.instance_group[0].count == 1
    assert (cfg_path.parent / "1" / "model.onnx").read_bytes() == (
        gan_bundle / "model.onnx"
    ).read_bytes()


def test_triton_engine_and_state_graphs():
    step = {
        "inputs": [
            {"name": "token", "dtype": "int64", "shape": ["B"]},
            {"name": "h", "dtype": "float32", "shape": [2, "B", 16]},
        ],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["B", 7]}],
    }
    step = graph_io_from(step, "test", "step")
    cfg = _parse(config_pbtxt("ar_step", step, platform="onnxruntime_onnx", max_batch_size=8))
    assert cfg.max_batch_size == 0 and not cfg.HasField(
        "dynamic_batching"
    )  # batch is not axis 0 of h
    assert list(cfg.input[0].dims) == [-1] and list(cfg.input[1].dims) == [2, -1, 16]
    img = {
        "inputs": [{"name": "z", "dtype": "float32", "shape": ["B", 4]}],
        "outputs": [{"name": "image", "dtype": "uint8", "shape": ["B", 8, 8, 1]}],
    }
    img = graph_io_from(img, "test", "generator")
    cfg = _parse(
        config_pbtxt(
            "g_trt",
            img,
            platform="tensorrt_plan",
            max_batch_size=32,
            kind="KIND_GPU",
            preferred=(8, 32),
        )
    )
    assert cfg.platform == "tensorrt_plan" and list(cfg.dynamic_batching.preferred_batch_size) == [
        8,
        32,
    ]


def test_metric_drop():
    assert metric_drop(
        {"conditional_accuracy": 0.90}, {"conditional_accuracy": 0.88}
    ) == pytest.approx(0.02)
    assert metric_drop(
        {"conditional_accuracy": 90.0}, {"conditional_accuracy": 89.5}
    ) == pytest.approx(0.005)
    assert metric_drop({"bpc": 2.0}, {"bpc": 2.1}) == pytest.approx(0.1)
    assert (
        metric_drop({"frechet_distance": 10.0}, {"frechet_distance": 30.0}) == 0.0
    )  # recorded, not gated
    # the judge's own held-out accuracy describes the yardstick, not the images: never gated
    ref = {"judge_heldout_accuracy": 0.98, "conditional_accuracy": 0.9}
    assert metric_drop(ref, {"judge_heldout_accuracy": 0.5, "conditional_accuracy": 0.9}) == 0.0

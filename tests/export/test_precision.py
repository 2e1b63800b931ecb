"""FP16 (fp32 I/O, overflow guard) and INT8 (Q/DQ, zero-point 0, per-channel) conversions."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from genedge.export.checks.parity import onnx_runner
from genedge.export.stages.fp16 import FP16_MAX, fp16_from_onnx
from genedge.export.stages.int8 import int8_from_onnx, quantizable_nodes
from genedge.export.stages.mixed import GateResult, search_recipe


def _huge_activation_model():
    """x (B, 4) -> MatMul(W=1e3) -> 'big' (|.| ~ 1e5, beyond fp16) -> Add -> Mul(1e-3) -> Relu -> y."""
    w = numpy_helper.from_array(np.full((4, 4), 1000.0, np.float32), "W")
    s = numpy_helper.from_array(np.array(1e-3, np.float32), "S")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["big"], name="big_matmul"),
        helper.make_node("Add", ["big", "big"], ["big2"], name="double"),
        helper.make_node("Mul", ["big2", "S"], ["mid"], name="scale_down"),
        helper.make_node("Relu", ["mid"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 4])],
        [w, s],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(m)


def _io_types(model) -> dict[str, int]:
    return {
        v.name: v.type.tensor_type.elem_type
        for v in list(model.graph.input) + list(model.graph.output)
    }


def test_fp16_guard_blocks_overflowing_node(tmp_path):
    model = _huge_activation_model()
    x = np.full((2, 4), 30.0, np.float32)  # big = 4 * 30 * 1000 = 1.2e5 > 65504
    fp16, blocked, ranges = fp16_from_onnx(model, [{"x": x}])
    assert ranges["big"] > FP16_MAX
    assert {"big_matmul", "double", "scale_down"} <= set(blocked) and "relu" not in blocked
    assert _io_types(fp16) == {"x": TensorProto.FLOAT, "y": TensorProto.FLOAT}
    onnx.save(fp16, str(tmp_path / "g.onnx"))
    y = onnx_runner(tmp_path / "g.onnx").run({"x": x})["y"]
    assert np.isfinite(y).all() and np.allclose(y, 240.0, rtol=1e-2)


def test_fp16_without_guard_would_overflow(tmp_path):
    from onnxconverter_common import float16

    model = _huge_activation_model()
    plain = float16.convert_float_to_float16(model, keep_io_types=True)
    from onnx.reference import ReferenceEvaluator

    (y,) = ReferenceEvaluator(plain).run(
        None, {"x": np.full((2, 4), 30.0, np.float32)}
    )  # true fp16 arithmetic
    assert not np.isfinite(y).all()  # the Inf the guard prevents


def test_fp16_bundle_artifacts_keep_fp32_io(gan_bundle, vae_bundle):
    for path in (
        gan_bundle / "model.fp16.onnx",
        vae_bundle / "model.fp16.onnx",
        vae_bundle / "encoder.fp16.onnx",
    ):
        m, ref = onnx.load(str(path)), onnx.load(str(path).replace(".fp16", ""))
        assert _io_types(m) == _io_types(ref)
        assert any(t.data_type == TensorProto.FLOAT16 for t in m.graph.initializer)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_fp16_single_layer_rnn_keeps_fp32_state_io(tmp_path, cell):
    """One layer: the blocked GRU/LSTM writes ``h_out`` itself, which the converter retyped fp16."""
    import dataclasses

    from export_helpers import GRU_CFG, fast_options, make_checkpoint

    from genedge.export.bundle import export_bundle

    ckpt = make_checkpoint(
        tmp_path / "ar.safetensors", "ar", dataclasses.replace(GRU_CFG, cell=cell, layers=1)
    )
    out = export_bundle(fast_options(ckpt, tmp_path / "b", precisions=("fp32", "fp16")))
    m, ref = onnx.load(str(out / "model.fp16.onnx")), onnx.load(str(out / "model.onnx"))
    assert _io_types(m) == _io_types(ref)
    assert _io_types(m)["token"] == TensorProto.INT64 and _io_types(m)["h_out"] == TensorProto.FLOAT


def test_int8_is_symmetric_qdq_per_channel(gan_bundle):
    m = onnx.load(str(gan_bundle / "model.int8.onnx"))
    ops = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    zps = [
        inits[n.input[2]]
        for n in m.graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear")
    ]
    assert zps and all(
        z.dtype == np.int8 and not z.any() for z in zps
    )  # no int32 bias Q/DQ (TensorRT)
    weight_dq = [
        n
        for n in m.graph.node
        if n.op_type == "DequantizeLinear"
        and inits.get(n.input[0]) is not None
        and inits[n.input[0]].ndim == 4
    ]  # conv weights
    assert weight_dq and all(
        inits[n.input[1]].size == inits[n.input[0]].shape[0] for n in weight_dq
    )
    assert _io_types(m) == _io_types(onnx.load(str(gan_bundle / "model.onnx")))


def test_int8_excludes_named_nodes(gan_bundle, tmp_path):
    src = gan_bundle / "model.onnx"
    nodes = quantizable_nodes(onnx.load(str(src)))
    feeds = [
        {
            "z": np.random.default_rng(0).standard_normal((8, 16), dtype=np.float32),
            "label": np.arange(8, dtype=np.int64) % 4,
        }
    ]
    out = int8_from_onnx(src, tmp_path / "q.onnx", feeds, keep_float=(nodes[-1],))
    m = onnx.load(str(out))
    last = next(n for n in m.graph.node if n.name == nodes[-1])
    producers = {o: n.op_type for n in m.graph.node for o in n.output}
    assert all(producers.get(i) != "DequantizeLinear" for i in last.input)  # still float


def test_search_recipe_keeps_most_sensitive_first(tmp_path):
    gains = {"a": 1.0, "b": 10.0, "c": 3.0}  # b matters most

    def build(kept):
        p = tmp_path / ("_".join(kept) or "none")
        p.write_text(",".join(kept))
        return p

    def evaluate(path):
        kept = [k for k in path.read_text().split(",") if k]
        score = 20 + sum(gains[k] for k in kept)
        return GateResult(score >= 32, score, {"psnr_vs_fp32": score})

    recipe = search_recipe(build, evaluate, ["a", "b", "c"])
    assert recipe.kept_float == ("b", "c") and recipe.result.passed
    assert recipe.sensitivity == {"a": 1.0, "b": 10.0, "c": 3.0}
    assert recipe.path.read_text() == "b,c"


def test_search_recipe_all_int8_when_it_passes(tmp_path):
    def build(kept):
        return tmp_path / "x"

    recipe = search_recipe(build, lambda p: GateResult(True, 40.0), ["a"])
    assert recipe.kept_float == () and recipe.sensitivity == {}


def test_quality_gate_failure_records_kept_float(ckpts, tmp_path):
    import json

    from export_helpers import fast_options

    from genedge.export.bundle import export_bundle

    out = export_bundle(
        fast_options(ckpts["gan"], tmp_path / "b", precisions=("int8",), min_psnr=70.0)
    )
    manifest = json.loads((out / "manifest.json").read_text())
    found = [a for a in manifest["artifacts"] if a["precision"] == "int8"]
    if not found:  # the gate kept every weighted node in float: no int8 weight left to write
        assert "kept in float" in manifest["source"]["skipped"]["int8"], manifest["source"]
        return
    int8 = found[0]
    assert int8["recipe"]["kept_float"], int8
    assert set(int8["recipe"]["sensitivity"]) >= set(int8["recipe"]["kept_float"])
    assert int8["quality_approved"] == (int8["verification"]["verdict"] == "pass")


def test_vae_calibration_from_real_data_uses_posterior(ckpts):
    pytest.importorskip("genedge.train.data")
    from genedge.export.routes.onnx_export import load_generator
    from genedge.export.stages.calibration import CalibrationSpec, image_calibration_feeds

    model, cfg, kind = load_generator(ckpts["vae"])
    prior = image_calibration_feeds(model, cfg, kind, CalibrationSpec(samples=40), batch=20)
    data = image_calibration_feeds(
        model, cfg, kind, CalibrationSpec(samples=40, data="digits"), batch=20
    )
    assert [f["z"].shape for f in data] == [(20, 8), (20, 8)]
    assert not np.allclose(data[0]["z"], prior[0]["z"])  # encoder posterior, not the prior

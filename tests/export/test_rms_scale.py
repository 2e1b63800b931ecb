"""An RMSNorm that lost its scale to constant folding gets a Mul by ones, which ORT fuses."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from genedge.export.rewrites.rms_scale import restore_rms_scales  # noqa: E402

C = 16


def _norm_model(scaled: bool):
    """x (1, S, C) -> x / sqrt(mean(x^2) + eps) [* w] -> MatMul W: a first norm and a reader."""
    nodes = [
        helper.make_node("Pow", ["x", "two"], ["sq"], name="pow"),
        helper.make_node("ReduceMean", ["sq"], ["ms"], name="mean", axes=[-1], keepdims=1),
        helper.make_node("Add", ["ms", "eps"], ["ms_eps"], name="add"),
        helper.make_node("Sqrt", ["ms_eps"], ["rms"], name="sqrt"),
        helper.make_node("Div", ["x", "rms"], ["h"], name="div"),
    ]
    inits = {
        "two": np.array(2.0, np.float32),
        "eps": np.array(1e-6, np.float32),
        "W": np.random.default_rng(0).standard_normal((C, 8)).astype(np.float32),
    }
    h = "h"
    if scaled:
        inits["w"] = np.linspace(0.5, 1.5, C).astype(np.float32)
        nodes.append(helper.make_node("Mul", ["h", "w"], ["hw"], name="scale"))
        h = "hw"
    nodes.append(helper.make_node("MatMul", [h, "W"], ["y"], name="proj"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "S", C])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "S", 8])],
        [numpy_helper.from_array(a, k) for k, a in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


def _session(model, optimized=None):
    so = ort.SessionOptions()
    if optimized:
        so.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def test_an_unscaled_norm_gets_ones_and_ort_fuses_it(tmp_path):
    model = _norm_model(scaled=False)
    x = np.random.default_rng(1).standard_normal((1, 5, C)).astype(np.float32)
    before = _session(model, tmp_path / "plain.onnx").run(None, {"x": x})[0]
    assert "Pow" in [n.op_type for n in onnx.load(str(tmp_path / "plain.onnx")).graph.node]
    assert restore_rms_scales(model) == 1
    onnx.checker.check_model(model)
    (mul,) = [n for n in model.graph.node if n.op_type == "Mul"]
    ones = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}[mul.input[1]]
    assert ones.tolist() == [1.0] * C and mul.output[0] == "h"
    after = _session(model, tmp_path / "opt.onnx").run(None, {"x": x})[0]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    fused = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert "SimplifiedLayerNormalization" in fused and "Pow" not in fused


def test_a_scaled_norm_is_left_alone():
    model = _norm_model(scaled=True)
    assert restore_rms_scales(model) == 0
    assert [n.op_type for n in model.graph.node].count("Mul") == 1

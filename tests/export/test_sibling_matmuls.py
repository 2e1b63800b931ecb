"""MatMuls reading one activation with constant weights folded into one MatMul + Split."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from genedge.export.rewrites.sibling_matmuls import pack_sibling_matmuls  # noqa: E402


def _model(opset: int = 17):
    """x -> MatMul W1 (y1), MatMul W2 (y2), MatMul W3 -> Relu (y3): three siblings; z -> MatMul
    W4 (y4) and x2 -> MatMul W4 (y5): W4 read twice; x -> MatMul by the input w (y6)."""
    rng = np.random.default_rng(0)
    w = {
        f"W{i}": rng.standard_normal((8, n)).astype(np.float32) for i, n in ((1, 5), (2, 7), (3, 3))
    }
    w["W4"] = rng.standard_normal((4, 6)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["y1"], name="m1"),
        helper.make_node("MatMul", ["x", "W2"], ["y2"], name="m2"),
        helper.make_node("MatMul", ["x", "W3"], ["t3"], name="m3"),
        helper.make_node("Relu", ["t3"], ["y3"], name="r3"),
        helper.make_node("MatMul", ["z", "W4"], ["y4"], name="m4"),
        helper.make_node("MatMul", ["z2", "W4"], ["y5"], name="m5"),
        helper.make_node("MatMul", ["x", "w"], ["y6"], name="m6"),
    ]

    def f(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    graph = helper.make_graph(
        nodes,
        "g",
        [f("x", [1, "S", 8]), f("z", [2, 4]), f("z2", [3, 4]), f("w", [8, 2])],
        [
            f("y1", [1, "S", 5]),
            f("y2", [1, "S", 7]),
            f("y3", [1, "S", 3]),
            f("y4", [2, 6]),
            f("y5", [3, 6]),
            f("y6", [1, "S", 2]),
        ],
        [numpy_helper.from_array(a, k) for k, a in w.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run(model):
    rng = np.random.default_rng(1)
    feed = {
        "x": rng.standard_normal((1, 3, 8)).astype(np.float32),
        "z": rng.standard_normal((2, 4)).astype(np.float32),
        "z2": rng.standard_normal((3, 4)).astype(np.float32),
        "w": rng.standard_normal((8, 2)).astype(np.float32),
    }
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, feed)


def test_siblings_become_one_matmul_and_a_split_with_the_same_outputs():
    model = _model()
    before = _run(model)
    assert pack_sibling_matmuls(model) == 2  # m2 and m3 folded into m1
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["MatMul", "Split", "Relu", "MatMul", "MatMul", "MatMul"]
    split = model.graph.node[1]
    assert list(split.output) == ["y1", "y2", "t3"]
    widths = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert widths[split.input[1]].tolist() == [5, 7, 3]
    # the concatenated weights replace W1-W3; W4 (read twice) is left whole
    assert sorted(widths) == sorted(["W4", split.input[1], model.graph.node[0].input[1]])
    for want, got in zip(before, _run(model), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_nothing_changes_without_siblings_or_before_opset_13():
    model = _model(opset=12)
    assert pack_sibling_matmuls(model) == 0
    assert len(model.graph.node) == 7
    single = _model()
    del single.graph.node[1:3]  # x -> m1 and m6 (input weight) only
    single.graph.node.insert(1, helper.make_node("Relu", ["x"], ["t3"], name="r"))
    single.graph.node.insert(1, helper.make_node("Identity", ["x"], ["y2"], name="i"))
    assert pack_sibling_matmuls(single) == 0
    assert [n.op_type for n in single.graph.node][:3] == ["MatMul", "Identity", "Relu"]

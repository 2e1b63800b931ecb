"""Optional outputs nobody reads are left unnamed (ONNX Runtime allocates every named one)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from genedge.export.rewrites.unread_outputs import (  # noqa: E402
    blank_outputs,
    drop_unread_outputs,
    name_blank_outputs,
)

C = 8


def _model():
    """Two SkipSimplifiedLayerNormalization nodes naming all four outputs: the first one's sum
    feeds the second, the second's sum and statistics are read by nothing."""

    def norm(name, x, skip):
        outs = [f"{name}.y", f"{name}.mean", f"{name}.inv_std", f"{name}.sum"]
        node = helper.make_node(
            "SkipSimplifiedLayerNormalization",
            [x, skip, "w"],
            outs,
            name=name,
            domain="com.microsoft",
            epsilon=1e-6,
        )
        return node

    nodes = [norm("n0", "x", "s"), norm("n1", "n0.y", "n0.sum")]
    nodes.append(helper.make_node("Relu", ["n1.y"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, C]) for n in ("x", "s")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, C])],
        [numpy_helper.from_array(np.linspace(0.5, 1.5, C).astype(np.float32), "w")],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def test_unread_statistics_and_sums_lose_their_names_and_results_do_not_change():
    model = _model()
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal((1, 3, C)).astype(np.float32) for n in ("x", "s")}

    def run(m):
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return s.run(None, feed)[0]

    before = run(model)
    assert drop_unread_outputs(model) == 5  # n0: mean, inv_std; n1: mean, inv_std, sum
    n0, n1 = model.graph.node[:2]
    assert list(n0.output) == ["n0.y", "", "", "n0.sum"]  # the read sum keeps its place
    assert list(n1.output) == ["n1.y"]  # trailing blanks removed
    onnx.checker.check_model(model)
    np.testing.assert_array_equal(run(model), before)
    assert drop_unread_outputs(model) == 0


def test_blanks_named_for_a_tool_that_sorts_by_name_are_dropped_again():
    model = _model()
    drop_unread_outputs(model)
    named = name_blank_outputs(model)
    assert len(named) == 2  # n0's mean and inv_std, before its read sum
    assert all(model.graph.node[0].output)
    assert blank_outputs(model, named) == 2
    assert list(model.graph.node[0].output) == ["n0.y", "", "", "n0.sum"]


def test_fp16_conversion_takes_a_graph_with_a_blank_optional_output():
    """onnxconverter-common sorts nodes by output name and stopped on "" (any route's graph
    can leave an optional output blank); the fp16 stage names blanks for it and blanks them
    again after."""
    from genedge.export.stages.fp16 import fp16_from_onnx

    model = _model()
    drop_unread_outputs(model)
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal((1, 3, C)).astype(np.float32) for n in ("x", "s")}
    fp16, _, _ = fp16_from_onnx(model, [feed])
    norms = [n for n in fp16.graph.node if n.op_type == "SkipSimplifiedLayerNormalization"]
    assert [list(n.output[1:3]) for n in norms] == [["", ""], []]
    assert any(t.data_type == TensorProto.FLOAT16 for t in fp16.graph.initializer)

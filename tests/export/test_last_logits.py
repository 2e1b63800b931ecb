"""The decoder's optional ``logits_from`` input: every position's logits by default, the last
position's only when fed [-1]."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from genedge.export.rewrites.last_logits import add_logits_from  # noqa: E402
from genedge.manifest_model import LOGITS_FROM  # noqa: E402

C, V = 8, 11


def _head(cast: bool = False, bias: bool = False):
    """x (1, S, C) -> Relu -> MatMul W (-> Cast | -> Add b) -> logits (1, S, V)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Relu", ["x"], ["h"]), helper.make_node("MatMul", ["h", "W"], ["y"])]
    inits = [numpy_helper.from_array(rng.standard_normal((C, V)).astype(np.float32), "W")]
    if cast:
        nodes.append(helper.make_node("Cast", ["y"], ["logits"], to=TensorProto.FLOAT))
    elif bias:
        inits.append(numpy_helper.from_array(np.ones(V, np.float32), "b"))
        nodes.append(helper.make_node("Add", ["y", "b"], ["logits"]))
    else:
        nodes[-1].output[0] = "logits"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "S", C])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "S", V])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


@pytest.mark.parametrize("cast", [False, True])
def test_the_head_runs_for_every_position_by_default_and_the_last_on_request(cast):
    model = _head(cast=cast)
    x = np.random.default_rng(1).standard_normal((1, 6, C)).astype(np.float32)
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    before = s.run(None, {"x": x})[0]
    assert add_logits_from(model)
    onnx.checker.check_model(model)
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [i.name for i in s.get_inputs()] == ["x"]  # not a required input
    assert [i.name for i in s.get_overridable_initializers()] == [LOGITS_FROM]
    np.testing.assert_array_equal(s.run(None, {"x": x})[0], before)
    last = s.run(None, {"x": x, LOGITS_FROM: np.array([-1], np.int64)})[0]
    assert last.shape == (1, 1, V)
    np.testing.assert_allclose(last[0, 0], before[0, -1], rtol=1e-6, atol=1e-6)


def test_a_head_it_does_not_recognise_is_left_alone():
    model = _head(bias=True)  # logits = MatMul + Add: the Add is not a head it knows
    assert not add_logits_from(model)
    assert LOGITS_FROM not in {i.name for i in model.graph.input}
    model = _head()
    assert add_logits_from(model) and not add_logits_from(model)  # once

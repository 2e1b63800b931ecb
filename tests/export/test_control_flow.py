"""Which ONNX control flow export runs: loops with static, small trips; If always."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from genedge.errors import BadInputError  # noqa: E402
from genedge.export.checks.control_flow import MAX_TRIPS, check_control_flow  # noqa: E402


def _vi(name, dims=("B", 4), t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, list(dims))


def _pass_body(inner=None):
    nodes = [helper.make_node("Identity", ["c"], ["c_out"])]
    if inner is None:
        nodes.append(helper.make_node("Identity", ["a"], ["a_out"]))
    else:
        nodes.append(inner)
    return helper.make_graph(
        nodes,
        "body",
        [_vi("i", (), TensorProto.INT64), _vi("c", (), TensorProto.BOOL), _vi("a")],
        [_vi("c_out", (), TensorProto.BOOL), _vi("a_out")],
    )


def _model(nodes, inits=(), functions=()):
    g = helper.make_graph(
        nodes, "g", [_vi("x")], [_vi("y")], initializer=[*inits, _const("cond", True)]
    )
    m = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=list(functions),
    )
    m.ir_version = 8
    return m


def _const(name, value):
    return numpy_helper.from_array(np.array(value), name)


def _loop(trips_name="M", out="y", inner=None):
    return helper.make_node("Loop", [trips_name, "cond", "x"], [out], body=_pass_body(inner))


def test_a_loop_with_a_small_constant_trip_count_is_accepted():
    check_control_flow(_model([_loop()], [_const("M", np.int64(MAX_TRIPS))]))


def test_a_loop_of_2_62_trips_is_refused_naming_the_node():
    node = _loop()
    node.name = "spin"
    with pytest.raises(BadInputError, match="Loop spin: 4,611,686,018,427,387,904 trips"):
        check_control_flow(_model([node], [_const("M", np.int64(1 << 62))]))


def test_a_trip_count_from_a_constant_node_is_read():
    const = helper.make_node(
        "Constant", [], ["M"], value=numpy_helper.from_array(np.array(MAX_TRIPS + 1, np.int64))
    )
    with pytest.raises(BadInputError, match="4,097 trips"):
        check_control_flow(_model([const, _loop()]))


def test_a_trip_count_computed_at_run_time_or_absent_is_refused():
    shape = helper.make_node("Shape", ["x"], ["s"])
    prod = helper.make_node("ReduceProd", ["s"], ["M"], keepdims=0)
    with pytest.raises(BadInputError, match="computed at run time"):
        check_control_flow(_model([shape, prod, _loop()]))
    with pytest.raises(BadInputError, match="no trip count"):
        check_control_flow(_model([_loop(trips_name="")]))


def test_nested_loops_multiply():
    inner = helper.make_node("Loop", ["N", "c", "a"], ["a_out"], body=_pass_body())
    outer = _loop(inner=inner)
    outer.attribute[0].g.initializer.append(_const("N", np.int64(100)))
    with pytest.raises(BadInputError, match=r"100 trips \(x100 from enclosing loops\)"):
        check_control_flow(_model([outer], [_const("M", np.int64(100))]))
    outer.attribute[0].g.initializer[0].CopyFrom(_const("N", np.int64(40)))
    check_control_flow(_model([outer], [_const("M", np.int64(100))]))  # 4,000 in all


def test_if_runs_once_but_its_branches_are_checked():
    def branch(nodes, inits=()):
        return helper.make_graph(nodes, "b", [], [_vi("y")], initializer=list(inits))

    ok = helper.make_node(
        "If",
        ["cond"],
        ["y"],
        then_branch=branch([helper.make_node("Identity", ["x"], ["y"])]),
        else_branch=branch([helper.make_node("Identity", ["x"], ["y"])]),
    )
    check_control_flow(_model([ok]))
    spinning = branch([_loop()], [_const("M", np.int64(1 << 40))])
    bad = helper.make_node("If", ["cond"], ["y"], then_branch=spinning, else_branch=spinning)
    with pytest.raises(BadInputError, match="Loop"):
        check_control_flow(_model([bad]))


def test_a_loop_inside_a_local_function_is_checked():
    f = helper.make_function(
        "local", "Spin", ["x"], ["y"], [_loop(trips_name="M")], [helper.make_opsetid("", 17)]
    )
    call = helper.make_node("Spin", ["x"], ["y"], domain="local")
    with pytest.raises(BadInputError, match="Loop"):
        check_control_flow(_model([call], functions=[f]))


def test_scan_needs_a_static_length():
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["s"], ["s_out"]),
            helper.make_node("Identity", ["e"], ["o"]),
        ],
        "scan_body",
        [_vi("s", (4,)), _vi("e", (4,))],
        [_vi("s_out", (4,)), _vi("o", (4,))],
    )

    def model(dims):
        node = helper.make_node("Scan", ["init", "x"], ["final", "y"], body=body, num_scan_inputs=1)
        g = helper.make_graph(
            [node],
            "g",
            [_vi("x", dims)],
            [_vi("y", dims)],
            initializer=[numpy_helper.from_array(np.zeros(4, np.float32), "init")],
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m

    check_control_flow(model((16, 4)))
    with pytest.raises(BadInputError, match="no static length"):
        check_control_flow(model(("T", 4)))
    with pytest.raises(BadInputError, match="100,000 trips"):
        check_control_flow(model((100_000, 4)))


def test_a_graph_without_loops_is_not_even_shape_inferred(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("shape inference ran")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", boom)
    check_control_flow(_model([helper.make_node("Identity", ["x"], ["y"])]))

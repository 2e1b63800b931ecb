"""FLOPs counted from ONNX graphs, against counts worked out by hand for small graphs."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from genedge.bench.flops import count_flops, flops_by_batch  # noqa: E402


def _model(nodes, inputs, outputs, weights):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        [numpy_helper.from_array(w, n) for n, w in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


F = TensorProto.FLOAT


def test_conv_same_padding():
    # X (B,3,8,8), W (4,3,3,3), pad 1 -> Y (B,4,8,8): per image 4*8*8 outputs x 3*3*3 MACs
    m = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        [("x", F, ["B", 3, 8, 8])],
        [("y", F, ["B", 4, 8, 8])],
        {"w": np.zeros((4, 3, 3, 3), np.float32)},
    )
    assert count_flops(m, 1).total == 2 * 4 * 64 * 27 == 13824
    assert count_flops(m, 3).total == 3 * 13824  # the batch comes from the symbolic dim


def test_grouped_conv_without_padding():
    # X (1,4,5,5), 2 groups, W (6,2,3,3) -> Y (1,6,3,3): 54 outputs x 2*3*3 MACs
    m = _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], group=2)],
        [("x", F, ["B", 4, 5, 5])],
        [("y", F, ["B", 6, 3, 3])],
        {"w": np.zeros((6, 2, 3, 3), np.float32), "b": np.zeros(6, np.float32)},
    )
    assert count_flops(m, 1).total == 2 * 54 * 18 == 1944  # the bias is not counted


def test_conv_transpose_stride_2():
    # X (1,2,3,3), W (2,5,4,4), stride 2, pad 1 -> Y (1,5,6,6). Each of the 18 input values
    # is multiplied into 5*4*4 = 80 output positions (some fall in the padding and are
    # still computed): 1440 MACs
    m = _model(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])],
        [("x", F, ["B", 2, 3, 3])],
        [("y", F, ["B", 5, 6, 6])],
        {"w": np.zeros((2, 5, 4, 4), np.float32)},
    )
    f = count_flops(m, 1)
    assert f.total == 2 * 1440 and f.by_op == {"ConvTranspose": 2880} and f.uncounted == ()


def test_gemm_plain_and_transposed_and_matmul_with_batch_dims():
    m = _model(
        [
            helper.make_node("Gemm", ["x", "w1", "c"], ["h"]),  # (B,10) @ (10,7): 70 MACs
            helper.make_node("Relu", ["h"], ["r"]),  # not counted
            helper.make_node("Reshape", ["r", "shape"], ["r3"]),  # (B,1,7)
            helper.make_node("MatMul", ["r3", "w2"], ["y"]),  # (B,1,7) @ (7,5): 35 MACs
        ],
        [("x", F, ["B", 10])],
        [("y", F, ["B", 1, 5])],
        {
            "w1": np.zeros((10, 7), np.float32),
            "c": np.zeros(7, np.float32),
            "shape": np.array([-1, 1, 7], np.int64),
            "w2": np.zeros((7, 5), np.float32),
        },
    )
    f = count_flops(m, 4)
    assert f.by_op == {"Gemm": 2 * 4 * 70, "MatMul": 2 * 4 * 35} and f.total == 840
    t = _model(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transA=1)],  # x is (10, B): K = 10
        [("x", F, [10, "B"])],
        [("y", F, ["B", 7])],
        {"w": np.zeros((10, 7), np.float32)},
    )
    assert count_flops(t, 2).total == 2 * 2 * 7 * 10


def test_qdq_int8_conv_counts_like_fp32(tmp_path):
    """A Q/DQ graph: the Conv's weight is a DequantizeLinear output, its shape inferred."""
    m = _model(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"]),
            helper.make_node("DequantizeLinear", ["wq", "s", "zp"], ["wd"]),
            helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1]),
        ],
        [("x", F, ["B", 3, 8, 8])],
        [("y", F, ["B", 4, 8, 8])],
        {
            "wq": np.zeros((4, 3, 3, 3), np.int8),
            "s": np.array(0.1, np.float32),
            "zp": np.array(0, np.int8),
        },
    )
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    by_batch = flops_by_batch(path, [1, 16])
    assert by_batch[1].total == 13824 and by_batch[16].total == 16 * 13824


def test_unknown_shapes_are_listed_not_guessed():
    # a Conv whose weight comes in as a graph input of unknown rank: nothing to count
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv0")],
        "g",
        [
            helper.make_tensor_value_info("x", F, ["B", 3, 8, 8]),
            helper.make_tensor_value_info("w", F, None),
        ],
        [helper.make_tensor_value_info("y", F, None)],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    f = count_flops(m, 1)
    assert f.total == 0 and f.uncounted == ("conv0",)

"""ConvTranspose rewrites: exact against ONNX Runtime's own ConvTranspose, and int8 that fuses."""

from __future__ import annotations

import platform
from collections import Counter

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from genedge.export.rewrites.deconv import (  # noqa: E402
    axis_phases,
    dense_first_layers,
    phase_convs,
    private_qdq_scales,
)


def deconv_model(
    c_in: int,
    c_out: int,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    output_padding: tuple[int, int] = (0, 0),
    *,
    bias: bool = True,
    hw: tuple[int, int] = (5, 3),
    seed: int = 0,
):
    """x (B, Cin, H, W) -> ConvTranspose -> y, random weights."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((c_in, c_out, *kernel)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b"))
        inputs.append("b")
    node = helper.make_node(
        "ConvTranspose",
        inputs,
        ["y"],
        name="up",
        kernel_shape=list(kernel),
        strides=list(strides),
        pads=list(pads),
        output_padding=list(output_padding),
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", c_in, *hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def ops(model) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


CASES = [
    # kernel, stride, pads (top, left, bottom, right), output_padding
    ((4, 4), (2, 2), (1, 1, 1, 1), (0, 0)),  # DCGAN up-block: exactly 2x
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),  # "same" 3x3 up-sampling
    ((4, 4), (2, 2), (0, 0, 0, 0), (0, 0)),  # no pads: 2H + 2
    ((2, 2), (2, 2), (0, 0, 0, 0), (0, 0)),  # non-overlapping
    ((5, 5), (3, 3), (1, 1, 1, 1), (0, 0)),  # stride 3
    ((5, 3), (2, 2), (2, 1, 2, 1), (1, 1)),  # rectangular kernel
    ((4, 4), (2, 2), (2, 0, 0, 2), (0, 0)),  # asymmetric pads
]


@pytest.mark.parametrize("kernel,strides,pads,outpad", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_phase_convs_equal_conv_transpose(kernel, strides, pads, outpad, bias):
    model = deconv_model(3, 4, kernel, strides, pads, outpad, bias=bias)
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 3)).astype(np.float32)
    want = run(model, x)
    concats = phase_convs(model)
    assert concats == ["up/phases"]
    assert ops(model) == Counter({"Conv": strides[0] ** 2, "Concat": 1, "DepthToSpace": 1})
    assert {t.name for t in model.graph.initializer}.isdisjoint({"w", "b"})  # old weights gone
    got = run(model, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "kernel,strides,pads,outpad,why",
    [
        ((1, 1), (2, 2), (0, 0, 0, 0), (0, 0), "a phase reads no tap"),
        ((4, 4), (2, 2), (1, 1, 0, 0), (0, 0), "output not a whole number of phases"),
        ((4, 4), (2, 1), (1, 0, 1, 0), (0, 0), "unequal strides: no single DepthToSpace"),
        ((4, 4), (1, 1), (1, 1, 1, 1), (0, 0), "stride 1 is a plain convolution already"),
        ((3, 3), (2, 2), (3, 3, 3, 3), (0, 0), "would need a crop"),
    ],
)
def test_phase_convs_leave_what_they_cannot_express(kernel, strides, pads, outpad, why):
    model = deconv_model(2, 2, kernel, strides, pads, outpad, hw=(6, 6))
    x = np.random.default_rng(2).standard_normal((1, 2, 6, 6)).astype(np.float32)
    want = run(model, x)
    assert phase_convs(model) == [], why
    assert ops(model) == Counter({"ConvTranspose": 1})
    np.testing.assert_array_equal(run(model, x), want)


def test_phase_convs_skip_keeps_named_node():
    model = deconv_model(2, 2, (4, 4), (2, 2), (1, 1, 1, 1))
    assert phase_convs(model, skip=("up",)) == []
    assert ops(model) == Counter({"ConvTranspose": 1})


def test_axis_phases_dcgan_block():
    # output 2a reads inputs a-1 (tap 3) and a (tap 1); output 2a+1 reads a (tap 2), a+1 (tap 0)
    phases = axis_phases(2, 4, 1, 1, 0)
    assert [(p.taps, p.pad_begin, p.pad_end) for p in phases] == [((3, 1), 1, 0), ((2, 0), 0, 1)]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kernel", [(4, 4), (7, 5)])
def test_dense_first_layer_equals_conv_transpose(bias, kernel):
    model = deconv_model(6, 5, kernel, (1, 1), (0, 0, 0, 0), bias=bias, hw=(1, 1))
    x = np.random.default_rng(3).standard_normal((3, 6, 1, 1)).astype(np.float32)
    want = run(model, x)
    assert dense_first_layers(model) == 1
    assert ops(model) == Counter({"Reshape": 2, "Gemm": 1})
    np.testing.assert_allclose(run(model, x), want, rtol=1e-5, atol=1e-5)


def test_dense_first_layer_needs_a_1x1_input_without_pads():
    for hw, pads in (((2, 2), (0, 0, 0, 0)), ((1, 1), (1, 1, 1, 1))):
        model = deconv_model(2, 3, (4, 4), (1, 1), pads, hw=hw)
        assert dense_first_layers(model) == 0
        assert ops(model) == Counter({"ConvTranspose": 1})


def dcgan(seed: int = 0):
    """z (B, 8) -> 1x1 -> ConvTranspose 4x4 -> Relu -> up x2 -> Relu -> up x2 -> Tanh: (B, 1, 16, 16)."""
    rng = np.random.default_rng(seed)
    shapes = {"w0": (8, 16, 4, 4), "w1": (16, 8, 4, 4), "w2": (8, 1, 4, 4)}
    inits = [
        numpy_helper.from_array((rng.standard_normal(s) * 0.2).astype(np.float32), n)
        for n, s in shapes.items()
    ]
    inits.append(numpy_helper.from_array(np.array([0, 8, 1, 1], np.int64), "shape"))
    up = {"kernel_shape": [4, 4], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Reshape", ["z", "shape"], ["z4"], name="to4d"),
        helper.make_node("ConvTranspose", ["z4", "w0"], ["h0"], name="up0", kernel_shape=[4, 4]),
        helper.make_node("Relu", ["h0"], ["a0"], name="relu0"),
        helper.make_node("ConvTranspose", ["a0", "w1"], ["h1"], name="up1", **up),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("ConvTranspose", ["a1", "w2"], ["h2"], name="up2", **up),
        helper.make_node("Tanh", ["h2"], ["image"], name="tanh"),
    ]
    graph = helper.make_graph(
        nodes,
        "dcgan",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", 8])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["B", 1, 16, 16])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def optimized_ops(path) -> Counter:
    """The ops ONNX Runtime CPU actually runs after its graph optimizations."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.optimized_model_filepath = str(path.with_suffix(".opt.onnx"))
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return ops(onnx.load(so.optimized_model_filepath))


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="which int8 kernels ONNX Runtime fuses is architecture-specific",
)
def test_int8_dcgan_runs_int8_kernels_on_onnx_runtime(tmp_path):
    from genedge.export.stages.int8 import int8_from_onnx

    model = dcgan()
    assert dense_first_layers(model) == 1
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(model, fp32)
    rng = np.random.default_rng(0)
    feeds = [{"z": rng.standard_normal((16, 8)).astype(np.float32)} for _ in range(4)]
    out = int8_from_onnx(fp32, tmp_path / "int8.onnx", feeds)
    ran = optimized_ops(out)
    # every deconvolution phase is an int8 QLinearConv, the first layer an int8 product
    assert ran["QLinearConv"] == 8 and ran["Conv"] == 0 and ran["ConvTranspose"] == 0, ran
    assert ran["QGemm"] + ran["QLinearMatMul"] == 1, ran
    # and it still draws the same pictures
    so = ort.SessionOptions()
    so.log_severity_level = 3
    z = {"z": rng.standard_normal((8, 8)).astype(np.float32)}
    a = ort.InferenceSession(str(fp32), so, providers=["CPUExecutionProvider"]).run(None, z)[0]
    b = ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"]).run(None, z)[0]
    assert np.abs(a - b).max() < 0.1


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="which int8 kernels ONNX Runtime fuses is architecture-specific",
)
def test_shared_qdq_scales_would_leave_phase_convs_in_float(tmp_path):
    """Why private_qdq_scales exists: with the scales shared again, ORT runs float Convs."""
    from genedge.export.stages.int8 import int8_from_onnx

    fp32 = tmp_path / "fp32.onnx"
    onnx.save(dcgan(), fp32)
    rng = np.random.default_rng(0)
    feeds = [{"z": rng.standard_normal((16, 8)).astype(np.float32)} for _ in range(2)]
    q = onnx.load(int8_from_onnx(fp32, tmp_path / "int8.onnx", feeds))
    assert private_qdq_scales(q) == 0  # already private: nothing left to copy
    stored = {t.name for t in q.graph.initializer}
    first: dict[str, list[str]] = {}
    for n in q.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] not in stored:
            scales = first.setdefault(n.input[0], list(n.input[1:3]))
            for reader in q.graph.node:
                if reader.op_type == "DequantizeLinear" and reader.input[0] == n.output[0]:
                    reader.input[1], reader.input[2] = scales
            n.input[1], n.input[2] = scales
    shared = tmp_path / "shared.onnx"
    onnx.save(q, shared)
    assert optimized_ops(shared)["Conv"] >= 4

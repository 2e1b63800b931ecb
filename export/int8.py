"""INT8: static Q/DQ quantization with onnxruntime, symmetric (zero-point 0), per-channel weights.

The same ``model.int8.onnx`` runs on ONNX Runtime CPU (QLinearConv kernels after Q/DQ
fusion) and builds in TensorRT with explicit quantization. Only compute ops are quantized
(Conv, Gemm, MatMul): the fused post-processing (``(x+1)*127.5``, round, clamp) stays exact.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from .calibration import Feed, feeds_reader

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # mixed-precision search candidates
# Relu and DepthToSpace too, so the GAN's sub-pixel blocks stay int8 from conv to conv
# (a float island between two QLinearConvs costs a DequantizeLinear + QuantizeLinear pair).
QUANT_OPS = (*WEIGHTED_OPS, "Relu", "DepthToSpace")
METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def quantizable_nodes(model) -> list[str]:
    """Names of the weighted nodes (conv, gemm, matmul) in graph order: the recipe search candidates."""
    return [n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS]


def quantized_weight_nodes(model) -> list[str]:
    """Names of the weighted nodes (Conv, ConvTranspose, Gemm, MatMul) that read an int8 weight.

    In a Q/DQ graph a quantized weight is a stored initializer fed through
    ``DequantizeLinear``; a weighted node none of whose inputs comes that way runs in
    float, whatever the file is called.
    """
    stored = {t.name for t in model.graph.initializer}
    dequantized = {
        n.output[0]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input and n.input[0] in stored
    }
    return [
        n.name or f"{n.op_type}#{i}"
        for i, n in enumerate(model.graph.node)
        if n.op_type in WEIGHTED_OPS and any(x in dequantized for x in n.input)
    ]


def float_neighbourhood(model, keep: tuple[str, ...]) -> tuple[str, ...]:
    """``keep`` plus the weightless quantized ops (Relu, DepthToSpace) feeding a kept node.

    Keeping a conv "in float" must keep its input activation float too; otherwise the
    Relu -> DepthToSpace chain before it would still be quantized and the recipe would not
    do what the manifest says.
    """
    producers = {out: n for n in model.graph.node for out in n.output}
    names = {n.name: n for n in model.graph.node}
    kept, todo = set(keep), [names[k] for k in keep if k in names]
    while todo:
        for i in todo.pop().input:
            p = producers.get(i)
            if (
                p is not None
                and p.op_type in QUANT_OPS
                and p.op_type not in WEIGHTED_OPS
                and p.name not in kept
            ):
                kept.add(p.name)
                todo.append(p)
    return tuple(sorted(kept))


def int8_from_onnx(
    fp32_path: str | Path,
    out_path: str | Path,
    feeds: list[Feed],
    *,
    method: str = "minmax",
    keep_float: tuple[str, ...] = (),
) -> Path:
    """Calibrate on ``feeds`` and write a Q/DQ int8 ONNX to ``out_path``.

    Activations and weights are QInt8 with zero-point 0; weights per output channel; biases
    stay float (no int32 Q/DQ, which TensorRT cannot parse).
    ``keep_float`` names nodes left in float (the mixed-precision recipe). fp32 I/O.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # QuantizeBias=False: TensorRT rejects int32 DequantizeLinear inputs (bias), and ORT CPU
    # still fuses Q/DQ Conv with a float bias into QLinearConv (it quantizes the bias itself).
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    with tempfile.TemporaryDirectory(prefix="genedge-int8-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(
            str(fp32_path), str(pre), skip_symbolic_shape=True, skip_optimization=True
        )
        quantize_static(
            str(pre),
            str(out_path),
            feeds_reader(feeds),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=list(QUANT_OPS),
            nodes_to_exclude=list(float_neighbourhood(onnx.load(str(pre)), keep_float)),
            calibrate_method=getattr(CalibrationMethod, METHODS[method]),
            extra_options=extra,
            calibration_providers=["CPUExecutionProvider"],
        )
    return Path(out_path)

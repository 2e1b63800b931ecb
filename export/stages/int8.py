"""INT8: static Q/DQ quantization with onnxruntime, symmetric (zero-point 0), per-channel weights.

The same ``model.int8.onnx`` runs on ONNX Runtime CPU (QLinearConv kernels after Q/DQ
fusion), on OpenVINO, and builds in TensorRT with explicit quantization. Only compute ops are
quantized (Conv, Gemm, MatMul): the fused post-processing (``(x+1)*127.5``, round, clamp)
stays exact. Strided ConvTranspose layers are first rewritten as per-phase convolutions
(``deconv.phase_convs``), which have int8 kernels where ConvTranspose has none.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from genedge.export.rewrites.deconv import phase_convs, private_qdq_scales
from genedge.export.stages.calibration import Feed, feeds_reader
from genedge.lazy import lazy_import

onnx = lazy_import("onnx")
quantization = lazy_import("onnxruntime.quantization")
quant_shape_inference = lazy_import("onnxruntime.quantization.shape_inference")

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # mixed-precision search candidates
# Relu and DepthToSpace too, so the GAN's sub-pixel blocks stay int8 from conv to conv
# (a float island between two QLinearConvs costs a DequantizeLinear + QuantizeLinear pair);
# Concat for the phase convs' interleave (``deconv.phase_convs``), the only Concat quantized.
QUANT_OPS = (*WEIGHTED_OPS, "Relu", "DepthToSpace", "Concat")
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
    """``keep`` plus the weightless quantized ops (Relu, DepthToSpace, Concat) feeding a kept node.

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

    Activations and weights are QInt8 with zero-point 0 (weights in 7-bit range); weights per
    output channel; biases stay float (no int32 Q/DQ, which TensorRT cannot parse).
    ``keep_float`` names nodes left in float (the mixed-precision recipe). fp32 I/O.
    """
    # QuantizeBias=False: TensorRT rejects int32 DequantizeLinear inputs (bias), and ORT CPU
    # still fuses Q/DQ Conv with a float bias into QLinearConv (it quantizes the bias itself).
    # DedicatedQDQPair: one Q/DQ pair per reader of a tensor (the phase convs share an input),
    # which ORT needs to fuse each reader into its own int8 kernel.
    extra = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "DedicatedQDQPair": True,
    }
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    with tempfile.TemporaryDirectory(prefix="genedge-int8-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phased, pre = Path(tmp) / "phased.onnx", Path(tmp) / "pre.onnx"
        model = onnx.load(str(fp32_path))
        phase_concats = set(phase_convs(model, skip=keep_float))
        onnx.save(model, str(phased))
        quant_shape_inference.quant_pre_process(
            str(phased), str(pre), skip_symbolic_shape=True, skip_optimization=True
        )
        pre_model = onnx.load(str(pre))
        # only the phase interleaves' Concats are quantized: they join int8 convs
        other_concats = [
            n.name
            for n in pre_model.graph.node
            if n.op_type == "Concat" and n.name not in phase_concats
        ]
        quantization.quantize_static(
            str(pre),
            str(out_path),
            feeds_reader(feeds),
            quant_format=quantization.QuantFormat.QDQ,
            activation_type=quantization.QuantType.QInt8,
            weight_type=quantization.QuantType.QInt8,
            per_channel=True,
            # 7-bit weights: x86 CPUs without VNNI multiply u8 x s8 pairs into saturating int16
            # (vpmaddubsw); full-range weights overflow there and wreck pictures, so a file
            # gated on one machine would draw worse ones on another
            reduce_range=True,
            op_types_to_quantize=list(QUANT_OPS),
            nodes_to_exclude=[*float_neighbourhood(pre_model, keep_float), *other_concats],
            calibrate_method=getattr(quantization.CalibrationMethod, METHODS[method]),
            extra_options=extra,
            calibration_providers=["CPUExecutionProvider"],
        )
        quantized = onnx.load(str(out_path))
        if private_qdq_scales(quantized):
            onnx.save(quantized, str(out_path))
    return Path(out_path)

"""FP16 conversion with fp32 I/O and an overflow guard (DESIGN.md s.5).

The guard runs the fp32 graph on calibration inputs with every intermediate float tensor
exposed, and keeps in fp32 each node whose activations leave the fp16 range (with a
margin) or are not finite: the VAE-decoder NaN problem. ``fp16_from_onnx`` can be told
to keep more nodes when the converted graph still loses too much (see ``bundle``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from genedge.export.rewrites.unread_outputs import blank_outputs, name_blank_outputs
from genedge.export.stages.calibration import Feed
from genedge.lazy import lazy_import
from genedge.runtime.ort_backend import ORT_LOG_SEVERITY

onnx = lazy_import("onnx")
numpy_helper = lazy_import("onnx.numpy_helper")
ort = lazy_import("onnxruntime")
float16 = lazy_import("onnxconverter_common.float16")

FP16_MAX = 65504.0
DEFAULT_MARGIN = 4.0  # block a node whose |activation| exceeds FP16_MAX / margin
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "GRU", "LSTM")
# ONNX Runtime CPU (1.32) has no fp16 RNN kernels and crashes (SIGSEGV) loading an fp16 LSTM
# instead of failing cleanly, so recurrent cells always stay fp32 (recorded in kept_float).
FP32_ONLY_OPS = ("GRU", "LSTM", "RNN")


def name_nodes(model) -> None:
    """Give every unnamed node a stable name (block and exclude lists refer to names)."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def activation_ranges(model, feeds: list[Feed]) -> dict[str, float]:
    """Max |value| of every float tensor any node produces, over ``feeds`` (NaN/Inf -> inf)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    floats = {
        vi.name
        for vi in probe.graph.value_info
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }
    for node in probe.graph.node:
        for out in node.output:
            if out in floats and out not in known:
                probe.graph.output.append(
                    onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)
                )
                known.add(out)
    so = ort.SessionOptions()
    so.log_severity_level = ORT_LOG_SEVERITY
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    ranges: dict[str, float] = {}
    for feed in feeds:
        for name, arr in feed.items():
            if arr.dtype.kind == "f":
                ranges[name] = max(ranges.get(name, 0.0), float(np.max(np.abs(arr), initial=0.0)))
        for name, arr in zip(names, sess.run(None, feed), strict=True):
            if arr.dtype.kind != "f":
                continue
            m = float(np.max(np.abs(arr), initial=0.0)) if np.isfinite(arr).all() else float("inf")
            ranges[name] = max(ranges.get(name, 0.0), m)
    return ranges


def overflow_nodes(model, ranges: dict[str, float], *, margin: float = DEFAULT_MARGIN) -> list[str]:
    """Names of nodes reading or writing a tensor beyond ``FP16_MAX / margin`` (or non-finite).

    Inputs count too: a consumer converted to fp16 would cast the huge value to inf.
    """
    limit = FP16_MAX / margin
    ranges = dict(ranges)
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f" and a.size:
            ranges[t.name] = float(np.max(np.abs(a))) if np.isfinite(a).all() else float("inf")
    return [
        n.name
        for n in model.graph.node
        if any(ranges.get(t, 0.0) > limit for t in list(n.input) + list(n.output))
    ]


def largest_compute_nodes(model, ranges: dict[str, float], exclude: set[str], k: int) -> list[str]:
    """The ``k`` compute nodes (Conv/Gemm/MatMul/RNN) with the largest activations, not in ``exclude``."""
    cands = [
        (max((ranges.get(o, 0.0) for o in n.output), default=0.0), n.name)
        for n in model.graph.node
        if n.op_type in COMPUTE_OPS and n.name not in exclude
    ]
    return [name for _, name in sorted(cands, reverse=True)[:k]]


def fp16_from_onnx(
    model, feeds: list[Feed], *, margin: float = DEFAULT_MARGIN, keep_float: tuple[str, ...] = ()
) -> tuple[Any, list[str], dict[str, float]]:
    """fp32 ModelProto -> (fp16 ModelProto with fp32 I/O, nodes kept fp32, activation ranges).

    I/O dtypes are unchanged (float32 stays float32; uint8/int64 untouched).
    """
    name_nodes(model)
    ranges = activation_ranges(model, feeds)
    rnn = {n.name for n in model.graph.node if n.op_type in FP32_ONLY_OPS}
    if rnn:  # ORT 1.32 also segfaults creating a session with an fp16 Transpose beside an fp32 LSTM
        rnn |= {n.name for n in model.graph.node if n.op_type == "Transpose"}
    blocked = sorted(set(overflow_nodes(model, ranges, margin=margin)) | set(keep_float) | rnn)
    casts = [
        n.name for n in model.graph.node if n.op_type == "Cast"
    ]  # the converter mistypes Cast outputs

    src = onnx.ModelProto()
    src.CopyFrom(model)
    src.graph.ClearField("value_info")  # stale float32 value_info confuses the converter's casts
    unread = name_blank_outputs(src)  # the converter sorts nodes by output name, "" included
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp16 = float16.convert_float_to_float16(
            src, keep_io_types=True, node_block_list=blocked + casts
        )
    blank_outputs(fp16, unread)
    restore_output_types(fp16, model)
    drop_cast_round_trips(fp16)
    return onnx.shape_inference.infer_shapes(fp16), blocked, ranges


def restore_output_types(model, ref) -> int:
    """Cast back each graph output whose dtype differs from ``ref``'s; return how many.

    ``keep_io_types`` does not cover a blocked node that writes a graph output: the converter
    retypes that output fp16 (a single-layer RNN's ``h_out``), so a caller feeding the state
    back as fp32 fails. The fp16 tensor is renamed and a Cast restores the declared name.
    """
    want = {o.name: o.type.tensor_type.elem_type for o in ref.graph.output}
    fixed = 0
    for out in model.graph.output:
        if out.type.tensor_type.elem_type == want[out.name]:
            continue
        src = f"{out.name}_fp16"
        for n in model.graph.node:
            n.input[:] = [src if i == out.name else i for i in n.input]
            n.output[:] = [src if o == out.name else o for o in n.output]
        model.graph.node.append(
            onnx.helper.make_node(
                "Cast", [src], [out.name], name=f"{out.name}_cast_back", to=want[out.name]
            )
        )
        out.type.tensor_type.elem_type = want[out.name]
        fixed += 1
    return fixed


def drop_cast_round_trips(model) -> int:
    """Rewire ``Cast(fp16) -> Cast(fp32)`` pairs to the original fp32 tensor; return how many.

    The converter casts every blocked node's output to fp16 even when the consumer is also
    blocked; that round trip would overflow exactly the values the guard kept in fp32.
    """
    f16, f32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    to = {
        n.name: next((a.i for a in n.attribute if a.name == "to"), None)
        for n in model.graph.node
        if n.op_type == "Cast"
    }
    users: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    outputs = {o.name for o in model.graph.output}
    dropped = 0
    for c1 in list(model.graph.node):
        if c1.op_type != "Cast" or to[c1.name] != f16 or c1.output[0] in outputs:
            continue
        consumers = users.get(c1.output[0], [])
        if not consumers or any(c.op_type != "Cast" or to.get(c.name) != f32 for c in consumers):
            continue
        for c2 in consumers:  # Cast(fp32) of the round trip becomes Identity of the fp32 source
            c2.op_type, c2.input[0] = "Identity", c1.input[0]
            del c2.attribute[:]
        model.graph.node.remove(c1)
        dropped += 1
    return dropped

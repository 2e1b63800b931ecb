"""bf16 quality without a bf16 CPU: the fp32 graph with every float tensor rounded to bf16.

OpenVINO's bf16 inference precision (AVX-512 BF16, AMX) stores weights and activations in
bf16 and accumulates products in fp32. This graph does the same rounding on any CPU: every
float initializer is rounded to the nearest bf16 value (ties to even) in place, and every
float tensor a node produces, and every float graph input, passes through
``Cast(to=BFLOAT16) -> Cast(to=FLOAT)``. Arithmetic inside each op stays fp32, as on the
real hardware. It rounds more than OpenVINO does (OpenVINO keeps some ops, e.g. the output
conversion, in f32), so a gate passed here is passed on the hardware; the record says
``"method": "emulated"`` so nobody mistakes it for a run on one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genedge.lazy import lazy_import

onnx = lazy_import("onnx")
helper = lazy_import("onnx.helper")
numpy_helper = lazy_import("onnx.numpy_helper")


def bf16_round(a: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bf16 (ties to even); NaN and inf kept. float32 out."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) & 0xFFFF0000).astype(np.uint32)
    out = rounded.view(np.float32)
    return np.where(np.isnan(a), a, out).astype(np.float32)


def _float_tensors(model: Any) -> set[str]:
    """Names of the float32 tensors nodes produce or the graph takes in (from shape inference)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {v.name for v in values if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}


def bf16_emulation(model: Any) -> Any:
    """A copy of ``model`` that rounds every float weight and tensor to bf16 (see the module)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    floats = _float_tensors(model)
    for i, t in enumerate(g.initializer):
        if t.data_type == onnx.TensorProto.FLOAT:
            g.initializer[i].CopyFrom(
                numpy_helper.from_array(bf16_round(numpy_helper.to_array(t)), t.name)
            )
    stored = {t.name for t in g.initializer}

    def rounded(name: str) -> tuple[list[Any], str]:
        """Nodes rounding tensor ``name`` to bf16, and the rounded tensor's name."""
        low, back = f"{name}/bf16", f"{name}/bf16_f32"
        return [
            helper.make_node(
                "Cast", [name], [low], name=f"{name}/to_bf16", to=onnx.TensorProto.BFLOAT16
            ),
            helper.make_node(
                "Cast", [low], [back], name=f"{name}/from_bf16", to=onnx.TensorProto.FLOAT
            ),
        ], back

    renamed: dict[str, str] = {}
    nodes: list[Any] = []
    for inp in g.input:
        if inp.name in floats and inp.name not in stored:
            casts, renamed[inp.name] = rounded(inp.name)
            nodes.extend(casts)
    outputs = {o.name for o in g.output}
    for node in g.node:
        for k, name in enumerate(node.input):
            node.input[k] = renamed.get(name, name)
        nodes.append(node)
        for name in node.output:
            if name in floats and name not in outputs:
                casts, renamed[name] = rounded(name)
                nodes.extend(casts)
    del g.node[:]
    g.node.extend(nodes)
    return model

"""FLOPs of one call of an ONNX graph, counted from its operators and inferred shapes.

Counted: the multiply-accumulates (MACs) of ``Conv``, ``ConvTranspose``, ``Gemm``,
``MatMul`` and their quantized forms ``QLinearConv``/``QLinearMatMul``; one MAC is two
FLOPs. Bias additions, activations, normalisation and data movement are left out: they
are a few percent of a generator's work and no peak rate covers them. Subgraphs
(``If``/``Loop`` bodies) are not entered. Shapes come from ``onnx.shape_inference`` with
every symbolic dimension of the graph's inputs and outputs set to the batch size::

    Conv           MACs = numel(Y) * prod(W.shape[1:])     W: (M, C/g, *k), Y: (N, M, *out)
    ConvTranspose  MACs = numel(X) * prod(W.shape[1:])     W: (C, M/g, *k): each input
                                                           element feeds M/g * prod(k) outputs
    Gemm           MACs = M * N * K                        Y: (M, N); K from A (transA)
    MatMul         MACs = numel(Y) * K                     K = A.shape[-1]

``onnx`` (the ``export`` extra) is imported at its first use, through ``genedge.lazy``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genedge.lazy import lazy_import

onnx = lazy_import("onnx")

# op type -> (index of the left operand / data input, index of the weight / right operand)
OPERANDS = {
    "Conv": (0, 1),
    "ConvTranspose": (0, 1),
    "Gemm": (0, 1),
    "MatMul": (0, 1),
    "QLinearConv": (0, 3),
    "QLinearMatMul": (0, 3),
}


@dataclass(frozen=True)
class GraphFlops:
    """FLOPs of one call at one batch size, per operator type, and what could not be counted."""

    batch: int
    total: int
    by_op: dict[str, int] = field(default_factory=dict)
    uncounted: tuple[str, ...] = ()  # names of counted op types whose shapes were unknown


def _shape_of(value_info: Any) -> tuple[int, ...] | None:
    """Static dims of a ValueInfoProto; None when the rank or a dimension is unknown."""
    t = value_info.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in t.tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def static_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Every tensor name with a fully known shape: initializers, inputs, outputs, value_info."""
    g = model.graph
    shapes = {init.name: tuple(int(d) for d in init.dims) for init in g.initializer}
    for vi in (*g.input, *g.output, *g.value_info):
        shape = _shape_of(vi)
        if shape is not None:
            shapes.setdefault(vi.name, shape)
    return shapes


def with_batch(model: Any, batch: int) -> Any:
    """A copy of ``model`` whose graph inputs and outputs have every symbolic dim set to
    ``batch``, with shapes inferred through the graph."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in (*m.graph.input, *m.graph.output):
        if not vi.type.HasField("tensor_type"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = batch  # replaces dim_param (a oneof)
    del m.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(m, data_prop=True)


def node_macs(node: Any, shapes: dict[str, tuple[int, ...]]) -> int | None:
    """Multiply-accumulates of one node (None when a needed shape is unknown)."""
    a_i, w_i = OPERANDS[node.op_type]
    names = list(node.input)
    if len(names) <= w_i or not node.output:
        return None
    a, w, y = shapes.get(names[a_i]), shapes.get(names[w_i]), shapes.get(node.output[0])
    op = node.op_type
    if op in ("Conv", "QLinearConv"):
        return None if y is None or w is None else math.prod(y) * math.prod(w[1:])
    if op == "ConvTranspose":
        return None if a is None or w is None else math.prod(a) * math.prod(w[1:])
    if op == "Gemm":
        if a is None or y is None or len(a) != 2:
            return None
        trans_a = any(att.name == "transA" and att.i for att in node.attribute)
        return math.prod(y) * (a[0] if trans_a else a[1])
    # MatMul / QLinearMatMul (numpy semantics: a 1-D left operand is a row vector)
    return None if a is None or y is None or not a else math.prod(y) * a[-1]


def count_flops(model: Any, batch: int) -> GraphFlops:
    """FLOPs of one call of the ONNX ``model`` (a ModelProto) at ``batch``."""
    inferred = with_batch(model, batch)
    shapes = static_shapes(inferred)
    by_op: dict[str, int] = {}
    uncounted: list[str] = []
    for node in inferred.graph.node:
        if node.op_type not in OPERANDS or node.domain not in ("", "ai.onnx"):
            continue
        macs = node_macs(node, shapes)
        if macs is None:
            uncounted.append(node.name or node.op_type)
            continue
        by_op[node.op_type] = by_op.get(node.op_type, 0) + 2 * macs
    return GraphFlops(batch, sum(by_op.values()), by_op, tuple(uncounted))


def flops_by_batch(path: str | Path, batches: Sequence[int]) -> dict[int, GraphFlops]:
    """FLOPs of the ONNX file at ``path`` for each batch size (weights' data not loaded)."""
    model = onnx.load(str(path), load_external_data=False)
    return {b: count_flops(model, b) for b in batches}

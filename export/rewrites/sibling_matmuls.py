"""Graph rewrite: MatMuls that read one activation with constant weights become one MatMul.

``MatMul(x, W1)``, ``MatMul(x, W2)``, ... (each ``W`` a constant (K, N_i) initializer) ->
``MatMul(x, [W1 W2 ...])`` and a ``Split`` into the original outputs, on the last axis.
Same math: every output column is the same dot product over K. A Llama MLP's gate and up
projections are such a pair. Before weight-only quantization this makes one
``MatMulNBits`` of twice the width instead of two: the activation is quantized once and the
thread pool dispatched once, which on ONNX Runtime CPU cut a 27M Llama's int4 decode step
by a few percent (docs/text.md). For fp32 the wider MatMul measured no faster, so only the
weight-only precisions apply it (``export/stages/text_precision.py``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from genedge.lazy import lazy_import

onnx = lazy_import("onnx")
numpy_helper = lazy_import("onnx.numpy_helper")

SPLIT_SIZES_OPSET = 13  # Split takes its sizes as an input from opset 13


def pack_sibling_matmuls(model: Any) -> int:
    """Rewrite ``model`` in place; returns how many MatMuls were folded into others."""
    graph = model.graph
    opset = {o.domain: o.version for o in model.opset_import}.get("", 0)
    if opset < SPLIT_SIZES_OPSET:
        return 0
    inits = {t.name: t for t in graph.initializer}
    readers: dict[str, int] = defaultdict(int)
    for n in graph.node:
        for i in n.input:
            readers[i] += 1
    groups: dict[str, list[Any]] = defaultdict(list)
    for n in graph.node:
        w = inits.get(n.input[1]) if n.op_type == "MatMul" and len(n.input) == 2 else None
        if w is not None and len(w.dims) == 2 and n.domain in ("", "ai.onnx"):
            groups[n.input[0]].append(n)
    packed: dict[int, list[Any]] = {}  # id(first node of a group) -> its replacement
    gone: set[int] = set()
    for x, nodes in groups.items():
        weights = [inits[n.input[1]] for n in nodes]
        if len(nodes) < 2 or len({(w.dims[0], w.data_type) for w in weights}) != 1:
            continue
        if any(readers[w.name] > 1 for w in weights):  # a weight read elsewhere stays whole
            continue
        arrays = [numpy_helper.to_array(w) for w in weights]
        name = f"{nodes[0].name or nodes[0].output[0]}.packed"
        widths = np.array([a.shape[1] for a in arrays], np.int64)
        graph.initializer.append(numpy_helper.from_array(np.concatenate(arrays, 1), f"{name}.W"))
        graph.initializer.append(numpy_helper.from_array(widths, f"{name}.widths"))
        y = f"{name}.out"
        packed[id(nodes[0])] = [
            onnx.helper.make_node("MatMul", [x, f"{name}.W"], [y], name=name),
            onnx.helper.make_node(
                "Split",
                [y, f"{name}.widths"],
                [n.output[0] for n in nodes],
                name=f"{name}.split",
                axis=-1,
            ),
        ]
        gone.update(id(n) for n in nodes[1:])
    if not packed:
        return 0
    rest = []
    for n in graph.node:
        if id(n) in packed:
            rest += packed[id(n)]
        elif id(n) not in gone:
            rest.append(n)
    del graph.node[:]
    graph.node.extend(rest)
    _drop_unread(graph)
    return len(gone)


def _drop_unread(graph: Any) -> None:
    """Remove initializers no node reads any more (the weights that were concatenated)."""
    read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(keep)

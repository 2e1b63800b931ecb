"""Graph rewrite: an RMSNorm whose scale was folded away gets its ``Mul`` by ones back.

A traced RMSNorm is ``x / Sqrt(ReduceMean(Pow(x, 2)) + eps) * w``; ONNX Runtime fuses it into
one ``SimplifiedLayerNormalization`` node when it loads the graph, but only with the ``Mul``
by ``w``. A model whose norm weights are all ones (freshly initialised, never trained) loses
that ``Mul`` to onnxslim's constant folding, and the norm then runs as five small nodes per
call. Multiplying by ones again is the same math and lets the fusion match.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genedge.export.checks.control_flow import known_shapes
from genedge.lazy import lazy_import

onnx = lazy_import("onnx")
numpy_helper = lazy_import("onnx.numpy_helper")


def restore_rms_scales(model: Any) -> int:
    """Rewrite shape-inferred ``model`` in place; returns how many norms got a scale."""
    g = model.graph
    made = {o: n for n in g.node for o in n.output}
    readers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    inits = {t.name for t in g.initializer}
    width = {k: d[-1] for k, d in known_shapes(g).items() if d and d[-1]}
    nodes, done = [], 0
    for n in g.node:
        nodes.append(n)
        x = n.input[0] if n.op_type == "Div" else None
        if x is None or not _is_rms(made, n.input[1], x) or width.get(x) is None:
            continue
        after = readers.get(n.output[0], [])
        if any(r.op_type == "Mul" and set(r.input) & inits for r in after):
            continue  # scaled: the fusion already matches
        y, scale = n.output[0], f"{n.name or n.output[0]}.scale"
        n.output[0] = f"{y}.unscaled"
        g.initializer.append(numpy_helper.from_array(np.ones(width[x], np.float32), scale))
        nodes.append(onnx.helper.make_node("Mul", [n.output[0], scale], [y], name=scale))
        done += 1
    if done:
        del g.node[:]
        g.node.extend(nodes)
    return done


def _is_rms(made: dict[str, Any], denom: str, x: str) -> bool:
    """Whether ``denom`` is ``Sqrt(Add(ReduceMean(Pow(x, .)), .))`` (ORT's fusion checks the
    exponent and axis; a ``Mul`` by ones is the identity wherever it lands)."""
    chain = []
    name = denom
    for op in ("Sqrt", "Add", "ReduceMean", "Pow"):
        n = made.get(name)
        if n is None or n.op_type != op:
            return False
        chain.append(n)
        name = n.input[0]
    return chain[-1].input[0] == x

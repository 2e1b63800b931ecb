"""Graph rewrite: an optional ``logits_from`` input that skips the head for earlier positions.

A prompt of S tokens needs the logits of its last position only, but the decoder's head
(the ``MatMul`` by the vocabulary matrix) computes all S rows: for a 27M Llama with a 4096-token
vocabulary that is 6-16% of a prefill's time. Perplexity needs every row, so the graph keeps
them by default:

    h (B, S, C) -> Slice(h, starts=logits_from, axis 1) -> MatMul(head) -> logits

``logits_from`` is an int64 (1,) initializer that is also a graph input (an ONNX Runtime
"overridable initializer"): not fed, it is [0] and the logits are (B, S, V) as before; fed
[-1], they are the last position's (B, 1, V). ONNX Runtime never constant-folds such an
initializer. Added after onnxslim, which would fold it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genedge.export.checks.control_flow import known_shapes
from genedge.lazy import lazy_import
from genedge.manifest_model import LOGITS_FROM

onnx = lazy_import("onnx")
numpy_helper = lazy_import("onnx.numpy_helper")

_END = np.iinfo(np.int64).max


def add_logits_from(model: Any, output: str = "logits") -> bool:
    """Rewrite ``model`` in place when ``output`` is a ``MatMul`` of a 3-D activation (through
    ``Cast`` nodes at most); returns whether it was rewritten."""
    g = model.graph
    made = {o: n for n in g.node for o in n.output}
    names = {t.name for t in g.initializer} | {i.name for i in g.input}
    if LOGITS_FROM in names or model.ir_version < 4:
        return False
    head = made.get(output)
    while head is not None and head.op_type == "Cast":
        head = made.get(head.input[0])
    if head is None or head.op_type != "MatMul" or head.input[1] not in names:
        return False
    if len(known_shapes(g).get(head.input[0], ())) != 3:
        return False
    h = head.input[0]
    sliced = f"{h}.{LOGITS_FROM}"
    g.initializer.extend(
        [
            numpy_helper.from_array(np.zeros(1, np.int64), LOGITS_FROM),
            numpy_helper.from_array(np.array([_END], np.int64), f"{LOGITS_FROM}.end"),
            numpy_helper.from_array(np.ones(1, np.int64), f"{LOGITS_FROM}.axis"),
        ]
    )
    g.input.append(onnx.helper.make_tensor_value_info(LOGITS_FROM, onnx.TensorProto.INT64, [1]))
    cut = onnx.helper.make_node(
        "Slice",
        [h, LOGITS_FROM, f"{LOGITS_FROM}.end", f"{LOGITS_FROM}.axis"],
        [sliced],
        name=LOGITS_FROM,
    )
    nodes = list(g.node)
    nodes.insert(nodes.index(head), cut)
    head.input[0] = sliced
    del g.node[:]
    g.node.extend(nodes)
    return True

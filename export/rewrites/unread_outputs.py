"""Graph rewrite: optional outputs no node reads are left unnamed, so none is allocated.

A normalization node can return its statistics beside its result (``mean`` and
``inv_std_var``). The TorchScript exporter names every output a symbolic function declares,
and ONNX Runtime allocates a tensor for every named output on every run, read or not: a
Llama decoder's 16 ``SkipSimplifiedLayerNormalization`` nodes made 32 allocations a token for
nothing. ONNX marks an optional output left out by the empty name.
"""

from __future__ import annotations

from typing import Any

# op type -> the positions of its optional outputs (ONNX and ONNX Runtime contrib schemas)
OPTIONAL_OUTPUTS: dict[str, tuple[int, ...]] = {
    "LayerNormalization": (1, 2),
    "SimplifiedLayerNormalization": (1,),
    "SkipLayerNormalization": (1, 2, 3),
    "SkipSimplifiedLayerNormalization": (1, 2, 3),
}


def drop_unread_outputs(model: Any) -> int:
    """Blank, in place, every optional output of ``OPTIONAL_OUTPUTS`` that no node and no graph
    output reads; trailing blanks are removed. Returns how many outputs were dropped."""
    g = model.graph
    read = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    dropped = 0
    for n in g.node:
        for k in OPTIONAL_OUTPUTS.get(n.op_type, ()):
            if k < len(n.output) and n.output[k] and n.output[k] not in read:
                n.output[k] = ""
                dropped += 1
        _trim_blanks(n)
    return dropped


def name_blank_outputs(model: Any) -> set[str]:
    """Name, in place, every blank output before a named one (``NODE.unread.K``), for tools
    that read the empty name as a tensor (onnxconverter-common's fp16 conversion sorts nodes
    by it); ``blank_outputs`` blanks them again. Returns the names given."""
    named = set()
    for i, n in enumerate(model.graph.node):
        for k, o in enumerate(n.output):
            if not o:
                n.output[k] = f"{n.name or i}.unread.{k}"
                named.add(n.output[k])
    return named


def blank_outputs(model: Any, names: set[str]) -> int:
    """Blank, in place, the node outputs called ``names`` (trailing blanks removed)."""
    done = 0
    for n in model.graph.node:
        for k, o in enumerate(n.output):
            if o in names:
                n.output[k] = ""
                done += 1
        _trim_blanks(n)
    return done


def _trim_blanks(node: Any) -> None:
    """Drop a node's trailing blank outputs (the first output always stays)."""
    while len(node.output) > 1 and not node.output[-1]:
        del node.output[-1]

"""Control flow genedge will run from an imported ONNX graph: loops with small, static trips.

A generator is a fixed pipeline; a ``Loop`` whose trip count is 2^62, or depends on the
input, turns parity checks and calibration into a hang. ``check_control_flow`` walks the
graph, its subgraphs and its local functions before any of it runs and refuses (exit 2,
naming the node):

- ``Loop`` unless its trip count ``M`` is a constant (an initializer or a ``Constant``
  node) and the product of trip counts along every nesting is at most ``MAX_TRIPS``;
  a loop bounded only by its condition input runs until data says stop, so it is refused;
- ``Scan`` unless every scanned input has a static extent along its scan axis (from the
  graph's declared or inferred shapes) within the same bound;
- ``If`` runs one branch once: allowed, and both branches are checked like the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genedge.errors import BadInputError, printable
from genedge.lazy import lazy_import

onnx = lazy_import("onnx")
numpy_helper = lazy_import("onnx.numpy_helper")

MAX_TRIPS = 4096  # iterations of one loop, nested loops multiplied
LOOP_OPS = ("Loop", "Scan")


def _node_name(node: Any) -> str:
    return printable(
        node.name or f"(unnamed, output '{node.output[0] if node.output else ''}')", 80
    )


def _refuse(node: Any, why: str) -> BadInputError:
    return BadInputError(
        f"ONNX node {node.op_type} {_node_name(node)}: {why}; genedge runs loops only when "
        f"their trip counts are constants of at most {MAX_TRIPS:,} (nested loops multiplied).",
        hint="Export the model with its loops unrolled (a fixed number of steps), or run it "
        "with its own tools.",
    )


def _constants(graph: Any, outer: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Values known before running: ``outer``'s, ``graph``'s initializers, Constant outputs."""
    known = dict(outer)
    for t in graph.initializer:
        if t.data_location != 1 and np.prod(t.dims, dtype=np.int64) <= 16:  # 1: EXTERNAL
            known[t.name] = numpy_helper.to_array(t)
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value" and np.prod(a.t.dims, dtype=np.int64) <= 16:
                    known[node.output[0]] = numpy_helper.to_array(a.t)
                elif a.name in ("value_int", "value_ints"):
                    known[node.output[0]] = np.array(a.i if a.name == "value_int" else a.ints)
    return known


def known_shapes(graph: Any) -> dict[str, tuple]:
    """Tensor name -> its dims as the graph's inputs, value_info and outputs declare them
    (None where a dim is symbolic or unknown)."""
    dims = {}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            dims[vi.name] = tuple(
                d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim
            )
    return dims


def _loop_trips(node: Any, known: dict[str, np.ndarray]) -> int:
    m = node.input[0] if node.input else ""
    if not m:
        raise _refuse(node, "no trip count (it runs until its condition turns false)")
    value = known.get(m)
    if value is None or value.size != 1:
        raise _refuse(node, f"trip count '{printable(m, 60)}' is computed at run time")
    return int(value.reshape(()))


def _scan_trips(node: Any, shapes: dict[str, tuple]) -> int:
    attrs = {a.name: a for a in node.attribute}
    n_scan = attrs["num_scan_inputs"].i if "num_scan_inputs" in attrs else 0
    axes = list(attrs["scan_input_axes"].ints) if "scan_input_axes" in attrs else []
    scanned = list(node.input)[len(node.input) - n_scan :] if n_scan > 0 else []
    if not scanned:
        raise _refuse(node, "no scanned input")
    trips = 0
    for i, name in enumerate(scanned):
        shape = shapes.get(name)
        axis = axes[i] if i < len(axes) else 0
        extent = None
        if shape is not None and -len(shape) <= axis < len(shape):
            extent = shape[axis]
        if not extent:
            raise _refuse(node, f"scanned input '{printable(name, 60)}' has no static length")
        trips = max(trips, extent)
    return trips


def _check_graph(graph: Any, known: dict, shapes: dict, functions: dict, outer: int) -> None:
    known = _constants(graph, known)
    shapes = {**shapes, **known_shapes(graph)}
    for node in graph.node:
        trips = 1
        if node.op_type == "Loop":
            trips = _loop_trips(node, known)
        elif node.op_type == "Scan":
            trips = _scan_trips(node, shapes)
        if trips < 0 or outer * trips > MAX_TRIPS:
            raise _refuse(node, f"{trips:,} trips (x{outer:,} from enclosing loops)")
        for a in node.attribute:
            for sub in (a.g,) if a.HasField("g") else tuple(a.graphs):
                _check_graph(sub, known, shapes, functions, outer * trips)
        body = functions.get((node.domain, node.op_type))
        if body is not None:  # a local function, walked without itself (no recursion)
            rest = {k: v for k, v in functions.items() if v is not body}
            _check_graph(body, known, shapes, rest, outer * trips)


class _FunctionBody:
    """A local function's nodes, walked like a graph (it has no initializers or shapes)."""

    def __init__(self, f: Any) -> None:
        self.node = f.node
        self.initializer = ()
        self.input = self.value_info = self.output = ()


def check_control_flow(model: Any) -> None:
    """Refuse (``BadInputError``, exit 2) a ``Loop``/``Scan`` in ``model`` (an ``onnx``
    ModelProto) whose trips are not static and at most ``MAX_TRIPS``; see the module doc."""
    if not any(n.op_type in LOOP_OPS for n in _all_nodes(model)):
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # inference is a help for Scan extents, not a requirement
        inferred = model.graph
    functions = {(f.domain, f.name): _FunctionBody(f) for f in model.functions}
    _check_graph(model.graph, {}, known_shapes(inferred), functions, 1)


def _all_nodes(model: Any):
    todo = [model.graph, *(_FunctionBody(f) for f in model.functions)]
    while todo:
        g = todo.pop()
        for node in g.node:
            yield node
            for a in node.attribute:
                todo.extend((a.g,) if a.HasField("g") else tuple(a.graphs))

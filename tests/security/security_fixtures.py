"""Plain helpers for the security tests (a uniquely named module, so imports never clash)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

SECRET = "TOP-SECRET-7c1e9a-do-not-leak"


def tensor_places(model) -> Iterator[tuple[str, object]]:
    """(placement name, TensorProto) for every place a test may point at a secret."""
    g = model.graph
    yield "initializer", g.initializer[0]
    for node in g.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield "attribute", attr.t
            if attr.HasField("g") and attr.g.initializer:
                yield "subgraph", attr.g.initializer[0]
    yield "sparse", g.sparse_initializer[0].values


def build_model():
    """A small real model: MatMul by an initializer, a Constant, an If with subgraphs, a sparse init.

    Every tensor location a hostile file could use is present: graph initializer, node
    attribute tensor, initializer inside an If branch and a sparse initializer.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "W")
    cond = numpy_helper.from_array(np.array(True), "cond")
    const = helper.make_tensor(
        "c", TensorProto.FLOAT, [4], rng.standard_normal(4).astype(np.float32)
    )
    branch_init = numpy_helper.from_array(rng.standard_normal((1, 4)).astype(np.float32), "T")

    def branch(name: str):
        return helper.make_graph(
            [helper.make_node("Identity", ["T"], [f"{name}_out"])],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, 4])],
            initializer=[branch_init],
        )

    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.ones(2, np.float32), "S"),
        numpy_helper.from_array(np.array([0, 3], np.int64), "S_idx"),
        [4],
    )
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["m"]),
        helper.make_node("Constant", [], ["C"], value=const),
        helper.make_node("Add", ["m", "C"], ["a"]),
        helper.make_node("Add", ["a", "S"], ["b"]),
        helper.make_node(
            "If", ["cond"], ["br"], then_branch=branch("then"), else_branch=branch("else")
        ),
        helper.make_node("Add", ["b", "br"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])],
        initializer=[w, cond],
        sparse_initializer=[sparse],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def set_location(tensor, location: str) -> None:
    from onnx import TensorProto

    tensor.data_location = TensorProto.EXTERNAL
    for entry in tensor.external_data:
        if entry.key == "location":
            entry.value = location
            return
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location


PLACES = ("initializer", "attribute", "subgraph", "sparse")


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def ld(field: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def onnx_locations(m) -> list[str]:
    """Every external location onnx's own parser sees, by walking the same fields."""
    out: list[str] = []

    def tensor(t):
        out.extend(e.value for e in t.external_data if e.key == "location")

    def attrs(attributes):
        for a in attributes:
            if a.HasField("t"):
                tensor(a.t)
            for t in a.tensors:
                tensor(t)
            if a.HasField("g"):
                graph(a.g)
            for g in a.graphs:
                graph(g)
            for s in [a.sparse_tensor, *a.sparse_tensors]:
                tensor(s.values)
                tensor(s.indices)

    def graph(g):
        for t in g.initializer:
            tensor(t)
        for s in g.sparse_initializer:
            tensor(s.values)
            tensor(s.indices)
        for n in g.node:
            attrs(n.attribute)

    graph(m.graph)
    for ti in m.training_info:
        graph(ti.initialization)
        graph(ti.algorithm)
    for f in m.functions:
        attrs(f.attribute_proto)
        for n in f.node:
            attrs(n.attribute)
    return out

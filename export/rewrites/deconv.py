"""Export-time rewrites of ONNX ConvTranspose into the ops CPU int8 kernels exist for.

A DCGAN-style generator (the classic BYO model) is a stack of ConvTranspose layers. On CPU
that is the slow path twice over: the first layer, a ConvTranspose on a 1x1 latent, is a
matrix product that ONNX Runtime runs as a sparse convolution (a quarter of an fp32 run on
the 28x28 DCGAN); and neither ONNX Runtime nor OpenVINO has a fast int8 ConvTranspose, so a
Q/DQ int8 file runs its deconvolutions in float between extra quantize ops, slower than fp32.
Two exact rewrites remove both:

- ``dense_first_layers``: a ConvTranspose whose input is 1x1 (no pads) is
  ``Reshape(B, Cin) -> Gemm -> Reshape(B, Cout, kH, kW)``. Applied to every fp32 artifact.
- ``phase_convs``: a stride-s ConvTranspose is s*s ordinary convolutions, one per output
  phase (r, q) = (Y mod s, X mod s), each over the input taps that phase reads, concatenated
  and interleaved by DepthToSpace (DCR). Same multiply-adds, and every piece has an int8
  kernel. Applied to the graph that int8 calibration quantizes.

Derivation (one spatial axis; the other is the same): ConvTranspose writes input pixel i
through kernel tap k to output ``Y = s*i - pad_begin + k``. For output ``Y = s*a + r`` the taps
are ``k = r + pad_begin - s*d`` at input ``i = a + d``, for every d with ``0 <= k < K``. A Conv
with pads ``(-d_min, d_max + extra)`` and kernel taps ordered by d computes exactly that sum,
where ``extra = (output_padding + K - s - pad_begin - pad_end) / s`` is how far the output
runs past ``s * H``. Exact up to float re-association (tests/export/test_deconv.py).

``private_qdq_scales`` is the int8 companion: ONNX Runtime on x86 turns s8 activations into
u8 for its QLinearConv kernels only where a QuantizeLinear feeds a single DequantizeLinear;
its common-subexpression pass merges dedicated Q/DQ pairs that share scale tensors, so each
pair gets its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from genedge.lazy import lazy_import

onnx = lazy_import("onnx")
helper = lazy_import("onnx.helper")
numpy_helper = lazy_import("onnx.numpy_helper")


@dataclass(frozen=True)
class AxisPhase:
    """One output phase r along one axis: kernel taps (in Conv order) and the Conv pads."""

    taps: tuple[int, ...]
    pad_begin: int
    pad_end: int


def _attrs(node: Any) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def axis_phases(
    stride: int, kernel: int, pad_begin: int, pad_end: int, output_padding: int
) -> list[AxisPhase] | None:
    """The s phases of one axis, or None where the rewrite does not apply exactly.

    It does not apply when the output length is not a whole number of phases for every
    input length, when a phase reads no tap (kernel shorter than the stride), or when a
    phase would need a negative Conv pad (a crop, not expressible as Conv padding).
    """
    span = output_padding + kernel - pad_begin - pad_end
    if span % stride:
        return None
    extra = (span - stride) // stride
    phases = []
    for r in range(stride):
        d_min = -((kernel - 1 - r - pad_begin) // stride)  # ceil((r + pad_begin - kernel + 1) / s)
        d_max = (r + pad_begin) // stride
        if d_max < d_min or d_min > 0 or extra + d_max < 0:
            return None
        taps = tuple(r + pad_begin - stride * d for d in range(d_min, d_max + 1))
        phases.append(AxisPhase(taps, -d_min, extra + d_max))
    return phases


def _plain_conv_transpose(node: Any, weights: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Attributes of a 2D, ungrouped, undilated ConvTranspose with a stored weight, else None."""
    if node.op_type != "ConvTranspose" or len(node.input) < 2 or node.input[1] not in weights:
        return None
    a = _attrs(node)
    w = weights[node.input[1]]
    if w.ndim != 4 or a.get("group", 1) != 1 or any(v != 1 for v in a.get("dilations", [1, 1])):
        return None
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or "output_shape" in a:
        return None
    if len(node.input) > 2 and node.input[2] and node.input[2] not in weights:
        return None
    return {
        "strides": list(a.get("strides", [1, 1])),
        "pads": list(a.get("pads", [0, 0, 0, 0])),
        "output_padding": list(a.get("output_padding", [0, 0])),
        "kernel": list(w.shape[2:]),
    }


def _initializers(model: Any) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _bias(node: Any, weights: dict[str, np.ndarray]) -> np.ndarray | None:
    return weights[node.input[2]] if len(node.input) > 2 and node.input[2] else None


def _replace_nodes(model: Any, rewrite: Any, added: list[Any]) -> int:
    """Rebuild the node list with ``rewrite(node) -> list | None`` and add ``added`` initializers.

    The replaced nodes' stored weights are dropped where nothing else reads them. Returns how
    many nodes were replaced.
    """
    replaced, nodes = [], []
    for node in model.graph.node:
        new = rewrite(node)
        if new is not None:
            replaced.append(node)
        nodes.extend(new if new is not None else [node])
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(added)
    orphans = {name for node in replaced for name in node.input[1:]}
    orphans -= {name for node in model.graph.node for name in node.input}
    orphans -= {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name not in orphans]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return len(replaced)


def _spatial_dims(model: Any) -> dict[str, list[int | None]]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    values = list(inferred.graph.value_info) + list(inferred.graph.input)
    return {
        v.name: [
            d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim
        ]
        for v in values
    }


def dense_first_layers(model: Any) -> int:
    """Rewrite, in place, every ConvTranspose on a 1x1 input without pads as a Gemm.

    ``x (B, Cin, 1, 1) -> Reshape (B, Cin) -> Gemm with W (Cin, Cout*kH*kW) and the bias
    repeated per pixel -> Reshape (B, Cout, kH, kW)``. Needs the input's spatial size from
    shape inference; a ConvTranspose whose input size is unknown is left alone. Returns the
    number of layers rewritten.
    """
    weights = _initializers(model)
    shapes = _spatial_dims(model)
    added: list[Any] = []

    def rewrite(node: Any) -> list[Any] | None:
        a = _plain_conv_transpose(node, weights)
        shape = shapes.get(node.input[0]) if a else None
        if a is None or shape is None or len(shape) != 4 or shape[2:] != [1, 1]:
            return None
        if any(a["pads"]) or any(a["output_padding"]):
            return None
        w = weights[node.input[1]]
        c_in, c_out, kh, kw = w.shape
        base = node.name or node.output[0]
        names = {k: f"{base}/dense_{k}" for k in ("w", "b", "in_shape", "out_shape", "x2", "y2")}
        added.append(numpy_helper.from_array(w.reshape(c_in, c_out * kh * kw), names["w"]))
        added.append(numpy_helper.from_array(np.array([0, c_in], np.int64), names["in_shape"]))
        out_shape = np.array([0, c_out, kh, kw], np.int64)
        added.append(numpy_helper.from_array(out_shape, names["out_shape"]))
        gemm_in = [names["x2"], names["w"]]
        b = _bias(node, weights)
        if b is not None:
            per_pixel = np.repeat(b.astype(w.dtype), kh * kw)  # (Cout*kH*kW,), channel-major
            added.append(numpy_helper.from_array(per_pixel, names["b"]))
            gemm_in.append(names["b"])
        return [
            helper.make_node(
                "Reshape",
                [node.input[0], names["in_shape"]],
                [names["x2"]],
                name=f"{base}/dense_in",
            ),
            helper.make_node("Gemm", gemm_in, [names["y2"]], name=f"{base}/dense"),
            helper.make_node(
                "Reshape",
                [names["y2"], names["out_shape"]],
                [node.output[0]],
                name=f"{base}/dense_out",
            ),
        ]

    return _replace_nodes(model, rewrite, added)


def phase_convs(model: Any, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Rewrite, in place, every stride>1 ConvTranspose as per-phase Convs + Concat + DepthToSpace.

    ``skip`` names ConvTranspose nodes to leave as they are (kept in float by a
    mixed-precision recipe). Returns the names of the new Concat nodes (the int8 pass
    quantizes those and no other Concat).
    """
    weights = _initializers(model)
    added: list[Any] = []
    concats: list[str] = []

    def rewrite(node: Any) -> list[Any] | None:
        a = _plain_conv_transpose(node, weights)
        if a is None or node.name in skip:
            return None
        (sh, sw), (kh, kw), pads, outp = a["strides"], a["kernel"], a["pads"], a["output_padding"]
        if sh != sw or sh < 2:
            return None
        rows = axis_phases(sh, kh, pads[0], pads[2], outp[0])
        cols = axis_phases(sw, kw, pads[1], pads[3], outp[1])
        if rows is None or cols is None:
            return None
        w, b = weights[node.input[1]], _bias(node, weights)
        base = node.name or node.output[0]
        new, phase_out = [], []
        for r, row in enumerate(rows):
            for q, col in enumerate(cols):
                tag = f"{base}/phase{r}{q}"
                w_rq = w[:, :, list(row.taps)][:, :, :, list(col.taps)].transpose(
                    1, 0, 2, 3
                )  # (Cout, Cin, kr, kq)
                added.append(numpy_helper.from_array(np.ascontiguousarray(w_rq), f"{tag}_w"))
                inputs = [node.input[0], f"{tag}_w"]
                if b is not None:  # one bias per conv: ORT folds a bias into one QLinearConv only
                    added.append(numpy_helper.from_array(b.copy(), f"{tag}_b"))
                    inputs.append(f"{tag}_b")
                conv_pads = [row.pad_begin, col.pad_begin, row.pad_end, col.pad_end]
                kernel_shape = [len(row.taps), len(col.taps)]
                new.append(
                    helper.make_node(
                        "Conv",
                        inputs,
                        [f"{tag}_y"],
                        name=tag,
                        kernel_shape=kernel_shape,
                        pads=conv_pads,
                    )
                )
                phase_out.append(f"{tag}_y")
        # channel (r*s + q)*Cout + c -> pixel (s*a + r, s*b + q) of channel c: DepthToSpace DCR
        concats.append(f"{base}/phases")
        new.append(
            helper.make_node("Concat", phase_out, [f"{base}/phases_y"], name=concats[-1], axis=1)
        )
        new.append(
            helper.make_node(
                "DepthToSpace",
                [f"{base}/phases_y"],
                [node.output[0]],
                name=f"{base}/interleave",
                blocksize=sh,
                mode="DCR",
            )
        )
        return new

    _replace_nodes(model, rewrite, added)
    return concats


def private_qdq_scales(model: Any) -> int:
    """Private scale copies for activation QuantizeLinear nodes sharing them on one tensor.

    The DequantizeLinear nodes it feeds are pointed at the copies too. Values are unchanged;
    only the sharing is gone, so ONNX Runtime cannot merge the dedicated pairs back. Returns
    the number of Q nodes given copies.
    """
    g = model.graph
    stored = {t.name: t for t in g.initializer}
    readers: dict[str, list[Any]] = {}
    for node in g.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    taken: dict[str, set[tuple[str, str]]] = {}  # tensor -> (scale, zero point) pairs in use
    changed = 0
    for node in g.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in stored or len(node.input) < 3:
            continue
        pair = (node.input[1], node.input[2])
        used = taken.setdefault(node.input[0], set())
        if pair not in used or not all(name in stored for name in pair):
            used.add(pair)
            continue
        k = len(used)
        copies = []
        for src in node.input[1:3]:
            t = onnx.TensorProto()
            t.CopyFrom(stored[src])
            t.name = f"{src}/pair{k}"
            g.initializer.append(t)
            copies.append(t.name)
        for reader in readers.get(node.output[0], []):
            if reader.op_type == "DequantizeLinear":
                reader.input[1], reader.input[2] = copies
        node.input[1], node.input[2] = copies
        used.add(tuple(copies))
        changed += 1
    return changed

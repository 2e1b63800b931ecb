"""An existing ONNX image generator -> verified bundle with genedge's own wrapper graph.

The user's graph is kept whole (its tensors prefixed ``src/``) and wrapped: ``z (B, Z)
float32 [, label (B,) int64]`` in, the prior mapping and reshape/casts to what the graph
wants, then its image output mapped from ``output_range`` to [-1, 1], rounded, clamped and
laid out as uint8 NHWC ``image``: the contract of docs/bundle.md, so the runtime, the C ABI
and the stream loop cannot tell it from a genedge model. Parity is checked against the
original file run by ONNX Runtime with the same post-processing applied in torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genedge.errors import BadInputError, CorruptArtifactError
from genedge.export.bundle import LoadedModel, export_source
from genedge.export.checks.control_flow import check_control_flow
from genedge.export.checks.parity import onnx_runner
from genedge.export.options import ExportOptions
from genedge.export.routes.byo import (
    GeneratorSpec,
    check_output_range,
    combined_sha256,
    config_for,
    image_graph_spec_for,
    parse_output_range,
    validate_spec,
)
from genedge.export.routes.onnx_export import finish_model
from genedge.latents import default_labels, seeded_latents
from genedge.lazy import lazy_import
from genedge.limits import MAX_BATCH, MAX_LATENT_SIZE, MAX_OUTPUT_PIXELS
from genedge.manifest import sha256_file
from genedge.onnx_guard import check_external_data

onnx = lazy_import("onnx")
helper = lazy_import("onnx.helper")
numpy_helper = lazy_import("onnx.numpy_helper")
torch = lazy_import("torch")

FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64"}
INT_TYPES = {7: "int64", 6: "int32"}
PREFIX = "src/"
MIN_OPSET = 13


@dataclass(frozen=True)
class OnnxSourceSpec:
    """Which tensors of the user's graph are what (None: detect), and how to read the output."""

    latent_input: str | None = None
    label_input: str | None = None
    image_output: str | None = None
    num_classes: int | None = None
    output_range: tuple[float, float] = (-1.0, 1.0)
    latent_dist: str = "normal"
    latent_dim: int | None = None  # when given, must match the graph's
    check_range: bool = True  # False: export even when seeded outputs do not fit output_range


@dataclass(frozen=True)
class TensorInfo:
    name: str
    elem: int
    dims: tuple[int | str | None, ...]

    @property
    def shown(self) -> str:
        t = {**FLOAT_TYPES, **INT_TYPES}.get(self.elem, f"type {self.elem}")
        return f"'{self.name}' {t} {[d if d is not None else '?' for d in self.dims]}"


@dataclass(frozen=True)
class OnnxIO:
    """The user's graph as genedge reads it."""

    latent: TensorInfo
    label: TensorInfo | None
    image: TensorInfo
    layout: str  # layout of the user's image output: NCHW | NHWC
    fixed_batch: int | None  # the graph's batch size when it is not dynamic


def onnx_spec_from_args(args: Any) -> OnnxSourceSpec:
    for flag in ("module_args", "latent_shape", "weights"):
        if getattr(args, flag, None) is not None:
            raise BadInputError(
                f"--{flag.replace('_', '-')} applies to --module; an ONNX graph fixes its own.",
                hint="Drop it, or pass --latent-input/--label-input/--image-output to name tensors.",
            )
    return OnnxSourceSpec(
        latent_input=args.latent_input,
        label_input=args.label_input,
        image_output=args.image_output,
        num_classes=args.num_classes,
        output_range=parse_output_range(args.output_range) if args.output_range else (-1.0, 1.0),
        latent_dist=args.latent_dist or "normal",
        latent_dim=args.latent_dim,
        check_range=not getattr(args, "trust_output_range", None),
    )


# ---------------------------------------------------------------- reading the user's graph
def load_user_onnx(path: Path):
    """The ONNX model at ``path`` (external data confined to its folder), checked."""
    if not path.is_file():
        raise BadInputError(f"ONNX file '{path}' does not exist or is not a file.")
    check_external_data(path, path.resolve().parent)
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # DecodeError, ValidationError, ...
        raise CorruptArtifactError(
            f"'{path}' is not a valid ONNX model ({type(e).__name__}: {str(e).strip()[:200]})."
        ) from None
    return model


def _info(vi) -> TensorInfo:
    t = vi.type.tensor_type
    dims = tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim
    )
    return TensorInfo(vi.name, t.elem_type, dims)


def _is_latent(t: TensorInfo) -> bool:
    if t.elem not in FLOAT_TYPES:
        return False
    return len(t.dims) == 2 or (len(t.dims) == 4 and t.dims[2:] == (1, 1))


def _is_label(t: TensorInfo) -> bool:
    return t.elem in INT_TYPES and (len(t.dims) == 1 or (len(t.dims) == 2 and t.dims[1] == 1))


def _image_layout(t: TensorInfo) -> str | None:
    if t.elem not in FLOAT_TYPES or len(t.dims) != 4:
        return None
    if t.dims[1] in (1, 3):
        return "NCHW"
    if t.dims[3] in (1, 3):
        return "NHWC"
    return None


def _pick(kind: str, flag: str, named: str | None, pool: list[TensorInfo], every: list[TensorInfo]):
    if named is not None:
        found = [t for t in every if t.name == named]
        if not found:
            raise BadInputError(
                f"{flag} {named!r}: the graph has no such tensor; it has "
                f"{', '.join(t.shown for t in every)}."
            )
        return found[0]
    if len(pool) > 1:
        raise BadInputError(
            f"The ONNX graph has {len(pool)} candidate {kind}s: {', '.join(t.shown for t in pool)}; "
            "which one is which is ambiguous.",
            hint=f"Name it with {flag} NAME.",
        )
    return pool[0] if pool else None


def detect_io(model, spec: OnnxSourceSpec) -> OnnxIO:
    """Find the latent input, the optional label input and the image output (BadInputError when
    ambiguous, missing, or of a shape genedge cannot drive)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [_info(vi) for vi in model.graph.input if vi.name not in inits]
    outputs = [_info(vi) for vi in inferred.graph.output]
    for t in inputs:
        if (
            t.elem in FLOAT_TYPES
            and len(t.dims) == 4
            and not all(isinstance(d, int) for d in t.dims[1:])
        ):
            raise BadInputError(
                f"Input {t.shown} has dynamic spatial sizes (a fully convolutional generator); "
                "genedge bundles have a fixed latent and image size.",
                hint="Re-export the ONNX with fixed sizes (dynamic_axes only on the batch).",
            )
    latent = _pick(
        "latent input",
        "--latent-input",
        spec.latent_input,
        [t for t in inputs if _is_latent(t)],
        inputs,
    )
    if latent is None:
        raise BadInputError(
            f"No latent input found among the graph's inputs {', '.join(t.shown for t in inputs)}; "
            "expected a float input (B, Z) or (B, Z, 1, 1).",
            hint="Name it with --latent-input NAME.",
        )
    rest = [t for t in inputs if t.name != latent.name]
    labels = [t for t in rest if _is_label(t)]
    label = _pick("label input", "--label-input", spec.label_input, labels, rest)
    others = [t for t in rest if label is None or t.name != label.name]
    if others:
        raise BadInputError(
            f"The ONNX graph has inputs genedge cannot feed: {', '.join(t.shown for t in others)} "
            f"(besides the latent {latent.shown}).",
            hint="genedge feeds a latent and an optional integer label (B,); fold other inputs "
            "into the graph as constants.",
        )
    if not _is_latent(latent):
        raise BadInputError(f"Latent input {latent.shown}: expected float (B, Z) or (B, Z, 1, 1).")
    if label is not None and not _is_label(label):
        raise BadInputError(f"Label input {label.shown}: expected int64/int32 (B,) or (B, 1).")
    image = _pick(
        "image output",
        "--image-output",
        spec.image_output,
        [t for t in outputs if _image_layout(t)],
        outputs,
    )
    if image is None or not _image_layout(image):
        shown = image.shown if image else ", ".join(t.shown for t in outputs)
        raise BadInputError(
            f"No image output: {shown}; expected float (B, C, H, W) or (B, H, W, C) with C = 1 or 3.",
            hint="Name it with --image-output NAME.",
        )
    return OnnxIO(latent, label, image, _image_layout(image), _check_dims(latent, label, image))


def _check_dims(latent: TensorInfo, label: TensorInfo | None, image: TensorInfo) -> int | None:
    """The fixed batch size (None when dynamic); BadInputError for dynamic non-batch sizes."""
    layout = _image_layout(image)
    spatial = image.dims[2:] if layout == "NCHW" else image.dims[1:3]
    if any(not isinstance(d, int) for d in spatial):
        raise BadInputError(
            f"Image output {image.shown} has dynamic spatial sizes; genedge bundles have a fixed "
            "image size.",
            hint="Re-export the ONNX with fixed height and width (dynamic_axes only on the batch).",
        )
    if not isinstance(latent.dims[1], int):
        raise BadInputError(
            f"Latent input {latent.shown} has a dynamic size Z; expected a fixed latent size.",
            hint="Re-export the ONNX with the latent's second dimension fixed.",
        )
    batch = [t.dims[0] for t in (latent, label, image) if t is not None]
    fixed = [b for b in batch if isinstance(b, int)]
    fixed_batch = fixed[0] if fixed and len(fixed) == len(batch) else None
    _check_declared_sizes(latent, image, [int(d) for d in spatial], fixed_batch)
    return fixed_batch


def _check_declared_sizes(
    latent: TensorInfo, image: TensorInfo, spatial: list[int], fixed_batch: int | None
) -> None:
    """Refuse sizes the graph declares past genedge's limits, before any tensor is made: a few
    kB of ONNX can declare a batch of 2^24 or a 4096 x 4096 image, and export runs the graph
    on hundreds of samples of that size."""
    if fixed_batch is not None and not 1 <= fixed_batch <= MAX_BATCH:
        raise BadInputError(
            f"Graph declares a fixed batch of {fixed_batch} on {latent.shown}; genedge accepts "
            f"1 to {MAX_BATCH:,}.",
            hint="Re-export the ONNX with a dynamic batch (dynamic_axes on dimension 0).",
        )
    z = math.prod(d for d in latent.dims[1:] if isinstance(d, int))
    if not 1 <= z <= MAX_LATENT_SIZE:
        raise BadInputError(
            f"Latent input {latent.shown} declares {z:,} values per sample; genedge accepts 1 "
            f"to {MAX_LATENT_SIZE:,}."
        )
    h, w = spatial
    if not (h >= 1 and w >= 1 and h * w <= MAX_OUTPUT_PIXELS):
        raise BadInputError(
            f"Image output {image.shown} declares {h} x {w} pixels; genedge exports generators of "
            f"at most {MAX_OUTPUT_PIXELS:,} pixels per image (export runs hundreds of them).",
            hint="Export a generator of a smaller image size.",
        )


def num_classes_of(model, io: OnnxIO, spec: OnnxSourceSpec) -> int:
    """--num-classes, else the row count of an embedding table the label indexes."""
    if io.label is None:
        if spec.num_classes:
            raise BadInputError(
                f"--num-classes {spec.num_classes} given, but the graph has no integer label input.",
                hint="Name it with --label-input NAME, or drop --num-classes.",
            )
        return 0
    if spec.num_classes:
        return spec.num_classes

    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and io.label.name in node.input[1:] and node.input[0] in inits:
            return int(numpy_helper.to_array(inits[node.input[0]]).shape[0])
    raise BadInputError(
        f"The graph takes labels {io.label.shown} but the number of classes is not evident.",
        hint="Pass --num-classes K.",
    )


# ---------------------------------------------------------------- the fixed batch
def with_dynamic_batch(model, io: OnnxIO):
    """A copy of ``model`` with batch dimension ``B`` on its I/O; Reshape targets that spell the
    fixed batch are rewritten to -1. Whether that is right is checked numerically later."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    names = {io.latent.name, io.image.name} | ({io.label.name} if io.label else set())
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.name in names and vi.type.tensor_type.shape.dim:
            vi.type.tensor_type.shape.dim[0].dim_param = "B"
    shapes = {n.input[1] for n in m.graph.node if n.op_type == "Reshape" and len(n.input) > 1}
    targets = [t for t in m.graph.initializer if t.name in shapes] + [
        a.t
        for n in m.graph.node
        if n.op_type == "Constant" and n.output[0] in shapes
        for a in n.attribute
        if a.name == "value"
    ]
    for t in targets:
        arr = numpy_helper.to_array(t).copy()
        if arr.ndim == 1 and len(arr) and arr[0] == io.fixed_batch and -1 not in arr:
            arr[0] = -1  # (N, ...) -> (-1, ...)
            t.CopyFrom(numpy_helper.from_array(arr, t.name))
    return m


# ---------------------------------------------------------------- the wrapper graph
def wrapper_onnx(model, io: OnnxIO, gspec: GeneratorSpec, output_format: str):
    """genedge's generator graph around the user's (prefixed) graph; not yet simplified."""
    src = onnx.compose.add_prefix(model, PREFIX)
    nodes, consts = [], []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        consts.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), f"genedge/{name}"))
        return f"genedge/{name}"

    z = "z"
    if gspec.latent_dist == "uniform":
        nodes.append(
            helper.make_node("Mul", [z, const("inv_sqrt2", 1 / math.sqrt(2))], ["genedge/zs"])
        )
        nodes.append(helper.make_node("Erf", ["genedge/zs"], ["genedge/zu"]))  # N(0,1) -> U(-1,1)
        z = "genedge/zu"
    shape = [-1, *io.latent.dims[1:]]
    nodes.append(helper.make_node("Reshape", [z, const("zshape", shape, np.int64)], ["genedge/zr"]))
    nodes.append(
        helper.make_node("Cast", ["genedge/zr"], [PREFIX + io.latent.name], to=io.latent.elem)
    )
    inputs = [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["B", gspec.latent_dim])]
    if io.label is not None:
        inputs.append(helper.make_tensor_value_info("label", onnx.TensorProto.INT64, ["B"]))
        lshape = const("lshape", [-1, *io.label.dims[1:]], np.int64)
        nodes.append(helper.make_node("Reshape", ["label", lshape], ["genedge/lr"]))
        nodes.append(
            helper.make_node("Cast", ["genedge/lr"], [PREFIX + io.label.name], to=io.label.elem)
        )
    x = PREFIX + io.image.name
    if io.layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [x], ["genedge/nchw"], perm=[0, 3, 1, 2]))
        x = "genedge/nchw"
    nodes.append(helper.make_node("Cast", [x], ["genedge/x"], to=onnx.TensorProto.FLOAT))
    x = "genedge/x"
    lo, hi = gspec.output_range
    scale, shift = 2.0 / (hi - lo), -2.0 * lo / (hi - lo) - 1.0
    if (scale, shift) != (1.0, 0.0):  # output_range -> [-1, 1]
        nodes.append(helper.make_node("Mul", [x, const("scale", scale)], ["genedge/xs"]))
        nodes.append(
            helper.make_node("Add", ["genedge/xs", const("shift", shift)], ["genedge/x11"])
        )
        x = "genedge/x11"
    c, h, w = _chw(io)
    if output_format == "float":
        nodes.append(helper.make_node("Identity", [x], ["image"]))
        out = helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["B", c, h, w])
    else:  # (x + 1) * 127.5, round, clamp, uint8, NHWC: to_image_output's arithmetic
        nodes += [
            helper.make_node("Add", [x, const("one", 1.0)], ["genedge/p1"]),
            helper.make_node("Mul", ["genedge/p1", const("half255", 127.5)], ["genedge/p2"]),
            helper.make_node("Round", ["genedge/p2"], ["genedge/p3"]),
            helper.make_node(
                "Clip", ["genedge/p3", const("lo", 0.0), const("hi", 255.0)], ["genedge/p4"]
            ),
            helper.make_node("Cast", ["genedge/p4"], ["genedge/u8"], to=onnx.TensorProto.UINT8),
            helper.make_node("Transpose", ["genedge/u8"], ["image"], perm=[0, 2, 3, 1]),
        ]
        out = helper.make_tensor_value_info("image", onnx.TensorProto.UINT8, ["B", h, w, c])
    graph = helper.make_graph(
        _ordered(nodes, src),
        "genedge_generator",
        inputs,
        [out],
        initializer=list(src.graph.initializer) + consts,
    )
    wrapped = helper.make_model(
        graph, opset_imports=list(src.opset_import), producer_name="genedge"
    )
    wrapped.ir_version = src.ir_version
    wrapped.functions.extend(src.functions)
    return wrapped


def _ordered(nodes: list, src) -> list:
    """Our input nodes (up to the last one feeding a ``src/`` tensor), the user's nodes, then
    our output nodes: a topological order."""
    n_in = max(i for i, n in enumerate(nodes) if n.output[0].startswith(PREFIX)) + 1
    return nodes[:n_in] + list(src.graph.node) + nodes[n_in:]


def _chw(io: OnnxIO) -> tuple[int, int, int]:
    d = io.image.dims
    return (d[1], d[2], d[3]) if io.layout == "NCHW" else (d[3], d[1], d[2])


def _upgrade_opset(model, path: Path):
    version = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if version >= MIN_OPSET:
        return model
    try:
        return onnx.version_converter.convert_version(model, 17)
    except Exception as e:
        raise BadInputError(
            f"'{path}' uses ONNX opset {version}; converting it to opset 17 failed "
            f"({type(e).__name__}: {str(e).strip()[:200]}).",
            hint=f"Re-export the model with opset >= {MIN_OPSET}.",
        ) from None


# ---------------------------------------------------------------- the graph wrapper object
class OnnxGeneratorGraph:
    """What the export stages need of the main graph: ``build_onnx`` (the wrapper graph) and
    ``reference()`` (the original file on ONNX Runtime plus the same post-processing)."""

    reference_name = "the source ONNX (onnxruntime)"

    def __init__(self, path: Path, model, io: OnnxIO, gspec: GeneratorSpec, output_format: str):
        self.path, self.model, self.io, self.gspec = path, model, io, gspec
        self.output_format = output_format
        self._reference: SourceReference | None = None

    def build_onnx(self, spec: Any, opset: int):
        model = (
            self.model if self.io.fixed_batch is None else with_dynamic_batch(self.model, self.io)
        )
        try:
            return finish_model(wrapper_onnx(model, self.io, self.gspec, self.output_format), spec)
        except Exception as e:
            raise BadInputError(
                f"Wrapping '{self.path}' into genedge's generator graph failed "
                f"({type(e).__name__}: {str(e).strip()[:300]}).",
                hint="Check the tensor names (--latent-input/--label-input/--image-output).",
            ) from None

    def reference(self) -> SourceReference:
        if self._reference is None:  # one ORT session for the probe, the batch check and parity
            self._reference = SourceReference.open(
                self.path, self.io, self.gspec, self.output_format
            )
        return self._reference


class SourceReference:
    """Callable like a torch wrapper: ``(z[, label]) -> image`` by running the original file."""

    def __init__(self, runner: Any, io: OnnxIO, gspec: GeneratorSpec, output_format: str) -> None:
        self.runner, self.io, self.gspec, self.output_format = runner, io, gspec, output_format

    @classmethod
    def open(cls, path: Path, io: OnnxIO, gspec: GeneratorSpec, output_format: str):
        """The ONNX file ``path`` on the runtime's ORT CPU backend."""
        return cls(onnx_runner(path), io, gspec, output_format)

    def raw(self, z: np.ndarray, label: np.ndarray | None) -> np.ndarray:
        """The original graph's image output, float32 NCHW, for latents ``z`` (n, Z)."""
        n, step = len(z), self.io.fixed_batch or len(z)
        outs = []
        for i in range(0, n, step):
            zi, li = (
                _padded(z[i : i + step], step),
                None if label is None else _padded(label[i : i + step], step),
            )
            outs.append(self._run(zi, li)[: min(step, n - i)])
        x = np.concatenate(outs).astype(np.float32)
        return x.transpose(0, 3, 1, 2) if self.io.layout == "NHWC" else x

    def _run(self, z: np.ndarray, label: np.ndarray | None) -> np.ndarray:
        if self.gspec.latent_dist == "uniform":
            z = torch.erf(torch.from_numpy(z) * (1 / math.sqrt(2))).numpy()
        feed = {
            self.io.latent.name: z.reshape(-1, *self.io.latent.dims[1:]).astype(
                FLOAT_TYPES[self.io.latent.elem]
            )
        }
        if label is not None:
            lab = label.reshape(-1, *self.io.label.dims[1:]).astype(INT_TYPES[self.io.label.elem])
            feed[self.io.label.name] = lab
        return self.runner.run(feed)[self.io.image.name]

    def __call__(self, z: Any, label: Any = None) -> Any:
        from genedge.export.routes.wrappers import to_image_output

        x = torch.from_numpy(self.raw(z.numpy(), None if label is None else label.numpy()))
        lo, hi = self.gspec.output_range
        scale, shift = 2.0 / (hi - lo), -2.0 * lo / (hi - lo) - 1.0
        if (scale, shift) != (1.0, 0.0):
            x = x * scale + shift
        return to_image_output(x, self.output_format)


def _padded(a: np.ndarray, n: int) -> np.ndarray:
    return a if len(a) == n else np.concatenate([a, np.repeat(a[-1:], n - len(a), axis=0)])


# ---------------------------------------------------------------- checks and entry point
def probe_source(ref: SourceReference, gspec: GeneratorSpec, path: Path) -> None:
    """Run the original graph on seeded latents: finite, inside the declared range (BadInputError)."""
    n = 8
    z = seeded_latents(n, gspec.latent_dim, seed=0)
    labels = default_labels(n, gspec.num_classes) if gspec.num_classes else None
    try:
        x = ref.raw(z, labels)
    except Exception as e:
        raise BadInputError(
            f"Running '{path}' on ONNX Runtime failed ({type(e).__name__}: {str(e).strip()[:300]})."
        ) from None
    if not np.isfinite(x).all():
        raise BadInputError(
            f"'{path}' returned {int((~np.isfinite(x)).sum())} NaN/Inf values on seeded N(0, I) latents.",
            hint="Check the model (a diverged training run?) and --latent-dist.",
        )
    check_output_range(float(x.min()), float(x.max()), gspec, f"'{path}'")


def check_dynamic_batch(graph: OnnxGeneratorGraph, ref: SourceReference) -> None:
    """A graph whose fixed batch was made dynamic must give, at batch 3, what the original gives
    sample by sample; otherwise the export is refused."""
    import tempfile

    io, gspec = graph.io, graph.gspec
    model = with_dynamic_batch(graph.model, io)
    z = seeded_latents(3, gspec.latent_dim, seed=7)
    labels = default_labels(3, gspec.num_classes) if gspec.num_classes else None
    problem = None
    with tempfile.TemporaryDirectory(prefix="genedge-onnx-") as tmp:
        p = Path(tmp) / "dyn.onnx"
        onnx.save_model(model, str(p))
        try:
            runner = onnx_runner(p)
            try:
                dynamic = dataclasses.replace(io, fixed_batch=None)
                got = SourceReference(runner, dynamic, gspec, "float").raw(z, labels)
            finally:
                runner.close()
            want = ref.raw(z, labels)
            err = float(np.max(np.abs(got - want)))
            if not err <= 1e-4 * max(1.0, float(np.max(np.abs(want)))):
                problem = (
                    f"at batch 3 it differs from the batch-{io.fixed_batch} original by {err:.3g}"
                )
        except Exception as e:
            problem = f"it fails at batch 3 ({type(e).__name__}: {str(e).strip()[:200]})"
    if problem:
        raise BadInputError(
            f"'{graph.path}' has a fixed batch size {io.fixed_batch} that cannot be made dynamic "
            f"safely: {problem}.",
            hint="Re-export the ONNX with a dynamic batch, e.g. torch.onnx.export(..., "
            "dynamic_axes={'z': {0: 'B'}, 'image': {0: 'B'}}).",
        )


def onnx_source(path: Path, spec: GeneratorSpec, io: OnnxIO) -> dict[str, Any]:
    digest = sha256_file(path)
    names = {
        "latent": io.latent.name,
        "label": io.label.name if io.label else None,
        "image": io.image.name,
    }
    return {
        "type": "onnx",
        "onnx": path.name,
        "onnx_sha256": digest,
        "tensors": names,
        "layout": io.layout,
        "fixed_batch": io.fixed_batch,
        "generator": spec.record(),
        "sha256": combined_sha256(digest, names, spec.record()),
    }


def export_onnx_file(
    path: str | Path, opts: ExportOptions, spec: OnnxSourceSpec | None = None, *, log: Any = None
) -> Path:
    """``genedge export MODEL.onnx --out BUNDLE``: detect (or take the named) latent, label and
    image tensors, wrap the graph, and run every export stage on it. Returns the bundle path."""
    path, spec = Path(path), spec or OnnxSourceSpec()
    model = _upgrade_opset(load_user_onnx(path), path)
    check_control_flow(model)
    io = detect_io(model, spec)
    if spec.latent_dim is not None and spec.latent_dim != io.latent.dims[1]:
        raise BadInputError(
            f"--latent-dim {spec.latent_dim}, but the graph's latent input {io.latent.shown} has "
            f"Z = {io.latent.dims[1]}.",
            hint="Drop --latent-dim (an ONNX graph fixes it), or name another --latent-input.",
        )
    gspec = validate_spec(
        GeneratorSpec(
            latent_dim=int(io.latent.dims[1]),
            num_classes=num_classes_of(model, io, spec),
            output_range=spec.output_range,
            latent_dist=spec.latent_dist,
            check_range=spec.check_range,
        )
    )
    say = log or (lambda _m: None)
    say(f"{path.name}: {matched_tensors(io)}")
    opts = dataclasses.replace(opts, source=path)
    graph = OnnxGeneratorGraph(path, model, io, gspec, opts.output_format)
    ref = graph.reference()
    probe_source(ref, gspec, path)
    if io.fixed_batch is not None:
        check_dynamic_batch(graph, ref)
        say(
            f"{path.name}: fixed batch {io.fixed_batch} made dynamic (checked: batch 3 gives "
            "what the original gives sample by sample)"
        )
    cfg = config_for(gspec, _chw(io))

    def load() -> LoadedModel:
        return LoadedModel(
            None, cfg, "gan", [(image_graph_spec_for(cfg, opts.output_format), graph)]
        )

    return export_source(opts, onnx_source(path, gspec, io), load, log=say)


def matched_tensors(io: OnnxIO) -> str:
    """Which of the user's tensors genedge drives, in one line."""
    label = f", label {io.label.shown}" if io.label else ", no label"
    return f"latent {io.latent.shown}{label}, image {io.image.shown} ({io.layout})"

"""Checkpoint -> ONNX: trace each graph wrapper, check, infer shapes, simplify, save.

Uses torch's TorchScript-based exporter (``dynamo=False``): in torch 2.13 it is still
available, exports these small conv/GRU/LSTM graphs in under a second with exact I/O
names and ``dynamic_axes``, and needs no onnxscript. Opset >= 17.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

from genedge.errors import CorruptArtifactError
from genedge.export.rewrites.deconv import dense_first_layers
from genedge.export.routes.graph_spec import GraphSpec, example_feed
from genedge.export.stages.fp16 import name_nodes
from genedge.lazy import lazy_import

torch = lazy_import("torch")
onnx = lazy_import("onnx")
onnxslim = lazy_import("onnxslim")

PROTOBUF_LIMIT = 2**31 - 1
EXTERNAL_DATA_THRESHOLD = 1_800_000_000  # bytes of initializers; leave headroom under 2 GiB


def load_generator(checkpoint: str | Path) -> tuple[Any, Any, str]:
    """Load a checkpoint and refuse non-finite weights: returns ``(model, config, kind)``."""
    from genedge.train.checkpoint import load_checkpoint

    model, cfg = load_checkpoint(checkpoint)
    check_finite_weights(model, checkpoint)
    return model, cfg, model.kind


def check_finite_weights(model: Any, where: str | Path) -> None:
    """Raise CorruptArtifactError naming every tensor holding NaN or Inf."""
    bad = [
        k
        for k, v in model.state_dict().items()
        if v.is_floating_point() and not torch.isfinite(v).all()
    ]
    if bad:
        shown = ", ".join(bad[:8]) + (f" (+{len(bad) - 8} more)" if len(bad) > 8 else "")
        raise CorruptArtifactError(
            f"Checkpoint '{where}' holds NaN/Inf weights in: {shown}.",
            hint="Training diverged; export an earlier checkpoint or retrain with a lower learning rate.",
        )


def onnx_from_module(wrapper: Any, spec: GraphSpec, *, opset: int = 17):
    """Trace ``wrapper`` into a checked, shape-inferred, simplified ``onnx.ModelProto``.

    Inputs/outputs are named per ``spec`` with batch dimension ``"B"``.
    """
    feed = example_feed(spec)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            wrapper.eval(),
            tuple(feed.values()),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs],
            dynamic_axes=spec.dynamic_axes(),
            do_constant_folding=True,
        )
    return finish_model(_load_bytes(buf.getvalue()), spec)


def _load_bytes(data: bytes):
    return onnx.load_from_string(data)


def finish_model(model, spec: GraphSpec):
    """Simplify with onnxslim, rewrite 1x1 ConvTranspose layers as Gemm, then check, infer
    shapes and restore the symbolic batch names."""
    model = slim_model(model)
    dense_first_layers(model)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    _name_batch_dims(model, spec)
    name_nodes(model)
    if model.ByteSize() < PROTOBUF_LIMIT:
        onnx.checker.check_model(model, full_check=True)
    return model


def slim_model(model):
    """onnxslim: constant folding, dead-node removal, fusion. Returns the simplified model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return onnxslim.slim(model)


def _name_batch_dims(model, spec: GraphSpec) -> None:
    declared = {t.name: t for t in spec.inputs + spec.outputs}
    for vi in list(model.graph.input) + list(model.graph.output):
        t = declared.get(vi.name)
        if t is None:
            raise AssertionError(f"exported graph has undeclared I/O {vi.name!r}")
        for d, want in zip(vi.type.tensor_type.shape.dim, t.shape, strict=False):
            if want == "B":
                d.dim_param = "B"


def save_onnx(
    model, path: str | Path, *, external_threshold: int = EXTERNAL_DATA_THRESHOLD
) -> list[Path]:
    """Write ``model`` to ``path``; initializers go to ``<path>.data`` above the threshold.

    Returns the files written (the .onnx, then the .onnx.data if any).
    """
    path = Path(path)
    weights = sum(len(t.raw_data) for t in model.graph.initializer)
    if weights <= external_threshold:
        onnx.save_model(model, str(path))
        return [path]
    data = path.with_name(path.name + ".data")
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=1024,
    )
    onnx.checker.check_model(str(path))
    return [path, data]


def onnx_from_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, *, output_format: str = "uint8", opset: int = 17
) -> dict[str, Path]:
    """Export every graph of ``checkpoint`` into ``out_dir`` (fp32, unverified): {graph: path}.

    ``export_bundle`` is the verified path; this is the bare conversion.
    """
    from genedge.export.routes.wrappers import graphs_for  # nn.Module subclasses: torch

    model, cfg, kind = load_generator(checkpoint)
    paths = {}
    for spec, wrapper in graphs_for(kind, model, cfg, output_format):
        paths[spec.name] = save_onnx(
            onnx_from_module(wrapper, spec, opset=opset), Path(out_dir) / f"{spec.stem}.onnx"
        )[0]
    return paths

"""``--triton DIR``: a Triton Inference Server model repository serving the bundle's graphs.

Layout: ``DIR/<name>/config.pbtxt`` and ``DIR/<name>/1/model.onnx`` (ONNX Runtime backend);
``DIR/<name>_trt/1/model.plan`` for a TensorRT engine. Batch is Triton's implicit first
dimension (``max_batch_size``), so dims below exclude it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from genedge.atomic import atomic_path, atomic_write_text
from genedge.manifest import Artifact, GraphIO, Manifest, TensorSpec
from genedge.outputs import check_output_file

TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "uint8": "TYPE_UINT8",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "int8": "TYPE_INT8",
}


def _tensor_block(t: TensorSpec, batch_dim: int) -> str:
    dims = ["-1" if d == "B" else str(d) for i, d in enumerate(t.shape) if i != batch_dim]
    dims = dims or ["1"]  # a (B,) tensor is one scalar per request...
    reshape = (
        "\n    reshape: { shape: [ ] }" if batch_dim == 0 and len(t.shape) == 1 else ""
    )  # ...of shape ()
    return (
        f'  {{\n    name: "{t.name}"\n    data_type: {TRITON_DTYPES[t.dtype]}\n'
        f"    dims: [ {', '.join(dims)} ]{reshape}\n  }}"
    )


def batch_axis(graph: GraphIO) -> int | None:
    """Index of ``"B"`` if it is the first axis of every tensor (Triton batching), else None."""
    tensors = graph.inputs + graph.outputs
    return 0 if all(t.shape and t.shape[0] == "B" for t in tensors) else None


def config_pbtxt(
    name: str,
    graph: GraphIO,
    *,
    platform: str,
    max_batch_size: int,
    instances: int = 1,
    kind: str = "KIND_CPU",
    preferred: tuple[int, ...] = (),
) -> str:
    """Text ``config.pbtxt`` for one model (ModelConfig protobuf text format)."""
    axis = batch_axis(graph)
    mbs = max_batch_size if axis == 0 else 0
    bd = 0 if axis == 0 else -1
    inputs = ",\n".join(_tensor_block(t, bd) for t in graph.inputs)
    outputs = ",\n".join(_tensor_block(t, bd) for t in graph.outputs)
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {mbs}",
        f"input [\n{inputs}\n]",
        f"output [\n{outputs}\n]",
    ]
    if mbs:
        pref = (
            f"\n  preferred_batch_size: [ {', '.join(map(str, preferred))} ]" if preferred else ""
        )
        lines.append(f"dynamic_batching {{{pref}\n  max_queue_delay_microseconds: 100\n}}")
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]")
    return "\n".join(lines) + "\n"


def write_triton_repository(
    bundle: Path,
    repo: Path,
    manifest: Manifest,
    *,
    max_batch_size: int = 32,
    precision: str = "fp32",
) -> list[Path]:
    """Write model folders for the bundle's ONNX graphs (and engines) into ``repo``; return config paths.

    Graphs whose batch is not the leading axis (the ``ar`` step state ``(L, B, H)``) are served
    with ``max_batch_size: 0`` (explicit full shapes).
    """
    written = []
    name = Path(bundle).name
    for art in manifest.artifacts:
        graph = manifest.graphs.get(art.graph)
        if graph is None or art.precision != precision and art.format != "engine":
            continue
        if art.format == "onnx" and art.precision == precision:
            model_name, platform, file, kind = (
                f"{name}_{art.graph}",
                "onnxruntime_onnx",
                "model.onnx",
                "KIND_CPU",
            )
        elif art.format == "engine":
            model_name = f"{name}_{art.graph}_{art.precision}_trt"
            platform, file, kind = "tensorrt_plan", "model.plan", "KIND_GPU"
        else:
            continue
        config = config_pbtxt(
            model_name,
            graph,
            platform=platform,
            max_batch_size=_mbs(art, max_batch_size),
            kind=kind,
        )
        written.append(
            _write_model(repo / model_name, manifest.path_of(art, verify=False), file, config)
        )
    return written


def _mbs(art: Artifact, default: int) -> int:
    profiles = art.engine.profiles if art.engine else ()
    return min(p[2] for p in profiles) if profiles else default


def _write_model(folder: Path, src: Path, file: str, config: str) -> Path:
    data = src.with_name(src.name + ".data")
    targets = [folder / "1" / file, folder / "config.pbtxt"]
    for target in [*targets, *([folder / "1" / data.name] if data.exists() else [])]:
        check_output_file(target, flag="--triton")  # symlinks and users' files are refused
    (folder / "1").mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "1" / file) as tmp:
        shutil.copyfile(src, tmp)
    if data.exists():  # external weights keep the name the graph refers to
        with atomic_path(folder / "1" / data.name) as tmp:
            shutil.copyfile(data, tmp)
    atomic_write_text(folder / "config.pbtxt", config)
    return folder / "config.pbtxt"

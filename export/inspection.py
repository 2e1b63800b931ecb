"""``genedge inspect PATH``: what a bundle, an ONNX file or a checkpoint holds, run nowhere.

A bundle is read by ``genedge.inspection``, through the manifest's typed records alone: its
graphs' inputs and outputs, each artifact's precision, quality verdict and the CPU latency
export measured, its TensorRT engines and what they need, the source and the hashes. An ONNX
file is read with ``onnx`` (``genedge[export]``) or, without it, ONNX Runtime
(``genedge[cpu]``); a checkpoint through ``genedge.train.checkpoint``'s metadata reader
(``genedge[train]``). Heavy packages are imported only for the kind of file asked about.

``describe(path) -> dict`` is what ``--json`` prints; ``format_report`` renders it as text.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from genedge.errors import (
    BadInputError,
    CorruptArtifactError,
    IncompatibleEnvironmentError,
    MissingExtraError,
    printable,
)
from genedge.inspection import (
    bundle_report,
    config_value,
    describe_bundle,
    io_lines,
    size_text,
    wrapped,
)
from genedge.manifest import (
    MANIFEST_NAME,
    sha256_file,
)
from genedge.runtime.ort_backend import ORT_LOG_SEVERITY

CHECKPOINT_SUFFIXES = (".safetensors",)


# ---------------------------------------------------------------- what a path is
def describe(path: str | Path) -> dict[str, Any]:
    """A JSON-ready description of a bundle folder (or its manifest), ONNX file or checkpoint.

    Raises ``BadInputError`` (exit 2) for a missing path or a file of another kind,
    ``CorruptArtifactError`` (exit 2) for a damaged one, ``IntegrityError`` (exit 4) for a
    bundle the manifest reader refuses, ``IncompatibleEnvironmentError`` (exit 3) when the
    package that reads the file is not installed.
    """
    path = Path(path)
    if path.is_dir() or path.name == MANIFEST_NAME:
        return describe_bundle(path.parent if path.name == MANIFEST_NAME else path)
    if not path.exists():
        raise BadInputError(
            f"'{printable(str(path))}' does not exist.",
            hint="Pass a bundle folder, an .onnx file or a .safetensors checkpoint.",
        )
    if not path.is_file():
        raise BadInputError(f"'{printable(str(path))}' is neither a folder nor a regular file.")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return describe_onnx(path)
    if suffix in CHECKPOINT_SUFFIXES:
        return describe_checkpoint(path)
    raise BadInputError(
        f"'{printable(str(path))}' is not something genedge inspects (suffix "
        f"'{printable(suffix or '(none)', 20)}').",
        hint="Pass a bundle folder, an .onnx file or a .safetensors checkpoint.",
    )


# ---------------------------------------------------------------- ONNX files
def _onnx_or_ort() -> tuple[str, Any]:
    """``("onnx", module)``, else ``("onnxruntime", module)``, else exit 3 naming the extras."""
    import importlib

    for name in ("onnx", "onnxruntime"):
        try:
            return name, importlib.import_module(name)
        except ImportError:
            continue
    raise IncompatibleEnvironmentError(
        "Reading an ONNX file needs the Python package 'onnx' or 'onnxruntime'; neither is "
        "installed.",
        hint="Install one with: pip install 'genedge[export]' (onnx) or "
        "pip install 'genedge[cpu]' (onnxruntime)",
    )


def _not_onnx(path: Path, e: Exception) -> CorruptArtifactError:
    return CorruptArtifactError(
        f"'{printable(str(path))}' is not a valid ONNX model ({type(e).__name__}: "
        f"{printable(str(e).strip(), 200)}).",
        hint="The file is truncated or corrupt, or not ONNX; export it again.",
    )


def _onnx_dims(tensor_type: Any) -> list[int | str | None]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
        for d in tensor_type.shape.dim
    ]


def _read_with_onnx(onnx: Any, path: Path) -> dict[str, Any]:
    """I/O, opsets and weights of ``path``; external data is never opened."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # DecodeError and friends
        raise _not_onnx(path, e) from None
    if not model.HasField("graph"):
        raise _not_onnx(path, ValueError("the model has no graph"))
    g = model.graph
    weights = {t.name for t in g.initializer}

    def tensor(vi: Any) -> dict[str, Any]:
        tt = vi.type.tensor_type
        try:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        except Exception:  # undefined or a type numpy lacks (bfloat16, float8)
            try:
                dtype = onnx.helper.tensor_dtype_to_string(tt.elem_type).removeprefix(
                    "TensorProto."
                )
            except Exception:  # a number no ONNX version defines (999)
                raise _not_onnx(
                    path,
                    ValueError(
                        f"tensor '{printable(vi.name, 60)}' has element type {tt.elem_type}, "
                        "which no ONNX version defines"
                    ),
                ) from None
        return {"name": vi.name, "dtype": dtype, "shape": _onnx_dims(tt), "layout": None}

    ops: dict[str, int] = {}
    for node in g.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {
        "inputs": [tensor(vi) for vi in g.input if vi.name not in weights],
        "outputs": [tensor(vi) for vi in g.output],
        "opsets": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "nodes": len(g.node),
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "parameters": sum(math.prod(t.dims) for t in g.initializer),
        "external_data": sorted(
            {e.value for t in g.initializer for e in t.external_data if e.key == "location"}
        ),
        "reader": "onnx",
    }


_ORT_TYPES = {"float": "float32", "double": "float64", "float16": "float16", "bool": "bool"}


def _read_with_ort(ort: Any, path: Path) -> dict[str, Any]:
    """I/O of ``path`` through an ONNX Runtime CPU session (external data checked first)."""
    from genedge.onnx_guard import check_external_data

    check_external_data(path, path.resolve().parent)
    so = ort.SessionOptions()
    so.log_severity_level = ORT_LOG_SEVERITY
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # InvalidProtobuf, Fail, InvalidGraph...
        raise _not_onnx(path, e) from None

    def tensor(t: Any) -> dict[str, Any]:
        elem = t.type.removeprefix("tensor(").removesuffix(")")
        return {
            "name": t.name,
            "dtype": _ORT_TYPES.get(elem, elem),
            "shape": list(t.shape),
            "layout": None,
        }

    meta = sess.get_modelmeta()
    return {
        "inputs": [tensor(t) for t in sess.get_inputs()],
        "outputs": [tensor(t) for t in sess.get_outputs()],
        "producer": (meta.producer_name or "").strip(),
        "reader": "onnxruntime",
    }


def describe_onnx(path: Path) -> dict[str, Any]:
    """An ONNX file's inputs, outputs and (with ``onnx``) opsets, operators and weights."""
    if path.stat().st_size == 0:
        raise CorruptArtifactError(f"ONNX file '{printable(str(path))}' is empty (0 bytes).")
    reader, module = _onnx_or_ort()
    info = _read_with_onnx(module, path) if reader == "onnx" else _read_with_ort(module, path)
    return {
        "type": "onnx",
        "path": str(path),
        "size": path.stat().st_size,
        "sha256": sha256_file(path),
        **info,
    }


# ---------------------------------------------------------------- checkpoints
def _checkpoint_io(kind: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The generator's call signature in torch (docs: ``model(z, labels)``)."""
    if kind == "ar":
        v = cfg.get("vocab_size") or len(cfg.get("vocab", ""))  # transformer, or RNN's characters
        ids = "input_ids" if cfg.get("arch") == "transformer" else "token"
        return {
            "inputs": [{"name": ids, "dtype": "int64", "shape": ["B", "T"], "layout": None}],
            "outputs": [
                {"name": "logits", "dtype": "float32", "shape": ["B", "T", v], "layout": None}
            ],
        }
    z = {"name": "z", "dtype": "float32", "shape": ["B", cfg.get("latent_dim")], "layout": None}
    inputs = [z]
    if cfg.get("num_classes"):
        inputs.append({"name": "labels", "dtype": "int64", "shape": ["B"], "layout": None})
    size = cfg.get("image_size")
    image = {
        "name": "image",
        "dtype": "float32",
        "shape": ["B", cfg.get("channels"), size, size],
        "layout": "NCHW",
    }
    return {"inputs": inputs, "outputs": [image]}


def describe_checkpoint(path: Path) -> dict[str, Any]:
    """A genedge checkpoint's kind, config, step and tensors, read from its header."""
    import dataclasses

    try:
        from genedge.train.checkpoint import read_checkpoint_info
    except ImportError as e:
        missing = (e.name or "torch").split(".")[0]
        raise MissingExtraError(missing, "train", purpose="reading a checkpoint") from e
    info = read_checkpoint_info(path)
    cfg = dataclasses.asdict(info.config)
    tensors = _safetensors_tensors(path)
    return {
        "type": "checkpoint",
        "path": str(path),
        "kind": info.kind,
        "step": info.step,
        "config": cfg,
        **_checkpoint_io(info.kind, cfg),
        "tensors": len(tensors),
        "parameters": sum(math.prod(shape) for _, shape in tensors),
        "dtypes": sorted({dtype for dtype, _ in tensors}),
        "producer": {"genedge": info.meta.get("genedge")},
        "size": path.stat().st_size,
        "sha256": sha256_file(path),
    }


# safetensors' dtype codes -> the numpy names the rest of genedge prints
_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
_SAFETENSORS_DTYPES |= {"I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8"}
_SAFETENSORS_DTYPES |= {"U8": "uint8", "BOOL": "bool"}


def _safetensors_tensors(path: Path) -> list[tuple[str, list[int]]]:
    """``(dtype, shape)`` of every tensor in the file's header (no tensor is loaded)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        out = []
        for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            s = f.get_slice(name)
            code = str(s.get_dtype())
            out.append((_SAFETENSORS_DTYPES.get(code, code), list(s.get_shape())))
    return out


def _onnx_report(d: dict[str, Any]) -> list[str]:
    lines = [f"ONNX file  {printable(d['path'], 80)}  ({size_text(d['size'])})"]
    lines.append(f"sha256     {d['sha256']}")
    if d.get("producer"):
        lines.append(f"producer   {printable(d['producer'], 60)}")
    if "opsets" in d:
        opsets = ", ".join(f"{printable(k, 30)} {v}" for k, v in d["opsets"].items())
        lines.append(f"opsets     {opsets} (IR version {d['ir_version']})")
        ops = ", ".join(f"{printable(k, 30)} x{v}" for k, v in list(d["ops"].items())[:8])
        more = " ..." if len(d["ops"]) > 8 else ""
        lines.append(f"graph      {d['nodes']} nodes: {ops}{more}")
        lines.append(f"weights    {d['parameters']:,} parameters")
        if d["external_data"]:
            files = ", ".join(printable(f, 40) for f in d["external_data"][:4])
            lines.append(f"external   tensor data in {files}")
    lines.append("inputs and outputs")
    lines += io_lines(d["inputs"], d["outputs"])
    if "opsets" not in d:
        lines.append("  (read with onnxruntime; install genedge[export] for opsets and operators)")
    return lines


def _checkpoint_report(d: dict[str, Any]) -> list[str]:
    lines = [f"checkpoint {printable(d['path'], 80)}  ({size_text(d['size'])})"]
    lines.append(f"kind       {d['kind']}, step {d['step']}, genedge {d['producer']['genedge']}")
    lines += wrapped("config", [f"{k} {config_value(k, v)}" for k, v in d["config"].items()])
    lines.append(
        f"weights    {d['tensors']} tensors, {d['parameters']:,} parameters "
        f"({', '.join(d['dtypes'])})"
    )
    lines.append("model call (torch)")
    lines += io_lines(d["inputs"], d["outputs"])
    lines.append(f"sha256     {d['sha256']}")
    return lines


def format_report(d: dict[str, Any]) -> str:
    """``describe``'s result as lines for a terminal (under 100 columns for usual names)."""
    render = {"bundle": bundle_report, "onnx": _onnx_report, "checkpoint": _checkpoint_report}
    return "\n".join(render[d["type"]](d))


def inspect_command(args: argparse.Namespace) -> int:
    info = describe(args.path)
    if args.json:  # ensure_ascii: every control or bidi character is written as \uXXXX
        print(json.dumps(info, indent=2, ensure_ascii=True))
    else:  # each line once more through printable: no field can reach the terminal raw
        print("\n".join(printable(line, None) for line in format_report(info).splitlines()))
    return 0

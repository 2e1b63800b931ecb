"""``genedge inspect PATH``: what a bundle, an ONNX file or a checkpoint holds, run nowhere.

A bundle is read through ``genedge.manifest``'s typed records alone (no extra needed): its
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
import textwrap
from pathlib import Path
from typing import Any

from genedge.errors import (
    BadInputError,
    CorruptArtifactError,
    IncompatibleEnvironmentError,
    MissingExtraError,
    printable,
)
from genedge.manifest import (
    MANIFEST_NAME,
    Artifact,
    EngineRecord,
    GraphIO,
    Manifest,
    Speed,
    TensorSpec,
    Verification,
    read_manifest,
    sha256_file,
)

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


# ---------------------------------------------------------------- bundles
def _tensor(t: TensorSpec) -> dict[str, Any]:
    return {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "layout": t.layout}


def _graph(g: GraphIO) -> dict[str, Any]:
    return {"inputs": [_tensor(t) for t in g.inputs], "outputs": [_tensor(t) for t in g.outputs]}


def _speed(s: Speed | None) -> dict[str, Any] | None:
    if s is None:
        return None
    batch = {
        str(b): {"p50_ms": r.p50_ms, "speedup_vs_fp32": r.speedup_vs_fp32}
        for b, r in sorted(s.batch.items())
    }
    others = {k: {str(b): ms for b, ms in sorted(v.items())} for k, v in s.others.items()}
    return {
        "backend": s.backend,
        "machine": s.machine,
        "threads": s.threads,
        "batch": batch,
        "others": others,
        "busy": s.busy,
    }


def _hinted(a: Artifact) -> list[dict[str, Any]]:
    """The precisions a backend runs ``a`` (an fp32 file) in by hint, e.g. OpenVINO's bf16."""
    if a.inference_precisions is None:
        return []
    rows = []
    for prec, rec in a.inference_precisions.entries.items():
        row = _precision(a, rec.verification)
        row.update(precision=prec, backend=rec.backend, quality_approved=rec.quality_approved)
        row.update(kept_float=None, speed=None)
        rows.append(row)
    return rows


def _precision(a: Artifact, v: Verification | None = None) -> dict[str, Any]:
    v = a.verification if v is None else v
    return {
        "file": a.file,
        "graph": a.graph,
        "precision": a.precision,
        "verdict": v.verdict,
        "quality_approved": a.quality_approved,
        "max_abs_err_vs_torch": v.max_abs_err_vs_torch,
        "max_abs_err_vs_fp32": v.max_abs_err_vs_fp32,
        "psnr_vs_fp32": v.psnr_vs_fp32,
        "ssim_vs_fp32": v.ssim_vs_fp32,
        "metrics": dict(v.metrics),
        "metrics_fp32": dict(v.metrics_fp32),
        "metric_drop": v.metric_drop,
        "metric_budget": v.metric_budget,
        "samples": v.samples,
        "checks": list(v.checks),
        "reason": v.reason,
        "kept_float": len(a.recipe.kept_float or ()) if a.recipe else None,
        "speed": _speed(a.speed),
    }


def _engine(a: Artifact, e: EngineRecord) -> dict[str, Any]:
    return {
        "file": a.file,
        "graph": a.graph,
        "precision": a.precision,
        "tensorrt_version": e.tensorrt_version,
        "compute_capability": e.compute_capability,
        "device_name": e.device_name,
        "profiles": [list(p) for p in e.profiles],
        "version_compatible": e.version_compatible,
        "dla_core": e.dla_core,
        "built_from": e.built_from,
        "path": e.path,
    }


def describe_bundle(root: Path) -> dict[str, Any]:
    """A bundle as its manifest records it (files listed are checked to exist, not hashed)."""
    m: Manifest = read_manifest(root)
    onnx = [a for a in m.artifacts if a.format == "onnx"]
    return {
        "type": "bundle",
        "path": str(root),
        "kind": m.kind,
        "schema_version": m.schema_version,
        "model": m.model.to_dict(),
        "graphs": {name: _graph(g) for name, g in m.graphs.items()},
        "precisions": [row for a in onnx for row in (_precision(a), *_hinted(a))],
        "engines": [_engine(a, a.engine) for a in m.artifacts if a.engine is not None],
        "skipped": dict(m.source.get("skipped", {}) or {}),
        "source": m.source.to_dict(),
        "producer": m.producer.to_dict(),
        "files": [
            {"file": a.file, "format": a.format, "size": a.size, "sha256": a.sha256}
            for a in m.artifacts
        ],
    }


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
    from onnx import helper

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
            dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        except Exception:  # undefined or a type numpy lacks (bfloat16, float8)
            try:
                dtype = helper.tensor_dtype_to_string(tt.elem_type).removeprefix("TensorProto.")
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
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
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


# ---------------------------------------------------------------- text report
def _dims(shape: list[Any]) -> str:
    return "[" + ", ".join("?" if d is None else printable(str(d), 40) for d in shape) + "]"


def _io_lines(inputs: list[dict], outputs: list[dict], indent: str = "  ") -> list[str]:
    rows = [("in", t) for t in inputs] + [("out", t) for t in outputs]
    width = max((len(printable(t["name"], 40)) for _, t in rows), default=0)
    return [
        f"{indent}{side:<4}{printable(t['name'], 40):<{width}}  {t['dtype']:<8} "
        f"{_dims(t['shape'])}{'  ' + t['layout'] if t.get('layout') else ''}"
        for side, t in rows
    ]


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _speed_cell(speed: dict[str, Any] | None, batch: str) -> str:
    rec = (speed or {}).get("batch", {}).get(batch)
    if not rec:
        return "-"
    ratio = rec.get("speedup_vs_fp32")
    return f"{rec['p50_ms']:.3f} ms" + (f" ({ratio:.2f}x)" if ratio is not None else "")


def _precision_lines(precisions: list[dict]) -> list[str]:
    batches = sorted(
        {b for p in precisions for b in ((p["speed"] or {}).get("batch") or {})}, key=int
    )[:2]
    head = f"  {'precision':<10}{'file':<22}{'verdict':<8}{'approved':<9}{'PSNR':>8}{'SSIM':>7}"
    head += "".join(f"{'p50 batch ' + b:>18}" for b in batches)
    lines = [head]
    for p in precisions:
        approved = "yes" if p["quality_approved"] else ("-" if p["precision"] == "fp32" else "no")
        psnr = _num(p["psnr_vs_fp32"], ".1f") + (" dB" if p["psnr_vs_fp32"] is not None else "")
        file = p["file"] + (f" ({p['backend']})" if p.get("backend") else "")
        line = f"  {p['precision'] or '-':<10}{printable(file, 21):<22}"
        line += f"{p['verdict'] or '-':<8}{approved:<9}{psnr:>8}{_num(p['ssim_vs_fp32'], '.4f'):>7}"
        line += "".join(f"{_speed_cell(p['speed'], b):>18}" for b in batches)
        lines.append(line)
        if p.get("checks") or p.get("metrics"):
            text = f"checks: {_checks_line(p)}"
            lines += textwrap.wrap(text, 96, initial_indent="    ", subsequent_indent="      ")
    speeds = [p["speed"] for p in precisions if p["speed"]]
    if speeds:
        s = speeds[0]
        lines.append(
            f"  p50: median latency measured at export on {s['backend']} "
            f"({printable(s['machine'], 40) or 'machine not recorded'}); (Nx): speed-up over fp32"
        )
        lines += _other_backend_lines(precisions, batches)
        if s.get("busy"):
            lines += [
                "  measured while other processes competed for the CPUs: backend='auto' does not",
                "  choose by it (run `genedge tune` on the machine that samples)",
            ]
    return lines


def _other_backend_lines(precisions: list[dict], batches: list[str]) -> list[str]:
    """``openvino  fp32 0.131 / 0.71 ms, int8 ...``: the other CPU backends export timed."""
    found: dict[str, list[str]] = {}
    for p in precisions:
        for backend, p50 in ((p["speed"] or {}).get("others") or {}).items():
            times = " / ".join(f"{p50[b]:.3f}" if b in p50 else "-" for b in batches)
            found.setdefault(backend, []).append(f"{p['precision']} {times} ms")
    lines = []
    for k, v in found.items():
        text = f"{printable(k, 20)} p50 (batch {' / '.join(batches)}): {', '.join(v)}"
        lines += textwrap.wrap(text, 96, initial_indent="  ", subsequent_indent="    ")
    return lines


def _checks_line(p: dict[str, Any]) -> str:
    """What a verdict rests on: the checks, the task metrics, the gate's reason."""
    from .verdicts import checks_text, metric_text

    parts = [checks_text(p.get("checks") or []) or "not recorded"]
    metrics = metric_text(
        Verification(metrics=p["metrics"], metrics_fp32=p.get("metrics_fp32", {}))
    )
    if metrics:
        parts.append(metrics)
    if p.get("reason"):
        parts.append(printable(p["reason"], 300))
    return "; ".join(parts)


def _engine_lines(engines: list[dict]) -> list[str]:
    if not engines:
        return ["  none (build them with `genedge export ... --trt` on the target GPU)"]
    lines = []
    for e in engines:
        profiles = ", ".join(":".join(str(b) for b in p) for p in e["profiles"]) or "-"
        where = f"sm {e['compute_capability']}"
        if e["device_name"]:
            where += f" ({printable(e['device_name'], 40)})"
        lines.append(
            f"  {printable(e['file'], 40)}  {e['precision'] or '-'}: TensorRT "
            f"{printable(e['tensorrt_version'], 20)}, {where}, batch {profiles}"
            + (", version-compatible" if e["version_compatible"] else "")
            + (f", DLA core {e['dla_core']}" if e["dla_core"] is not None else "")
        )
    lines.append(
        "  an engine runs only with that TensorRT version on a GPU of that compute capability"
    )
    return lines


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _source_line(source: dict[str, Any]) -> str:
    kind = source.get("type", "checkpoint")
    name = source.get("path") or source.get("checkpoint") or source.get("module")
    name = name or source.get("onnx") or "-"
    key = next(
        (
            k
            for k in ("checkpoint_sha256", "weights_sha256", "onnx_sha256", "sha256")
            if k in source
        ),
        None,
    )
    text = f"{kind} {printable(str(name), 60)}"
    return text + (f"  {key} {printable(str(source[key]), 16)}" if key else "")


def _value(key: str, value: Any) -> str:
    """A config value for the report; the vocabulary quoted (its spaces and newlines matter)."""
    return printable(repr(value) if key == "vocab" else str(value), 60 if key == "vocab" else 30)


def _wrapped(label: str, items: list[str]) -> list[str]:
    """``label`` then ``items`` joined by commas, wrapped at 98 columns under the label.

    Each item is cut to a line's length first: textwrap splits an over-long word by
    repeated slicing, which is quadratic (a 15 MiB manifest key took minutes).
    """
    import textwrap

    return textwrap.wrap(
        ", ".join(printable(item, 98) for item in items) or "-",
        width=98,
        initial_indent=f"{label:<11}",
        subsequent_indent=" " * 11,
        break_on_hyphens=False,
    )


def _bundle_report(d: dict[str, Any]) -> list[str]:
    lines = [
        f"bundle     {printable(d['path'], 80)}  (kind {d['kind']}, schema {d['schema_version']})"
    ]
    model = {k: v for k, v in d["model"].items() if not isinstance(v, (dict, list))}
    lines += _wrapped("model", [f"{k} {_value(k, v)}" for k, v in model.items()])
    for name, g in d["graphs"].items():
        lines.append(f"graph {printable(name, 40)}")
        lines += _io_lines(g["inputs"], g["outputs"])
    lines.append("precisions")
    lines += _precision_lines(d["precisions"])
    for precision, why in d["skipped"].items():
        lines.append(f"  {printable(precision, 10)} skipped: {printable(str(why), 80)}")
    lines.append("TensorRT engines")
    lines += _engine_lines(d["engines"])
    lines.append(f"source     {_source_line(d['source'])}")
    lines += _wrapped(
        "producer", [f"{k} {printable(str(v), 20)}" for k, v in d["producer"].items()]
    )
    lines.append("files")
    width = max((len(printable(f["file"], 40)) for f in d["files"]), default=0)
    for f in d["files"]:
        lines.append(
            f"  {printable(f['file'], 40):<{width}}  {f['format']:<9}{_size(f['size']):>10}  "
            f"sha256 {f['sha256'][:16]}"
        )
    return lines


def _onnx_report(d: dict[str, Any]) -> list[str]:
    lines = [f"ONNX file  {printable(d['path'], 80)}  ({_size(d['size'])})"]
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
    lines += _io_lines(d["inputs"], d["outputs"])
    if "opsets" not in d:
        lines.append("  (read with onnxruntime; install genedge[export] for opsets and operators)")
    return lines


def _checkpoint_report(d: dict[str, Any]) -> list[str]:
    lines = [f"checkpoint {printable(d['path'], 80)}  ({_size(d['size'])})"]
    lines.append(f"kind       {d['kind']}, step {d['step']}, genedge {d['producer']['genedge']}")
    lines += _wrapped("config", [f"{k} {_value(k, v)}" for k, v in d["config"].items()])
    lines.append(
        f"weights    {d['tensors']} tensors, {d['parameters']:,} parameters "
        f"({', '.join(d['dtypes'])})"
    )
    lines.append("model call (torch)")
    lines += _io_lines(d["inputs"], d["outputs"])
    lines.append(f"sha256     {d['sha256']}")
    return lines


def format_report(d: dict[str, Any]) -> str:
    """``describe``'s result as lines for a terminal (under 100 columns for usual names)."""
    render = {"bundle": _bundle_report, "onnx": _onnx_report, "checkpoint": _checkpoint_report}
    return "\n".join(render[d["type"]](d))


def inspect_command(args: argparse.Namespace) -> int:
    info = describe(args.path)
    if args.json:  # ensure_ascii: every control or bidi character is written as \uXXXX
        print(json.dumps(info, indent=2, ensure_ascii=True))
    else:  # each line once more through printable: no field can reach the terminal raw
        print("\n".join(printable(line, None) for line in format_report(info).splitlines()))
    return 0

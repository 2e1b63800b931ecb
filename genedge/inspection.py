"""What a bundle holds, read from its manifest's typed records alone: ``genedge inspect``'s
bundle half (``describe_bundle`` for ``--json``, ``bundle_report`` for the terminal), and the
text helpers its ONNX and checkpoint halves share (``genedge.export.inspection``).

Nothing here runs a graph or imports a heavy package; every string taken from the manifest goes
through ``printable``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from genedge.errors import printable
from genedge.manifest import (
    Artifact,
    EngineRecord,
    GraphIO,
    Manifest,
    Speed,
    TensorSpec,
    Verification,
    read_manifest,
)
from genedge.verdicts import checks_text, metric_text


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


# ---------------------------------------------------------------- text report
def dims_text(shape: list[Any]) -> str:
    return "[" + ", ".join("?" if d is None else printable(str(d), 40) for d in shape) + "]"


def io_lines(inputs: list[dict], outputs: list[dict], indent: str = "  ") -> list[str]:
    rows = [("in", t) for t in inputs] + [("out", t) for t in outputs]
    width = max((len(printable(t["name"], 40)) for _, t in rows), default=0)
    return [
        f"{indent}{side:<4}{printable(t['name'], 40):<{width}}  {t['dtype']:<8} "
        f"{dims_text(t['shape'])}{'  ' + t['layout'] if t.get('layout') else ''}"
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


def size_text(n: int) -> str:
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


def config_value(key: str, value: Any) -> str:
    """A config value for the report; the vocabulary quoted (its spaces and newlines matter)."""
    return printable(repr(value) if key == "vocab" else str(value), 60 if key == "vocab" else 30)


def wrapped(label: str, items: list[str]) -> list[str]:
    """``label`` then ``items`` joined by commas, wrapped at 98 columns under the label.

    Each item is cut to a line's length first: textwrap splits an over-long word by
    repeated slicing, which is quadratic (a 15 MiB manifest key took minutes).
    """
    return textwrap.wrap(
        ", ".join(printable(item, 98) for item in items) or "-",
        width=98,
        initial_indent=f"{label:<11}",
        subsequent_indent=" " * 11,
        break_on_hyphens=False,
    )


def bundle_report(d: dict[str, Any]) -> list[str]:
    lines = [
        f"bundle     {printable(d['path'], 80)}  (kind {d['kind']}, schema {d['schema_version']})"
    ]
    model = {k: v for k, v in d["model"].items() if not isinstance(v, (dict, list))}
    lines += wrapped("model", [f"{k} {config_value(k, v)}" for k, v in model.items()])
    for name, g in d["graphs"].items():
        lines.append(f"graph {printable(name, 40)}")
        lines += io_lines(g["inputs"], g["outputs"])
    lines.append("precisions")
    lines += _precision_lines(d["precisions"])
    for precision, why in d["skipped"].items():
        lines.append(f"  {printable(precision, 10)} skipped: {printable(str(why), 80)}")
    lines.append("TensorRT engines")
    lines += _engine_lines(d["engines"])
    lines.append(f"source     {_source_line(d['source'])}")
    lines += wrapped("producer", [f"{k} {printable(str(v), 20)}" for k, v in d["producer"].items()])
    lines.append("files")
    width = max((len(printable(f["file"], 40)) for f in d["files"]), default=0)
    for f in d["files"]:
        lines.append(
            f"  {printable(f['file'], 40):<{width}}  {f['format']:<9}{size_text(f['size']):>10}  "
            f"sha256 {f['sha256'][:16]}"
        )
    return lines

"""``genedge export``: argparse namespace -> ExportOptions -> ``export_bundle``, with a rich display."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genedge.atomic import atomic_write_text
from genedge.errors import MESSAGE_CHARS, printable
from genedge.export.checks.evaluate import evaluate_bundle
from genedge.export.checks.text_eval import eval_text_command, is_text_bundle
from genedge.export.dispatch import export_from_args
from genedge.export.options import ExportOptions, parse_profiles
from genedge.limits import MAX_EVAL_SAMPLES, check_count
from genedge.manifest import Manifest, read_manifest
from genedge.verdicts import checks_text, gate_lines, metric_text


def options_from_args(args: argparse.Namespace) -> ExportOptions:
    """Map the CLI flags onto ExportOptions (validation happens in ``export_bundle``)."""
    return ExportOptions(
        source=Path(args.checkpoint or args.weights or ""),
        out=Path(args.out),
        module=args.module,
        precisions=tuple(args.precision),
        calib_method=args.calib_method,
        calib_samples=args.calib_samples,
        calib_data=args.calib_data,
        eval_data=args.eval_data,
        truncation=args.truncation,
        max_quality_drop=args.max_quality_drop,
        min_psnr=args.min_psnr,
        output_format=args.output_format,
        opset=args.opset,
        trt=args.trt,
        profiles=parse_profiles(args.trt_profile),
        workspace_mb=args.workspace_mb,
        trt_path=args.trt_path,
        dla_core=args.dla_core,
        version_compatible=args.version_compatible,
        triton=Path(args.triton) if args.triton else None,
        seed=args.seed,
        force=args.force,
    )


SUMMARY_WIDTH = 140  # columns of the summary table when stdout is not a terminal


def export_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    opts = options_from_args(args)
    console = Console(stderr=True, log_path=False)  # a source-file column helps no user
    with console.status("exporting...") as status:

        def log(msg: str) -> None:  # messages carry names from files: escaped, never markup
            msg = printable(msg, MESSAGE_CHARS)
            console.log(msg, markup=False, highlight=False)
            status.update(escape(msg))

        out = export_from_args(args, opts, log)
    out_console = Console()
    if not out_console.is_terminal:  # a pipe or a log file: no width to fit, so none to cut
        out_console = Console(width=SUMMARY_WIDTH)
    manifest = read_manifest(out)
    out_console.print(summary_table(manifest))
    for line in gate_lines(manifest):
        out_console.print(line, markup=False, highlight=False)
    return 0


def eval_bundle_command(args: argparse.Namespace) -> int:
    """`genedge eval BUNDLE`: re-run the quality metrics on a bundle's artifacts."""
    if args.num_samples is not None:  # a bad flag is named before the bundle is read
        check_count(
            "eval -n", args.num_samples, MAX_EVAL_SAMPLES, "evaluation keeps every sample in memory"
        )
    manifest = read_manifest(Path(args.target))
    if is_text_bundle(manifest):  # perplexity on --data, per precision
        return eval_text_command(args, manifest)
    metrics = evaluate_bundle(
        Path(args.target),
        precisions=args.precision,
        n=args.num_samples,
        seed=args.seed,
        data=args.data,
    )
    for record in metrics["artifacts"].values():  # the runtime's backend names, everywhere
        record["backend"] = _BACKEND_NAMES.get(record.get("backend"), record.get("backend"))
    print(bundle_metrics_text(metrics))
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(metrics, indent=2, default=str) + "\n")
    return 0


_BACKEND_NAMES = {"onnxruntime-cpu": "ort-cpu", "onnxruntime-cuda": "ort-cuda"}


def bundle_metrics_text(metrics: dict) -> str:
    """``evaluate_bundle``'s result as ``genedge eval CKPT`` prints its own: one block per
    artifact, one metric per line."""
    lines = [
        f"metrics of {printable(metrics['bundle'], None)} "
        f"({metrics['kind']}, {metrics['n']} samples, seed {metrics['seed']})"
    ]
    for file, record in metrics["artifacts"].items():
        lines.append(f"{printable(file)} ({record.get('precision')}, {record.get('backend')})")
        flat = {k: v for k, v in record.items() if k not in ("precision", "backend", "metrics")}
        flat.update(record.get("metrics") or {})
        width = max((len(k) for k in flat), default=6)
        for k, v in flat.items():
            shown = f"{v:.4f}" if isinstance(v, float) else printable(str(v))
            lines.append(f"  {k:<{width}}  {shown}")
        if not flat:
            lines.append("  (none: the reference itself, and no task metric for this data)")
    return "\n".join(lines)


def summary_rows(manifest: Manifest) -> list[list[str]]:
    """One row per artifact: file, precision, size, error vs fp32/torch, PSNR/SSIM, task metric, verdict."""
    rows = []
    for a in manifest.artifacts:
        v = a.verification
        err = v.max_abs_err
        quality = (
            f"{v.psnr_vs_fp32:.1f} dB / {v.ssim_vs_fp32:.4f}"
            if v.psnr_vs_fp32 is not None and v.ssim_vs_fp32 is not None
            else ""
        )
        metrics = metric_text(v)
        verdict = v.verdict or ""
        if v.checks:
            verdict += f" ({checks_text(v.checks)})"
        kept = a.recipe.kept_float if a.recipe else None
        if kept:
            verdict += f" (kept float: {len(kept)})"
        rows.append(
            [
                a.file,
                a.precision or "",
                _size(a.size),
                "" if err is None else _err_text(manifest, a.graph, err),
                quality,
                metrics,
                verdict,
            ]
        )
    return rows


def _err_text(manifest: Manifest, graph: str, err: float) -> str:
    """A max abs error with its scale: uint8 images err in pixel levels of 255."""
    g = manifest.graphs.get(graph)
    uint8 = bool(g and g.outputs and g.outputs[0].dtype == "uint8")
    return f"{err:.3g} of 255" if uint8 else f"{err:.3g}"


def summary_table(manifest: Manifest):
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    source = manifest.source
    origin = (
        source.get("checkpoint")
        or source.get("module")
        or source.get("onnx")
        or source.get("folder")
    )
    table = Table(title=escape(f"bundle ({manifest.kind}, from {printable(origin)})"))
    table.add_column("artifact", no_wrap=True)
    for col in ("precision", "size", "max err", "PSNR / SSIM vs fp32", "task metric", "verdict"):
        table.add_column(col)
    for row in summary_rows(manifest):  # cells hold names from files: plain text, never markup
        table.add_row(*(Text(str(cell)) for cell in row))
    return table


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)

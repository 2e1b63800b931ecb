"""``genedge bench``: argparse namespace -> ``BenchOptions`` -> ``run_bench`` -> table and files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .options import BenchOptions, validate_options
from .report import BenchReport, write_json, write_markdown
from .suite import run_bench
from .table import print_report


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    def path(x: str | None) -> Path | None:
        return Path(x) if x else None

    return BenchOptions(
        bundle=Path(args.bundle),
        backends=tuple(args.backend),
        precisions=tuple(args.precision) if args.precision else None,
        batches=tuple(args.batch),
        iters=args.iters,
        seconds=args.seconds,
        warmup=args.warmup,
        threads=args.threads,
        fps=args.fps,
        fps_seconds=getattr(args, "fps_seconds", 5.0),
        baselines=tuple(args.baselines),
        checkpoint=path(args.checkpoint),
        json_out=path(args.json_out),
        markdown=path(args.markdown),
        plot=path(args.plot),
        rounds=getattr(args, "rounds", 10),
        cold_runs=getattr(args, "cold_runs", 1),
        max_new_tokens=getattr(args, "max_new_tokens", 64),
        argv=tuple(sys.argv),
    )


def write_outputs(report: BenchReport, opts: BenchOptions) -> list[Path]:
    """Write the JSON, Markdown and PNG files asked for (each atomically)."""
    written = []
    if opts.json_out:
        written.append(write_json(report, opts.json_out))
    if opts.markdown:
        written.append(write_markdown(report, opts.markdown))
    if opts.plot and report.results:
        from .plot import write_plot

        written.append(write_plot(report, opts.plot))
    return written


def bench_command(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    validate_options(opts)
    report = run_bench(opts)
    print_report(report)
    for path in write_outputs(report, opts):
        print(f"wrote {path}")
    return 0

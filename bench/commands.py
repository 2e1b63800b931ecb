"""``genedge bench``: argparse namespace -> ``BenchOptions`` -> ``run_bench`` -> table and files."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path

from genedge.interrupts import user_code

from .options import BenchOptions, validate_options
from .plot import write_plot, write_text_plot
from .report import BenchReport, is_llm_text, write_json, write_markdown
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
        module=getattr(args, "module", None),
        weights=path(getattr(args, "weights", None)),
        module_args=getattr(args, "module_args", None),
        json_out=path(args.json_out),
        markdown=path(args.markdown),
        plot=path(args.plot),
        rounds=getattr(args, "rounds", 10),
        cold_runs=getattr(args, "cold_runs", 1),
        max_new_tokens=getattr(args, "max_new_tokens", 64),
        prompt_tokens=tuple(getattr(args, "prompt_tokens", None) or (16,)),
        new_tokens=tuple(args.new_tokens) if getattr(args, "new_tokens", None) else None,
        check_targets=getattr(args, "check_targets", False),
    )


def command_line(o: BenchOptions) -> tuple[str, ...]:
    """The ``genedge bench`` command equivalent to ``o`` (recorded in the report; works
    also when the bench was started in-process, e.g. by ``genedge demo``)."""

    def csv(xs: tuple) -> str:
        return ",".join(str(x) for x in xs)

    cmd = ["genedge", "bench", str(o.bundle), "--backend", csv(o.backends)]
    if o.precisions:
        cmd += ["--precision", csv(o.precisions)]
    cmd += ["--batch", csv(o.batches)]
    cmd += ["--iters", str(o.iters)] if o.iters is not None else []
    cmd += ["--seconds", f"{o.seconds:g}"] if o.seconds is not None else []
    cmd += ["--warmup", str(o.warmup), "--rounds", str(o.rounds), "--cold-runs", str(o.cold_runs)]
    cmd += ["--threads", str(o.threads)] if o.threads is not None else []
    cmd += (
        ["--fps", f"{o.fps:g}", "--fps-seconds", f"{o.fps_seconds:g}"] if o.fps is not None else []
    )
    cmd += ["--baselines", csv(o.baselines)]
    cmd += ["--checkpoint", str(o.checkpoint)] if o.checkpoint else []
    cmd += ["--module", o.module] if o.module else []
    cmd += ["--weights", str(o.weights)] if o.weights else []
    cmd += ["--module-args", o.module_args] if o.module_args else []
    cmd += ["--check-targets"] if o.check_targets else []
    default = BenchOptions(bundle=o.bundle)
    if o.max_new_tokens != default.max_new_tokens:
        cmd += ["--max-new-tokens", str(o.max_new_tokens)]
    if o.prompt_tokens != default.prompt_tokens:
        cmd += ["--prompt-tokens", csv(o.prompt_tokens)]
    cmd += ["--new-tokens", csv(o.new_tokens)] if o.new_tokens else []
    for flag, value in (("--json", o.json_out), ("--markdown", o.markdown), ("--plot", o.plot)):
        cmd += [flag, str(value)] if value else []
    return tuple(cmd)


def write_outputs(report: BenchReport, opts: BenchOptions) -> list[Path]:
    """Write the JSON, Markdown and PNG files asked for (each atomically)."""
    written = []
    if opts.json_out:
        written.append(write_json(report, opts.json_out))
    if opts.markdown:
        written.append(write_markdown(report, opts.markdown))
    if opts.plot and report.results:
        written.append(write_plot(report, opts.plot))
    elif opts.plot and is_llm_text(report.text):
        written.append(write_text_plot(report, opts.plot))
    return written


def bench_command(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    opts = dataclasses.replace(opts, argv=command_line(opts))
    validate_options(opts)
    # a --module's code runs in the torch baselines: its sys.exit is exit 2 naming it
    guard = user_code(f"--module {opts.module}") if opts.module else contextlib.nullcontext()
    with guard:
        report = run_bench(
            opts, announce=lambda line: print(line, file=sys.stderr, flush=True), progress=True
        )
    print_report(report)
    for path in write_outputs(report, opts):
        print(f"wrote {path}")
    return 0

"""The terminal view of a ``BenchReport``: rich tables when rich is installed, plain text otherwise."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from .ratios import must_hold
from .report import (
    COLD_HEADER,
    LLM_HEADER,
    LLM_RATIO_HEADER,
    POSITION_HEADER,
    RT_HEADER,
    TERMINAL_LATENCY,
    TEXT_HEADER,
    BenchReport,
    cold_rows,
    flops_text,
    is_llm_text,
    latency_groups,
    llm_ratio_rows,
    llm_rows,
    matmul_text,
    metric_table,
    position_rows,
    quality_table,
    ratio_table,
    read_first,
    realtime_rows,
    text_rows,
)

Row = tuple[str, ...]
Section = tuple[str, Row, list[list[Row]]]  # title, header, groups of rows


def sections(report: BenchReport) -> list[Section]:
    """(title, header, groups of rows) for every non-empty table; the latency table has one
    group per backend and precision, the others a single group."""
    out: list[Section] = []
    if report.results:
        out.append(
            (
                "Latency by backend and precision (steady state; every percentile: --markdown)",
                TERMINAL_LATENCY,
                latency_groups(report, TERMINAL_LATENCY),
            )
        )
    if report.ratios:
        header, rows = ratio_table(report, terminal=True)
        out.append(("Ratios (p50, side by side, one interleaved run)", header, [rows]))
    if report.quality:
        header, rows = quality_table(report)
        out.append(("Quality beside speed (manifest verification)", header, [rows]))
        header, rows = metric_table(report)
        if rows:
            out.append(("Task metrics (manifest verification)", header, [rows]))
    if report.cold_start:
        out.append(("Cold start (fresh process)", COLD_HEADER, [cold_rows(report)]))
    if report.realtime:
        out.append(("Real-time stream", RT_HEADER, [realtime_rows(report)]))
    if is_llm_text(report.text):
        out.append(("Text generation (transformer)", LLM_HEADER, [llm_rows(report)]))
        out.append(("Generation-time speed-ups", LLM_RATIO_HEADER, [llm_ratio_rows(report)]))
        if position_rows(report):
            out.append(("Token cost at ~600 vs ~50", POSITION_HEADER, [position_rows(report)]))
    elif report.text:
        out.append(("Text generation (ar)", TEXT_HEADER, [text_rows(report)]))
    return out


def summary_lines(report: BenchReport) -> list[str]:
    """The per-configuration summary, trtexec style, with the title line first."""
    lines = [line.text for line in report.summary()]
    return (
        [
            "Summary (speed-up: ratio of the p50s in the latency table, with the IQR of per-round ratios):",
            *lines,
        ]
        if lines
        else []
    )


def _extras(report: BenchReport) -> list[str]:
    lines = summary_lines(report)
    if report.ratios and report.options.get("check_targets"):
        lines.append("Must-hold targets:")
        lines += [
            f"  [{'ok' if h else '--' if h is None else 'MISSED'}] {t}: {o}"
            for t, o, h in must_hold(report.ratios)
        ]
    for t in report.trtexec:
        lines.append(
            f"trtexec: {json.dumps({k: v for k, v in t.items() if k != 'command'}, default=str)}"
        )
    env = report.environment
    lines.append(
        f"CPU {env.get('cpu_model')} | {env.get('usable_cpus')} usable CPUs | threads "
        f"{report.options.get('threads')} | peak RSS {report.peak_rss_mib or 0:.0f} MiB"
    )
    if report.results:
        lines.append(matmul_text(env.get("matmul")))
    if flops_text(report):
        lines.append(str(flops_text(report)))
    lines += [f"note: {n}" for n in report.notes]
    return lines


def print_report(report: BenchReport, file: TextIO | None = None) -> None:
    file = file or sys.stdout
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        _print_plain(report, file)
        return
    console = Console(file=file, width=max(160, Console(file=file).width))
    for line in read_first(report):
        console.print(f"READ FIRST: {line}", markup=False, highlight=False)
    for title, header, groups in sections(report):
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 else "right")
        for g, rows in enumerate(groups):
            if g:
                table.add_section()
            for row in rows:  # cells hold names from files: plain text, never markup
                table.add_row(*(Text(str(cell)) for cell in row))
        console.print(table)
    for line in _extras(report):
        console.print(line, markup=False, highlight=False)


def _print_plain(report: BenchReport, file: TextIO) -> None:
    for line in read_first(report):
        print(f"READ FIRST: {line}", file=file)
    for title, header, groups in sections(report):
        rows = [r for g in groups for r in g]
        widths = [
            max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
            for i, h in enumerate(header)
        ]

        def line(row: Row, widths: list[int] = widths) -> str:
            return "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )

        print(title, file=file)
        print(line(header), file=file)
        for g, group in enumerate(groups):
            if g:
                print("-" * len(line(header)), file=file)
            for row in group:
                print(line(row), file=file)
        print(file=file)
    for line in _extras(report):
        print(line, file=file)

"""``BenchReport``: the results of one run, and its JSON and Markdown forms.

The terminal table lives in ``genedge.bench.table`` and the PNG in ``genedge.bench.plot``;
all of them read the same rows from here, so they never disagree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genedge.atomic import atomic_write_text

from .quality import FIELDS, metric_names
from .ratios import Ratio, iqr_text, must_hold, ratio_text
from .runner import CaseResult
from .summary import SummaryLine, effective_gflops, image_summary, ordered, text_summary

# 2: per-case timing summaries instead of raw times_ns
# 3: ratios carry the interquartile range over rounds (``iqr``, ``rounds``) instead of min..max
#    (``spread``); a ``summary`` line per configuration; FLOPs per call (``flops``) and each
#    case's ``effective_gflops``; the environment's ``matmul`` probe
SCHEMA = "genedge.bench/3"
LATENCY_HEADER = (
    "configuration",
    "batch",
    "p50 ms",
    "GFLOP/s",
    "% of GEMM",
    "p90 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "mean ms",
    "std ms",
    "images/s",
    "n",
    "load ms",
    "first call (compile) ms",
)


@dataclass(frozen=True)
class BenchReport:
    kind: str  # the bundle's kind: gan | vae | ar
    options: dict[str, Any]
    environment: dict[str, Any]
    results: tuple[CaseResult, ...] = ()
    ratios: tuple[Ratio, ...] = ()
    quality: tuple[dict[str, Any], ...] = ()
    cold_start: tuple[dict[str, Any], ...] = ()
    realtime: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    trtexec: tuple[dict[str, Any], ...] = ()
    peak_rss_mib: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    flops: dict[int, float] = field(default_factory=dict)  # batch -> FLOPs of one call

    def summary(self) -> list[SummaryLine]:
        """One line per configuration and batch size (``genedge.bench.summary``)."""
        if self.text:
            return text_summary(self.text)
        baselines = self.options.get("baselines") or ()
        return image_summary(self.results, baselines, self.kind, self.flops)

    def gflops(self, r: CaseResult) -> float | None:
        """Effective GFLOP/s of a case at its p50 (None when the graph's FLOPs are unknown)."""
        return effective_gflops(self.flops.get(r.batch), r.stats.p50)

    def gemm_fraction(self, r: CaseResult) -> float | None:
        """The case's effective GFLOP/s over the machine's measured float32 GEMM rate."""
        rate = (self.environment.get("matmul") or {}).get("gflops")
        g = self.gflops(r)
        return g / rate if g is not None and rate else None

    def to_dict(self) -> dict[str, Any]:
        results = []
        for r in self.results:
            d = r.to_dict()
            d["effective_gflops"] = self.gflops(r)
            d["fraction_of_matmul"] = self.gemm_fraction(r)
            results.append(d)
        return _clean(
            {
                "schema": SCHEMA,
                "kind": self.kind,
                "environment": self.environment,
                "options": self.options,
                "summary": [line.to_dict() for line in self.summary()],
                "flops": {
                    "per_call": {str(b): f for b, f in sorted(self.flops.items())},
                    "counted": "2 x multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul",
                },
                "results": results,
                "ratios": [r.to_dict() for r in self.ratios],
                "quality": list(self.quality),
                "cold_start": list(self.cold_start),
                "realtime": self.realtime,
                "text": self.text,
                "trtexec": list(self.trtexec),
                "peak_rss_mib": self.peak_rss_mib,
                "notes": list(self.notes),
            }
        )


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, Paths and tuples to str/list."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(report: BenchReport, path: str | Path) -> Path:
    """Atomically write the report: statistics, ratios with their per-round ranges, the
    environment, and per case a timing summary (round medians, latency CDF), not raw timings."""
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False)
    atomic_write_text(path, text + "\n")
    return Path(path)


def fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) < 1e4 else f"{x:.0f}"
    return str(x)


# the terminal's latency columns (under 100 characters); JSON and Markdown keep them all
TERMINAL_LATENCY = ("configuration", "batch", "p50 ms", "GFLOP/s", "p90 ms", "p99 ms", "images/s")


def latency_groups(
    report: BenchReport, columns: tuple[str, ...] = LATENCY_HEADER
) -> list[list[tuple[str, ...]]]:
    """The latency rows in groups of one (backend, precision) each (``summary.ordered``),
    cut to ``columns`` (names from ``LATENCY_HEADER``)."""
    keep = [LATENCY_HEADER.index(c) for c in columns]
    return [
        [tuple(row[i] for i in keep) for row in (_latency_row(report, r) for r in group)]
        for group in ordered(report.results)
    ]


def latency_rows(report: BenchReport) -> list[tuple[str, ...]]:
    """One row per configuration and batch size, grouped by backend and precision."""
    return [row for group in latency_groups(report) for row in group]


def _percent(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def _latency_row(report: BenchReport, r: CaseResult) -> tuple[str, ...]:
    s = r.stats
    return (
        r.label,
        str(r.batch),
        fmt(s.ms("p50")),
        fmt(report.gflops(r), 1),
        _percent(report.gemm_fraction(r)),
        *(fmt(s.ms(k)) for k in ("p90", "p99", "p999", "max", "mean", "std")),
        fmt(r.throughput, 1),
        str(s.n),
        fmt(r.load_ms, 1),
        fmt(r.info.get("compile_ms", r.first_call_ms), 1),
    )


RATIO_HEADER = (
    "comparison",
    "genedge",
    "reference",
    "batch",
    "value",
    "IQR over rounds",
    "target",
    "holds",
)


def ratio_rows(report: BenchReport) -> list[tuple[str, ...]]:
    return [
        (
            r.name,
            r.subject,
            r.reference,
            str(r.batch),
            r.text,
            r.iqr_cell,
            r.target or "",
            fmt(r.holds),
        )
        for r in report.ratios
    ]


def ratio_table(
    report: BenchReport, *, terminal: bool = False
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The ratio table; its target and holds columns (genedge's own regression targets) only
    when the run was asked to grade them (``--check-targets``). The terminal's leaves out the
    reference column (the comparison names it) to stay under 100 columns."""
    keep = list(range(len(RATIO_HEADER) - (0 if report.options.get("check_targets") else 2)))
    if terminal:
        keep.remove(RATIO_HEADER.index("reference"))
    return tuple(RATIO_HEADER[i] for i in keep), [
        tuple(row[i] for i in keep) for row in ratio_rows(report)
    ]


SHORT = {
    "max_abs_err_vs_torch": "err vs torch",
    "max_abs_err_vs_fp32": "err vs fp32",
    "psnr_vs_fp32": "PSNR dB",
    "ssim_vs_fp32": "SSIM",
    "metric_drop": "metric drop",
}


def quality_table(report: BenchReport) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Per artifact: max error vs torch / fp32, PSNR, SSIM, task-metric drop, verdict, and the
    speed vs fp32 export measured on its CPU (the record ``precision=None`` on ort-cpu reads)."""
    header = (
        "file",
        "precision",
        *(SHORT[k] for k in FIELDS),
        "verdict",
        "int8 approved",
        "export CPU x fp32",
    )
    body = [
        (
            q["file"],
            fmt(q["precision"]),
            *(fmt(q.get(k), 3) for k in FIELDS),
            fmt(q.get("verdict")),
            fmt(q.get("quality_approved")),
            _export_speed_text(q.get("export_speed") or {}),
        )
        for q in report.quality
    ]
    return header, body


def _export_speed_text(speed: dict[str, dict[str, Any]]) -> str:
    """``b1 0.54x, b16 0.82x`` from an export-time speed record ("-" when none)."""
    parts = [
        f"b{b} {rec['speedup_vs_fp32']:.2f}x"
        for b, rec in speed.items()
        if rec.get("speedup_vs_fp32") is not None
    ]
    return ", ".join(parts) or "-"


def metric_table(report: BenchReport) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Task metrics per artifact, beside the fp32 graph's on the same seeds (what int8 costs)."""
    rows = [q for q in report.quality if q["metrics"]]
    ref = next((q["metrics_fp32"] for q in rows if q.get("metrics_fp32")), {})
    header = (
        "task metric",
        *(f"{q['precision']} ({q['file']})" for q in rows),
        *(("fp32, same seeds",) if ref else ()),
    )
    body = [
        (m, *(fmt(q["metrics"].get(m), 4) for q in rows), *((fmt(ref.get(m), 4),) if ref else ()))
        for m in metric_names(rows)
    ]
    return header, body


COLD_HEADER = (
    "backend",
    "precision",
    "import ms",
    "open ms",
    "first result ms",
    "open->first ms",
    "process wall ms",
    "peak RSS MiB",
)


def cold_rows(report: BenchReport) -> list[tuple[str, ...]]:
    keys = (
        "import_ms",
        "open_ms",
        "first_result_ms",
        "open_to_first_result_ms",
        "process_wall_ms",
        "peak_rss_mib",
    )
    return [
        (
            str(c.get("backend")),
            fmt(c.get("precision")),
            *(
                (fmt(c.get(k), 1) for k in keys)
                if "error" not in c
                else (c["error"], "", "", "", "", "")
            ),
        )
        for c in report.cold_start
    ]


RT_HEADER = (
    "configuration",
    "target fps",
    "frames",
    "missed",
    "achieved fps",
    "interval p50 ms",
    "interval p99 ms",
    "jitter p50 ms",
    "jitter p99 ms",
    "jitter max ms",
    "max fps w/o miss",
)


def realtime_rows(report: BenchReport) -> list[tuple[str, ...]]:
    rt = report.realtime
    if not rt:
        return []
    a = rt["at_target"]
    iv, jt = a.get("interval", {}), a.get("jitter", {})
    best = fmt(rt.get("highest_fps_without_miss"), 1) + (
        " (ceiling)" if rt.get("search_ceiling_reached") else ""
    )
    return [
        (
            f"runtime {rt['backend']} {rt['precision']}",
            fmt(a["fps"], 1),
            str(a["frames"]),
            str(a["missed_deadlines"]),
            fmt(a.get("achieved_fps"), 1),
            fmt(iv.get("p50")),
            fmt(iv.get("p99")),
            fmt(jt.get("p50")),
            fmt(jt.get("p99")),
            fmt(jt.get("max")),
            best,
        )
    ]


TEXT_HEADER = (
    "configuration",
    "runs",
    "tokens",
    "TTFT p50 ms",
    "TTFT p99 ms",
    "token p50 ms",
    "token p90 ms",
    "token p99 ms",
    "token max ms",
    "tokens/s",
    "decode tokens/s",
)


LLM_HEADER = (
    "configuration",
    "prompt",
    "new",
    "rounds",
    "TTFT p50 ms",
    "token p50 ms",
    "token p90 ms",
    "token p99 ms",
    "tokens/s",
    "decode tokens/s",
    "same tokens",
    "load ms",
)
LLM_RATIO_HEADER = ("genedge", "vs", "prompt", "new", "speed-up (gen. time)", "IQR", "rounds")
POSITION_HEADER = ("configuration", "prompt", "new", "token ms at ~50", "at ~600", "ratio")


def is_llm_text(text: dict[str, Any] | None) -> bool:
    """A transformer text section (cases x configurations), not the RNN one."""
    return bool(text) and "cases" in text


def llm_rows(report: BenchReport) -> list[tuple[str, ...]]:
    """One row per configuration and (prompt, new tokens) case of a transformer bundle."""
    rows = []
    for c in (report.text or {}).get("configurations", []):
        tok = c.get("inter_token") or {}
        rows.append(
            (
                c["label"],
                str(c["prompt_tokens"]),
                str(c["new_tokens"]),
                str(c["rounds"]),
                fmt(c["time_to_first_token"].get("p50")),
                fmt(tok.get("p50")),
                fmt(tok.get("p90")),
                fmt(tok.get("p99")),
                fmt(c.get("tokens_per_s"), 1),
                fmt(c.get("decode_tokens_per_s"), 1),
                f"{c['leading_tokens_equal']}/{c['new_tokens']}",
                fmt(c.get("load_ms"), 1),
            )
        )
    return rows


def llm_ratio_rows(report: BenchReport) -> list[tuple[str, ...]]:
    """Generation time of each other configuration over each genedge one, per round."""
    return [
        (
            r["subject"],
            r["reference"],
            str(r["prompt_tokens"]),
            str(r["new_tokens"]),
            ratio_text(r["speedup"]),
            iqr_text(tuple(r["iqr"])),
            str(r["rounds"]),
        )
        for r in (report.text or {}).get("ratios", [])
    ]


def position_rows(report: BenchReport) -> list[tuple[str, ...]]:
    """Per-token cost at position ~600 against ~50, where a case reached that far."""
    rows = []
    for c in (report.text or {}).get("configurations", []):
        at = c.get("per_token_at")
        if at:
            rows.append(
                (
                    c["label"],
                    str(c["prompt_tokens"]),
                    str(c["new_tokens"]),
                    fmt(at["50_ms"]),
                    fmt(at["600_ms"]),
                    f"{at['ratio']:.2f}x",
                )
            )
    return rows


def text_rows(report: BenchReport) -> list[tuple[str, ...]]:
    rows = []
    for c in (report.text or {}).get("configurations", []):
        ttft, tok = c["time_to_first_token"], c.get("per_token") or {}
        rows.append(
            (
                f"runtime {c['backend']} {c['precision']}",
                str(c["runs"]),
                str(c["tokens"]),
                fmt(ttft.get("p50")),
                fmt(ttft.get("p99")),
                fmt(tok.get("p50")),
                fmt(tok.get("p90")),
                fmt(tok.get("p99")),
                fmt(tok.get("max")),
                fmt(c.get("tokens_per_s"), 1),
                fmt(c.get("decode_tokens_per_s"), 1),
            )
        )
    return rows


def md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    esc = [tuple(c.replace("|", "\\|") for c in row) for row in rows]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in esc),
        "",
    ]


def md_env(env: dict[str, Any]) -> list[str]:
    libs = ", ".join(f"{k} {v}" for k, v in env.get("libraries", {}).items() if v)
    gpus = (
        "; ".join(f"{g.get('name')} (driver {g.get('driver')})" for g in env.get("gpus", []))
        or "none"
    )
    return [
        f"- command: `{env.get('command')}`",
        f"- when: {env.get('timestamp_utc')}",
        f"- CPU: {env.get('cpu_model')} ({env.get('usable_cpus')} usable of {env.get('os_cpu_count')} logical,"
        f" {env.get('physical_cores')} physical), load average {env.get('load_average')}",
        f"- GPU: {gpus}",
        f"- libraries: {libs}",
        f"- {matmul_text(env.get('matmul'))}",
        f"- bundle manifest sha256: `{env.get('manifest_sha256')}`",
        "",
    ]


def matmul_text(probe: dict[str, Any] | None) -> str:
    """The environment's float32 GEMM probe in one phrase."""
    if not probe:
        return "matrix multiply: not measured"
    if "error" in probe:
        return f"matrix multiply: not measured ({probe['error']})"
    return (
        f"matrix multiply (numpy float32 {probe['n']}x{probe['n']}, {probe.get('threads')} "
        f"threads, {probe.get('blas') or 'BLAS'}): {probe['gflops']:.1f} GFLOP/s"
    )


def flops_text(report: BenchReport) -> str | None:
    """``FLOPs per image (from the graph): 59.3 MFLOP``; None when they were not counted."""
    per_image = {b: f / b for b, f in report.flops.items() if b}
    if not per_image:
        return None
    values = sorted(set(round(v) for v in per_image.values()))
    shown = ", ".join(f"{v / 1e6:.2f}" for v in values)
    return (
        f"FLOPs per image, counted from the graph (2 x multiply-accumulates of Conv, "
        f"ConvTranspose, Gemm, MatMul): {shown} MFLOP"
    )


def read_first(report: BenchReport) -> list[str]:
    """What makes this run's numbers doubtful (a busy machine, rounds that disagree): said
    before any number."""
    return list(report.environment.get("read_first") or [])


def markdown(report: BenchReport) -> str:
    lines = ["# genedge bench", ""]
    if read_first(report):
        lines += ["## Read this first", "", *(f"- **{w}**" for w in read_first(report)), ""]
    lines += md_env(report.environment)
    summary = report.summary()
    if summary:
        lines += [
            "## Summary (per configuration; speed-up: ratio of the p50s in the latency table, with the IQR of per-round ratios)",
            "",
            *(f"- {line.text}" for line in summary),
            "",
        ]
    if flops_text(report):
        lines += [str(flops_text(report)), ""]
    if report.results:
        lines += [
            "## Latency (steady state; load and warm-up excluded)",
            "",
            *md_table(LATENCY_HEADER, latency_rows(report)),
        ]
    if report.ratios:
        lines += [
            "## Ratios (p50, measured side by side in one interleaved run)",
            "",
            *md_table(*ratio_table(report)),
        ]
    if report.ratios and report.options.get("check_targets"):
        lines += [
            "## Must-hold targets",
            "",
            *(f"- {t}: **{o}**" for t, o, _ in must_hold(report.ratios)),
            "",
        ]
    if report.quality:
        lines += [
            "## Quality beside speed (from the manifest's verification records)",
            "",
            *md_table(*quality_table(report)),
        ]
        header, rows = metric_table(report)
        lines += md_table(header, rows) if rows else []
    if report.cold_start:
        lines += [
            "## Cold start (fresh process: import, open, first result)",
            "",
            *md_table(COLD_HEADER, cold_rows(report)),
        ]
    if report.realtime:
        lines += [
            "## Real-time stream (consumer-side frame intervals)",
            "",
            *md_table(RT_HEADER, realtime_rows(report)),
        ]
    if is_llm_text(report.text):
        lines += [
            "## Text generation (greedy, same prompt token ids, no EOS stop; one generation "
            "per configuration per round, interleaved)",
            "",
            *md_table(LLM_HEADER, llm_rows(report)),
            "## Generation-time speed-ups (per round; above 1: genedge is faster)",
            "",
            *md_table(LLM_RATIO_HEADER, llm_ratio_rows(report)),
        ]
        if position_rows(report):
            lines += [
                "## Cost of a token deep in the context (median gap around the position)",
                "",
                *md_table(POSITION_HEADER, position_rows(report)),
            ]
    elif report.text:
        lines += [
            f"## Text generation (prompt {report.text['prompt']!r}, {report.text['max_new_tokens']} new tokens)",
            "",
            *md_table(TEXT_HEADER, text_rows(report)),
        ]
    if report.trtexec:
        lines += [
            "## trtexec",
            "",
            "```json",
            json.dumps(_clean(list(report.trtexec)), indent=2),
            "```",
            "",
        ]
    if report.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in report.notes), ""]
    return "\n".join(lines)


def write_markdown(report: BenchReport, path: str | Path) -> Path:
    atomic_write_text(path, markdown(report))
    return Path(path)

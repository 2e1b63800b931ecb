"""One line per configuration, the way trtexec ends its run: latency percentiles,
throughput, effective GFLOP/s and the speed-up over the chosen baseline.

The chosen baseline is the first of ``--baselines`` (in the order given) measured at the
same batch size; for the baselines that run each precision (bare ORT, standalone
OpenVINO) its fp32 case. The speed-up is ``p50(baseline) / p50(configuration)`` with the
interquartile range of the same ratio taken round by round (``ratios.round_iqr``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from genedge.precisions import PRECISIONS

from .ratios import iqr_text, ratio_text, rounds_disagree, speedup
from .runner import CaseResult

# --baselines name -> the kind of the case it measures
BASELINE_KINDS = {
    "torch": "torch",
    "torch-compile": "torch-compile",
    "ort": "ort",
    "openvino": "openvino",
}
# the order of kinds inside one (backend, precision) group of the tables
KIND_ORDER = ("runtime", "runtime-sample", "ort", "openvino", "torch", "torch-compile")


def throughput_unit(kind: str) -> str:
    """What one sample is for a bundle kind: an image, or a token for ``ar`` bundles."""
    return "tokens/s" if kind == "ar" else "images/s"


def group_key(r: CaseResult) -> tuple[str, str]:
    """The (backend, precision) a configuration belongs to in the tables."""
    return r.backend, r.precision


def ordered(results: Sequence[CaseResult]) -> list[list[CaseResult]]:
    """Results grouped by (backend, precision): backends in the order they were measured
    (runtime first), precisions in ``PRECISIONS`` order within a backend, and in a group
    the runtime, then the baselines, each configuration's batch sizes together."""
    backends = list(dict.fromkeys(r.backend for r in results))
    rank = {p: i for i, p in enumerate(PRECISIONS)}
    groups: dict[tuple[str, str], list[CaseResult]] = {}
    for r in results:
        groups.setdefault(group_key(r), []).append(r)
    keys = sorted(groups, key=lambda k: (backends.index(k[0]), rank.get(k[1], len(rank)), k[1]))
    kinds = {k: i for i, k in enumerate(KIND_ORDER)}
    return [
        sorted(
            groups[k],
            key=lambda r: (kinds.get(r.kind, len(kinds)), r.label, r.batch),
        )
        for k in keys
    ]


def reference_case(
    results: Sequence[CaseResult], baselines: Sequence[str], batch: int
) -> CaseResult | None:
    """The chosen baseline at ``batch`` (module docstring), or None when none was measured."""
    for name in baselines:
        kind = BASELINE_KINDS.get(name)
        found = [r for r in results if r.kind == kind and r.batch == batch]
        if found:
            return next((r for r in found if r.precision == "fp32"), found[0])
    return None


def sig3(x: float) -> str:
    """Three significant digits without an exponent: 0.552, 30.3, 195, 1950."""
    if math.isnan(x) or math.isinf(x):
        return "-"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:#.3g}"


def effective_gflops(flops: float | None, p50_ns: float) -> float | None:
    """FLOPs of one call over its median time, in GFLOP/s (None when the FLOPs are unknown)."""
    if not flops or not p50_ns or math.isnan(p50_ns):
        return None
    return flops / p50_ns  # FLOP per ns is GFLOP per s


@dataclass(frozen=True)
class SummaryLine:
    """What one configuration at one batch size delivered (times in ms)."""

    label: str
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float
    unit: str  # images/s | tokens/s
    gflops: float | None = None  # effective GFLOP/s at p50
    reference: str | None = None  # the chosen baseline's label; equal to label for itself
    speedup: float | None = None
    iqr: tuple[float, float] | None = None

    @property
    def text(self) -> str:
        """``runtime ort-cpu fp32, batch 16: p50/p90/p99 5.40/5.61/6.02 ms | 2963 images/s |
        183 GFLOP/s | 1.12x (IQR 1.08-1.15x) vs torch eager``."""
        times = "/".join(sig3(t) for t in (self.p50_ms, self.p90_ms, self.p99_ms))
        parts = [
            f"{self.label}, batch {self.batch}: p50/p90/p99 {times} ms",
            f"{sig3(self.throughput)} {self.unit}",
        ]
        if self.gflops is not None:
            parts.append(f"{self.gflops:.1f} GFLOP/s")
        if self.reference == self.label:
            parts.append("the baseline")
        elif self.reference is not None and self.speedup is not None:
            spread = f" (IQR {iqr_text(self.iqr)})" if self.iqr else ""
            mark = " [rounds disagree]" if rounds_disagree(self.speedup, self.iqr) else ""
            parts.append(f"{ratio_text(self.speedup)}{spread} vs {self.reference}{mark}")
        return " | ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["iqr"] = list(self.iqr) if self.iqr else None
        d["text"] = self.text
        return d


def summary_line(
    r: CaseResult, ref: CaseResult | None, unit: str, flops: float | None = None
) -> SummaryLine:
    s = r.stats
    value = spread = None
    if ref is not None and ref is not r:
        value, spread, _ = speedup(ref, r)
    return SummaryLine(
        r.label,
        r.batch,
        s.ms("p50"),
        s.ms("p90"),
        s.ms("p99"),
        r.throughput,
        unit,
        effective_gflops(flops, s.p50),
        None if ref is None else ref.label,
        value,
        spread,
    )


def image_summary(
    results: Sequence[CaseResult],
    baselines: Sequence[str],
    kind: str = "gan",
    flops: Mapping[int, float] | None = None,
) -> list[SummaryLine]:
    """One ``SummaryLine`` per configuration and batch size, in the tables' order."""
    unit = throughput_unit(kind)
    flops = flops or {}
    return [
        summary_line(r, reference_case(results, baselines, r.batch), unit, flops.get(r.batch))
        for group in ordered(results)
        for r in group
    ]


def text_summary(text: Mapping[str, Any] | None) -> list[SummaryLine]:
    """``ar`` bundles: per-token latency percentiles and tokens/s per configuration."""
    out = []
    for c in (text or {}).get("configurations", []):
        tok = c.get("per_token") or c.get("inter_token") or c["time_to_first_token"]
        out.append(
            SummaryLine(
                _text_label(c),
                1,
                float(tok["p50"]),
                float(tok["p90"]),
                float(tok["p99"]),
                float(c.get("tokens_per_s") or math.nan),
                "tokens/s",
            )
        )
    return out


def _text_label(c: Mapping[str, Any]) -> str:
    """``runtime ort-cpu fp32`` (RNN); ``genedge ort-cpu fp32, prompt 16 + 64 new`` (transformer)."""
    if "prompt_tokens" not in c:
        return f"runtime {c['backend']} {c['precision']}"
    return f"{c['label']}, prompt {c['prompt_tokens']} + {c['new_tokens']} new"

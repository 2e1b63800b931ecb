"""Side-by-side ratios of medians (p50) from one interleaved run, and the must-hold targets.

Ratios use p50 because one preempted call on a shared machine moves the mean but not
the median. ``speedup = p50(reference) / p50(genedge)``, the very p50s of the latency table
(so a headline can never contradict its table), with the interquartile range of the same
ratio taken round by round beside it: above 1 means genedge is faster. A ratio whose rounds
disagree (``rounds_disagree``) or that was taken on a busy machine is marked.
``overhead = p50(runtime) / p50(bare ORT) - 1``: what the runtime adds over calling
``InferenceSession.run`` directly on the same file with the same threads.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from genedge.runtime import registry
from genedge.runtime.measure import round_ratios as per_round

from .runner import CaseResult
from .stats import iqr, ratio

# The must-hold targets: (what, precision, batch, bound).
SPEEDUP_VS_EAGER = 2.5  # runtime on ORT CPU vs PyTorch eager, fp32, batch 1
SPEEDUP_VS_COMPILE = 1.0  # ... and faster than torch.compile
MAX_OVERHEAD = 0.05  # runtime over bare ORT
INT8_SPEEDUP = 1.5  # int8 vs fp32 at batch 16
INT8_TARGET_BATCH = 16
TARGET_BATCH = 1
TARGET_BACKEND = registry.reference().name


@dataclass(frozen=True)
class Ratio:
    """One comparison: ``value`` of ``numerator``/``denominator`` p50s, and its target if any."""

    name: (
        str  # "speedup vs torch eager" | "speedup vs torch.compile" | "overhead vs bare ORT" | ...
    )
    subject: str  # the genedge configuration
    reference: str  # what it is compared against
    batch: int
    value: float
    target: str | None = None  # e.g. ">= 2.5x"
    holds: bool | None = None
    iqr: tuple[float, float] | None = None  # quartiles of the same ratio taken round by round
    rounds: int = 0  # how many rounds ``iqr`` comes from
    busy: bool = False  # measured while other processes competed for the cores

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = None if math.isnan(self.value) else self.value
        d["iqr"] = list(self.iqr) if self.iqr else None
        d["mark"] = self.mark or None
        return d

    @property
    def mark(self) -> str:
        """Why this ratio is not to be trusted as it stands ("" when nothing is known)."""
        why = []
        if rounds_disagree(self.value, self.iqr, percent=self.percent):
            why.append("rounds disagree")
        if self.busy:
            why.append("busy machine")
        return ", ".join(why)

    @property
    def percent(self) -> bool:
        return self.name.startswith("overhead")

    @property
    def text(self) -> str:
        return ratio_text(self.value, percent=self.percent)

    @property
    def iqr_text(self) -> str:
        """``3.50-3.80x`` (``+1.0% to +3.0%`` for an overhead); empty without rounds."""
        return iqr_text(self.iqr, percent=self.percent) if self.iqr else ""

    @property
    def iqr_cell(self) -> str:
        """The IQR with the mark, if any: ``3.50-3.80x, busy machine``."""
        return ", ".join(t for t in (self.iqr_text, self.mark) if t)

    @property
    def text_with_iqr(self) -> str:
        """``3.65x (IQR 3.50-3.80x)``: the p50 ratio and the middle half of its rounds."""
        text = f"{self.text} (IQR {self.iqr_text})" if self.iqr else self.text
        return f"{text} [{self.mark}]" if self.mark else text


UNSTEADY_SPREAD = 0.25  # rounds disagree: their middle half spans more than 25% of the ratio
OUTSIDE_SLACK = 0.05  # ... or the ratio of p50s lies over 5% outside that middle half


def rounds_disagree(
    value: float, iqr: tuple[float, float] | None, *, percent: bool = False
) -> bool:
    """Whether the per-round ratios disagree with each other or with the quoted ``value``
    (an overhead, ``percent``, is read as the ratio ``1 + value``)."""
    if iqr is None or math.isnan(value):
        return False
    shift = 1.0 if percent else 0.0
    v, lo, hi = value + shift, iqr[0] + shift, iqr[1] + shift
    if v <= 0:
        return True
    return hi - lo > UNSTEADY_SPREAD * v or not (
        lo * (1 - OUTSIDE_SLACK) <= v <= hi * (1 + OUTSIDE_SLACK)
    )


def ratio_text(v: float, *, percent: bool = False) -> str:
    if math.isnan(v):
        return "n/a"
    return f"{v * 100:+.1f}%" if percent else f"{v:.2f}x"


def iqr_text(iqr: tuple[float, float], *, percent: bool = False) -> str:
    lo, hi = iqr
    if percent:  # signed values: a hyphen would read as a minus sign
        return f"{lo * 100:+.1f}% to {hi * 100:+.1f}%"
    return f"{lo:.2f}-{hi:.2f}x"


def round_ratios(num: CaseResult, den: CaseResult, *, minus_one: bool = False) -> list[float]:
    """p50(num round k) / p50(den round k) for every round k (minus 1 for an overhead):
    interleaving makes round k of both cases share the same machine conditions."""
    a, b = num.round_p50s(), den.round_p50s()
    if len(a) != len(b):
        return []
    return [v - (1.0 if minus_one else 0.0) for v in per_round(a, b)]


def round_iqr(
    num: CaseResult, den: CaseResult, *, minus_one: bool = False
) -> tuple[tuple[float, float], int] | None:
    """The interquartile range of ``round_ratios`` and the number of rounds: the quartiles
    keep one preempted round from setting the interval."""
    values = round_ratios(num, den, minus_one=minus_one)
    return (iqr(values), len(values)) if len(values) >= 2 else None


def headline(num: CaseResult, den: CaseResult, *, minus_one: bool = False) -> float:
    """The ratio quoted: p50(num) / p50(den) over all calls, the p50s the latency table
    shows, so the headline and the table are one estimator. Its rounds' IQR says how far the
    rounds agree; where they do not, ``rounds_disagree`` marks it."""
    return ratio(num.stats.p50, den.stats.p50) - (1.0 if minus_one else 0.0)


def speedup(ref: CaseResult, case: CaseResult) -> tuple[float, tuple[float, float] | None, int]:
    """p50(ref) / p50(case) (above 1: ``case`` is faster), its round IQR and round count."""
    spread = round_iqr(ref, case)
    return (
        headline(ref, case),
        spread[0] if spread else None,
        spread[1] if spread else 0,
    )


def _check(value: float, bound: float, op: str) -> bool | None:
    if math.isnan(value):
        return None
    return {">=": value >= bound, ">": value > bound, "<": value < bound}[op]


def _target(value: float, bound: float, op: str, unit: str = "x") -> tuple[str, bool | None]:
    text = f"{op} {bound * 100:g}%" if unit == "%" else f"{op} {bound:g}x"
    return text, _check(value, bound, op)


def _one(
    results: Sequence[CaseResult],
    kind: str,
    batch: int,
    backend: str | None = None,
    precision: str | None = None,
) -> CaseResult | None:
    for r in results:
        if (
            r.kind == kind
            and r.batch == batch
            and backend in (None, r.backend)
            and precision in (None, r.precision)
        ):
            return r
    return None


_TORCH_REFS = (
    ("torch", "speedup vs torch eager", SPEEDUP_VS_EAGER, ">="),
    ("torch-compile", "speedup vs torch.compile", SPEEDUP_VS_COMPILE, ">"),
)


def _vs_torch(results: Sequence[CaseResult], rt: CaseResult) -> list[Ratio]:
    out = []
    targeted = rt.backend == TARGET_BACKEND and rt.precision == "fp32" and rt.batch == TARGET_BATCH
    for kind, name, bound, op in _TORCH_REFS:
        ref = _one(results, kind, rt.batch)
        if ref is None:
            continue
        value, spread, n = speedup(ref, rt)
        target, holds = _target(value, bound, op) if targeted else (None, None)
        out.append(Ratio(name, rt.label, ref.label, rt.batch, value, target, holds, spread, n))
    return out


def _vs_ort(results: Sequence[CaseResult], rt: CaseResult) -> list[Ratio]:
    ref = _one(results, "ort", rt.batch, rt.backend, rt.precision)
    if ref is None:
        return []
    value = headline(rt, ref, minus_one=True)
    target, holds = _target(value, MAX_OVERHEAD, "<", "%")
    spread = round_iqr(rt, ref, minus_one=True)
    return [
        Ratio(
            "overhead vs bare ORT",
            rt.label,
            ref.label,
            rt.batch,
            value,
            target,
            holds,
            *(spread or (None, 0)),
        )
    ]


def _vs_fp32(results: Sequence[CaseResult], rt: CaseResult) -> list[Ratio]:
    if rt.precision == "fp32":
        return []
    ref = _one(results, "runtime", rt.batch, rt.backend, "fp32")
    if ref is None:
        return []
    value, spread, n = speedup(ref, rt)
    targeted = rt.precision == "int8" and rt.batch == INT8_TARGET_BATCH
    target, holds = _target(value, INT8_SPEEDUP, ">=") if targeted else (None, None)
    name = f"{rt.precision} speedup vs fp32"
    return [Ratio(name, rt.label, ref.label, rt.batch, value, target, holds, spread, n)]


# precisions of the same quality class: a runtime case is set against the fastest standalone
# OpenVINO case of its class (an fp32 path against OpenVINO's fp32 or bf16)
SAME_QUALITY = {"fp32": ("fp32", "bf16"), "bf16": ("fp32", "bf16")}


def _vs_openvino(results: Sequence[CaseResult], rt: CaseResult) -> list[Ratio]:
    """Against the fastest standalone OpenVINO case of the same quality class and batch."""
    wanted = SAME_QUALITY.get(rt.precision, (rt.precision,))
    refs = [
        r for r in results if r.kind == "openvino" and r.batch == rt.batch and r.precision in wanted
    ]
    if not refs:
        return []
    ref = min(refs, key=lambda r: r.stats.p50)
    value, spread, n = speedup(ref, rt)
    name = "speedup vs OpenVINO"  # the standalone one: its label says so
    return [Ratio(name, rt.label, ref.label, rt.batch, value, None, None, spread, n)]


def compute_ratios(results: Sequence[CaseResult], *, busy: bool = False) -> list[Ratio]:
    """Every runtime case against torch eager/compile, bare ORT, standalone OpenVINO and its
    own fp32; each marked ``busy`` when the machine was busy during the run."""
    out = _all_ratios(results)
    return [dataclasses.replace(r, busy=True) for r in out] if busy else out


def _all_ratios(results: Sequence[CaseResult]) -> list[Ratio]:
    out: list[Ratio] = []
    for rt in results:
        if rt.kind == "runtime":
            out += _vs_torch(results, rt) + _vs_ort(results, rt) + _vs_openvino(results, rt)
            out += _vs_fp32(results, rt)
        elif (
            rt.kind == "runtime-sample"
        ):  # Sampler.sample(n, seed): the overhead measurement
            out += _vs_ort(results, rt)
    return out


MUST_HOLD = (
    (
        "speedup vs torch eager",
        f"runtime {TARGET_BACKEND} fp32 >= {SPEEDUP_VS_EAGER:g}x faster than PyTorch eager, batch {TARGET_BATCH}",
        f"--backend {TARGET_BACKEND} --precision fp32 --batch {TARGET_BATCH} --baselines torch and a source checkpoint",
    ),
    (
        "speedup vs torch.compile",
        f"runtime {TARGET_BACKEND} fp32 faster than torch.compile, batch {TARGET_BATCH}",
        "--baselines torch-compile (a working torch.compile) at batch 1",
    ),
    (
        "overhead vs bare ORT",
        f"runtime overhead over bare ORT < {MAX_OVERHEAD * 100:g}% (worst case shown)",
        "--baselines ort with an ORT backend",
    ),
    (
        "int8 speedup vs fp32",
        f"int8 >= {INT8_SPEEDUP:g}x faster than fp32, batch {INT8_TARGET_BATCH}",
        f"--precision fp32,int8 --batch {INT8_TARGET_BATCH}",
    ),
)


def must_hold(ratios: Sequence[Ratio]) -> list[tuple[str, str, bool | None]]:
    """(target, outcome, holds) for each must-hold target; ``holds`` None when not measured."""
    out = []
    for name, text, needs in MUST_HOLD:
        rows = [
            r for r in ratios if r.name == name and r.target is not None and r.holds is not None
        ]
        if not rows:
            out.append((text, f"not measured (needs {needs})", None))
            continue
        worst = (
            max(rows, key=lambda r: r.value)
            if name.startswith("overhead")
            else min(rows, key=lambda r: r.value)
        )
        where = f"{worst.subject} batch {worst.batch}"
        out.append(
            (text, f"{worst.text} ({where}): {'holds' if worst.holds else 'MISSED'}", worst.holds)
        )
    return out

"""Reading export's CPU speed record (an artifact's ``speed`` field, docs/bundle.md): the
fastest quality-approved precision on the reference backend, and the fastest quality-approved
(backend, precision) among the CPU backends it timed. ``runtime.tune.fastest`` starts from
it where this machine has no tuning; ``runtime.artifacts`` reads it for the reference
backend's default precision.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from genedge.manifest import Artifact, Manifest
from genedge.precisions import INFERENCE_PRECISIONS, REFERENCE

from . import registry

log = logging.getLogger("genedge.runtime")

MIN_SPEEDUP = 1.05  # a reduced precision must beat fp32 by this factor: not by timing noise


def fastest_in_record(found: dict[str, Artifact]) -> tuple[Artifact, str] | None:
    """From ``{precision: Artifact}``: the quality-approved artifact with the lowest batch-1 p50
    in the bundle's CPU ``speed`` records, never one measured slower than fp32 at any batch;
    with the reason, for the log. None when fp32 has no speed record (older bundles)."""
    fp32 = found.get(REFERENCE)
    ref = _speed_p50s(fp32) if fp32 else {}
    if not ref:
        return None
    if fp32.speed.busy:  # its numbers decide nothing: the reference, never slower than itself
        return fp32, (
            "export's speed record was taken on a busy machine, so it is not used; fp32 until "
            "`genedge tune BUNDLE` measures this machine"
        )
    best, best_ms = fp32, ref.get("1", min(ref.values()))
    for prec, a in found.items():
        mine = _speed_p50s(a)
        if (
            prec == REFERENCE
            or not (a.quality_approved and a.verification.passed)
            or set(mine) != set(ref)
        ):
            continue
        if any(mine[b] > ref[b] for b in ref):
            continue
        ms = mine.get("1", min(mine.values()))
        if ms * MIN_SPEEDUP <= ref.get("1", min(ref.values())) and ms < best_ms:
            best, best_ms = a, ms
    b = "1" if "1" in ref else min(ref)
    others = ", ".join(
        f"{prec} {_speed_p50s(a).get(b, float('nan')):.3g} ms"
        for prec, a in found.items()
        if prec != REFERENCE
    )
    if best is fp32:
        why = (
            f"no quality-approved artifact measured at export at least {MIN_SPEEDUP:.2f}x faster "
            f"than fp32 and no slower at any batch (batch {b}: fp32 {ref[b]:.3g} ms"
            f"{', ' + others if others else ''})"
        )
    else:
        why = (
            f"the fastest quality-approved artifact in the bundle's export-time CPU measurement "
            f"(batch {b}: {best_ms:.3g} ms vs fp32 {ref[b]:.3g} ms)"
        )
    return best, why


def fastest_cpu(
    found: dict[str, Artifact], batch: int, backends: Sequence[str]
) -> tuple[str, Artifact, str] | None:
    """From export's speed records (``found``: ``{precision: Artifact}``): the quality-approved
    (backend, artifact) of ``backends`` with the lowest p50 at the measured batch nearest
    ``batch``, and why, for the log. None without a usable record (none, or taken on a busy
    machine), or when nothing beats the reference backend's fp32 by ``MIN_SPEEDUP`` there
    (the fixed rule then decides, as it would without a record)."""
    fp32 = found.get(REFERENCE)
    if fp32 is None or fp32.speed is None or not fp32.speed.batch:
        return None
    if fp32.speed.busy:
        log.info("backend auto: export's speed record was taken on a busy machine; not used")
        return None
    b = min(fp32.speed.batch, key=lambda m: (abs(math.log(m / max(batch, 1))), m))
    ref = fp32.speed.batch[b].p50_ms
    timed_on = registry.reference().name  # the record's ``batch``; the others' in ``others``
    options = []
    for prec, a in found.items():
        if a.speed is None or a.speed.busy or prec in INFERENCE_PRECISIONS:
            continue
        if prec != REFERENCE and not (a.quality_approved and a.verification.passed):
            continue
        times = {timed_on: a.speed.p50s().get(b)}
        times.update({k: v.get(b) for k, v in a.speed.others.items()})
        options += [(ms, k, prec) for k, ms in times.items() if ms is not None and k in backends]
    if not options:
        return None
    ms, backend, prec = min(options)
    if (backend, prec) == (timed_on, REFERENCE) or ms * MIN_SPEEDUP > ref:
        return None
    shown = ", ".join(f"{k} {p} {t:.3g} ms" for t, k, p in sorted(options)[:4])
    why = (
        f"the fastest quality-approved (backend, precision) in export's CPU speed record at "
        f"batch {b} ({shown}); `genedge tune` measures it on this machine"
    )
    return backend, found[prec], why


def auto_precision_note(manifest: Manifest, graph: str) -> str | None:
    """Why ``precision=None`` on the reference CPU backend picks what it picks, when the
    bundle's speed record decided it (None otherwise): for the CLI to say so."""
    found = {a.precision or REFERENCE: a for a in manifest.find(graph=graph, format="onnx")}
    measured = fastest_in_record(found)
    return None if measured is None else f"{measured[0].precision}, {measured[1]}"


def _speed_p50s(a: Artifact) -> dict[str, float]:
    """``{batch: p50_ms}`` of an artifact's speed record ({} without one), batch as text."""
    return {} if a.speed is None else {str(b): ms for b, ms in a.speed.p50s().items()}

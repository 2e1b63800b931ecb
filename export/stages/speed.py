"""CPU latency of every ONNX artifact of the main graph, measured side by side at export.

Each artifact runs on every installed CPU backend of the runtime (ONNX Runtime CPU always,
OpenVINO where installed; default thread count, what a ``Sampler`` gets; ORT threads sleep
between runs) at batch 1 and 16, interleaved run by run in a rotating order so that every
(backend, artifact) sees the same machine state, for a fixed time budget, while the CPU load
is measured (``genedge.cpu_load``). The record lands in the artifact's ``speed`` field
(docs/bundle.md): ORT's timings in ``batch``, the other backends' in ``others``, the load in
``load``. An untuned ``backend="auto"`` reads it to pick the fastest quality-approved
(backend, precision), and ignores a record taken while the machine was busy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from genedge.cpu_load import RoundLoad
from genedge.errors import GenedgeError
from genedge.export.stages.calibration import image_feed
from genedge.precisions import REFERENCE
from genedge.runtime import registry
from genedge.runtime.measure import interleave, median, round_ratios, spread, time_runs
from genedge.runtime.ort_backend import MissingKernelError
from genedge.runtime.select import BackendOptions, open_file

if TYPE_CHECKING:
    from genedge.export.context import BuildContext

BATCHES = (1, 16)
BUDGET_S = 0.4  # timed rounds per batch size, all artifacts together
MIN_ROUNDS, MAX_ROUNDS, WARMUP = 3, 200, 1


def speed_feed(ctx: BuildContext, batch: int) -> dict[str, np.ndarray]:
    spec = ctx.main
    if spec.name == "step":
        cfg = ctx.cfg
        rng = np.random.default_rng(0)
        feed = {"token": rng.integers(0, cfg.vocab_size, batch, dtype=np.int64)}
        for s in cfg.state_names:
            feed[s] = np.zeros((cfg.layers, batch, cfg.hidden), np.float32)
        return feed
    return image_feed(ctx.cfg, batch, seed=0)


def interleaved_p50(
    runners: list[Any],
    feed: dict[str, np.ndarray],
    budget_s: float = BUDGET_S,
    load: RoundLoad | None = None,
) -> tuple[list[float], list[list[float]]]:
    """p50 latency (ms) of each runner on ``feed``, and every round's times (ms), interleaved
    run by run (``runtime.measure.interleave``: the order rotates every round, A B C, B C A,
    C A B, so what a run leaves behind falls on each runner in turn)."""
    for _ in range(WARMUP):
        for r in runners:
            r.run(feed)
    times = interleave(
        len(runners),
        lambda i, _: time_runs(lambda: runners[i].run(feed)),
        seconds=budget_s,
        min_rounds=MIN_ROUNDS,
        max_rounds=MAX_ROUNDS,
        load=load,
    )
    rounds = [[t[r][0] for t in times] for r in range(len(times[0]))]  # (rounds, runners)
    return [median(t) for t in times], rounds


def open_for_speed(path: Any, backend: str | None = None) -> Any | None:
    """``path`` on one of the runtime's CPU backends; ORT's threads sleep between runs:
    spinning threads of one session would steal the cores from the next one in the
    interleaving. None when the backend cannot run the file (no kernel for one of its ops on
    ORT, a graph OpenVINO refuses): it cannot be that backend's choice then."""
    try:
        return open_file(path, backend, options=BackendOptions(spin=False))
    except (MissingKernelError, GenedgeError):
        return None


def cpu_backends() -> tuple[str, ...]:
    """The runtime's CPU backends installed here, the reference (ORT: its fp32 is what the
    others are measured against) first."""
    ref = registry.reference()
    others = [s.name for s in registry.available() if s.device == "cpu" and s is not ref]
    return (ref.name, *others)


def measure_artifacts(ctx: BuildContext) -> dict[str, dict[str, Any]]:
    """``{file: speed record}`` for the main graph's ONNX artifacts (fp32 first), every
    artifact on every installed CPU backend, interleaved."""
    spec = ctx.main
    arts = [
        a
        for a in ctx.artifacts
        if a.get("graph") == spec.name and a.get("format") == "onnx" and a.get("precision")
    ]
    arts.sort(key=lambda a: a["precision"] != REFERENCE)
    if len(arts) < 2 or arts[0]["precision"] != REFERENCE:
        return {}
    ref = registry.reference().name
    pairs = [(b, a) for b in cpu_backends() for a in arts]  # (reference, fp32) first
    opened = [(b, a, open_for_speed(ctx.tmp / a["file"], b)) for b, a in pairs]
    cases = [(b, a, r) for b, a, r in opened if r is not None]
    runners = [r for _, _, r in cases]
    load = RoundLoad()
    try:
        if len(runners) < 2 or cases[0][:2] != (ref, arts[0]):
            return {}
        records: dict[str, dict[str, Any]] = {
            a["file"]: {"batch": {}, "others": {}} for b, a, _ in cases if b == ref
        }
        budget = BUDGET_S * max(1.0, len(runners) / 3)
        for batch in BATCHES:
            p50, rounds = interleaved_p50(runners, speed_feed(ctx, batch), budget, load)
            for i, (backend, a, _) in enumerate(cases):
                rec = records.setdefault(a["file"], {"batch": {}, "others": {}})
                if backend != ref:
                    rec["others"].setdefault(backend, {})[str(batch)] = round(p50[i], 4)
                    continue
                ratios = round_ratios([row[0] for row in rounds], [row[i] for row in rounds])
                rec["batch"][str(batch)] = {
                    "p50_ms": round(p50[i], 4),
                    "speedup_vs_fp32": round(p50[0] / p50[i], 3),
                    "round_range": [round(q, 3) for q in spread(ratios, 10, 90)],
                    "rounds": len(rounds),
                }
    finally:
        for r in runners:
            r.close()
    measured = load_record(load)
    for rec in records.values():
        rec.update(backend=ref, threads=None, machine=_machine(), load=measured)
        if not rec["others"]:
            del rec["others"]
    return {f: rec for f, rec in records.items() if rec["batch"]}


def load_record(load: RoundLoad) -> dict[str, Any]:
    """The manifest's compact form of a ``RoundLoad``: load averages, busy rounds, median wait."""
    full = load.record()
    waits = sorted(full["wait_fraction"]) or [0.0]
    return {
        "load_average": full["load_average"],
        "rounds": full["rounds"],
        "busy_rounds": full["busy_rounds"],
        "median_wait": waits[len(waits) // 2],
        "others_share": full["others_share"],
        "busy": full["busy"],
    }


def _machine() -> str:
    import os
    import platform

    return f"{platform.machine()} {os.cpu_count()} cpus"


def stage_speed(ctx: BuildContext) -> None:
    """Measure and record the main graph's artifacts (skipped with fewer than two)."""
    records = measure_artifacts(ctx)
    for a in ctx.artifacts:
        if a["file"] in records:
            a["speed"] = records[a["file"]]
    if records:
        ctx.log("CPU latency at export (ort-cpu, p50 ms, batch 1 / 16): " + _summary(ctx, records))
        load = next(iter(records.values()))["load"]
        if load["busy"]:
            ctx.log(
                f"warning: the machine was busy while export timed the artifacts (other "
                f"processes took {load['others_share']:.0%} of the CPU time; load average "
                f"{load['load_average'][0]}): backend='auto' will not choose by this record; "
                "run `genedge tune BUNDLE` on the machine that samples"
            )


def _summary(ctx: BuildContext, records: dict[str, dict[str, Any]]) -> str:
    parts, others = [], {}
    for a in ctx.artifacts:
        rec = records.get(a["file"])
        if rec:
            b = rec["batch"]
            parts.append(f"{a['precision']} {b['1']['p50_ms']:.3g} / {b['16']['p50_ms']:.3g}")
            for backend, p50 in rec.get("others", {}).items():
                others.setdefault(backend, []).append(
                    f"{a['precision']} {p50.get('1', 0):.3g} / {p50.get('16', 0):.3g}"
                )
    return "; ".join([", ".join(parts), *(f"{k}: {', '.join(v)}" for k, v in others.items())])

"""CPU latency of every ONNX artifact of the main graph, measured side by side at export.

Each artifact runs on the runtime's ONNX Runtime CPU backend (default thread count: what a
``Sampler`` gets; threads sleep between runs) at batch 1 and 16, interleaved run by run in a
rotating order so that every artifact sees the same machine state, for a fixed time budget. The record lands in the
artifact's ``speed`` field (docs/bundle.md) and ``precision=None`` on ``ort-cpu`` reads it:
the fastest quality-approved artifact, never one measured slower than fp32.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .context import BuildContext

BATCHES = (1, 16)
BUDGET_S = 0.4  # timed rounds per batch size, all artifacts together
MIN_ROUNDS, MAX_ROUNDS, WARMUP = 3, 200, 1


def speed_feed(ctx: BuildContext, batch: int) -> dict[str, np.ndarray]:
    from .calibration import image_feed

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
    runners: list[Any], feed: dict[str, np.ndarray], budget_s: float = BUDGET_S
) -> tuple[list[float], list[list[float]]]:
    """p50 latency (ms) of each runner on ``feed``, and every round's times (ms), interleaved.

    The order rotates every round (A B C, B C A, C A B, ...) so that no runner always follows
    the same one: what a run leaves behind (cache state, waking threads) falls on each in turn.
    """
    k = len(runners)
    for _ in range(WARMUP):
        for r in runners:
            r.run(feed)
    rounds: list[list[float]] = []
    t_end = time.perf_counter() + budget_s
    while len(rounds) < MAX_ROUNDS and (len(rounds) < MIN_ROUNDS or time.perf_counter() < t_end):
        row = [0.0] * k
        for j in range(k):
            i = (j + len(rounds)) % k
            t0 = time.perf_counter_ns()
            runners[i].run(feed)
            row[i] = (time.perf_counter_ns() - t0) / 1e6
        rounds.append(row)
    p50 = [float(np.median([row[i] for row in rounds])) for i in range(k)]
    return p50, rounds


def open_for_speed(path: Any) -> Any | None:
    """``path`` on the runtime's ORT CPU backend with threads that sleep between runs: spinning
    threads of one session would steal the cores from the next one in the interleaving. None
    when ORT CPU has no kernel for one of its ops (it cannot be ``ort-cpu``'s choice then)."""
    from genedge.runtime.ort_backend import MissingKernelError
    from genedge.runtime.select import BackendOptions, open_file

    try:
        return open_file(path, "ort-cpu", options=BackendOptions(spin=False))
    except MissingKernelError:
        return None


def measure_artifacts(ctx: BuildContext) -> dict[str, dict[str, Any]]:
    """``{file: speed record}`` for the main graph's ONNX artifacts (fp32 first)."""
    spec = ctx.main
    arts = [
        a
        for a in ctx.artifacts
        if a.get("graph") == spec.name and a.get("format") == "onnx" and a.get("precision")
    ]
    arts.sort(key=lambda a: a["precision"] != "fp32")
    if len(arts) < 2 or arts[0]["precision"] != "fp32":
        return {}
    opened = [(a, open_for_speed(ctx.tmp / a["file"])) for a in arts]
    arts, runners = [a for a, r in opened if r], [r for _, r in opened if r]
    try:
        if len(runners) < 2 or arts[0]["precision"] != "fp32":
            return {}
        records: dict[str, dict[str, Any]] = {a["file"]: {"batch": {}} for a in arts}
        for batch in BATCHES:
            p50, rounds = interleaved_p50(runners, speed_feed(ctx, batch))
            for i, a in enumerate(arts):
                ratios = [row[0] / row[i] for row in rounds]
                records[a["file"]]["batch"][str(batch)] = {
                    "p50_ms": round(p50[i], 4),
                    "speedup_vs_fp32": round(p50[0] / p50[i], 3),
                    "round_range": [round(float(q), 3) for q in np.percentile(ratios, [10, 90])],
                    "rounds": len(rounds),
                }
    finally:
        for r in runners:
            r.close()
    for rec in records.values():
        rec.update(backend="ort-cpu", threads=None, machine=_machine())
    return records


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


def _summary(ctx: BuildContext, records: dict[str, dict[str, Any]]) -> str:
    parts = []
    for a in ctx.artifacts:
        rec = records.get(a["file"])
        if rec:
            b = rec["batch"]
            parts.append(f"{a['precision']} {b['1']['p50_ms']:.3g} / {b['16']['p50_ms']:.3g}")
    return ", ".join(parts)

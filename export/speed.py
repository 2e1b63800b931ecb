"""CPU latency of every ONNX artifact of the main graph, measured side by side at export.

Each artifact runs on the runtime's ONNX Runtime CPU backend (default threads: what a
``Sampler`` gets) at batch 1 and 16, interleaved run by run (A B C A B C ...) so that every
artifact sees the same machine state, for a fixed time budget. The record lands in the
artifact's ``speed`` field (docs/bundle.md) and ``precision=None`` on ``ort-cpu`` reads it:
the fastest quality-approved artifact, never one measured slower than fp32.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

BATCHES = (1, 16)
BUDGET_S = 0.4  # timed rounds per batch size, all artifacts together
MIN_ROUNDS, MAX_ROUNDS, WARMUP = 3, 200, 1


def _feed(ctx: Any, batch: int) -> dict[str, np.ndarray]:
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
    """p50 latency (ms) of each runner on ``feed``, and every round's times (ms), interleaved."""
    for _ in range(WARMUP):
        for r in runners:
            r.run(feed)
    rounds: list[list[float]] = []
    t_end = time.perf_counter() + budget_s
    while len(rounds) < MAX_ROUNDS and (len(rounds) < MIN_ROUNDS or time.perf_counter() < t_end):
        row = []
        for r in runners:
            t0 = time.perf_counter_ns()
            r.run(feed)
            row.append((time.perf_counter_ns() - t0) / 1e6)
        rounds.append(row)
    p50 = [float(np.median([row[i] for row in rounds])) for i in range(len(runners))]
    return p50, rounds


def measure_artifacts(ctx: Any) -> dict[str, dict[str, Any]]:
    """``{file: speed record}`` for the main graph's ONNX artifacts (fp32 first)."""
    from .parity import onnx_runner

    spec = ctx.main
    arts = [
        a
        for a in ctx.artifacts
        if a.get("graph") == spec.name and a.get("format") == "onnx" and a.get("precision")
    ]
    arts.sort(key=lambda a: a["precision"] != "fp32")
    if len(arts) < 2 or arts[0]["precision"] != "fp32":
        return {}
    runners = [onnx_runner(ctx.tmp / a["file"]) for a in arts]
    try:
        records: dict[str, dict[str, Any]] = {a["file"]: {"batch": {}} for a in arts}
        for batch in BATCHES:
            p50, rounds = interleaved_p50(runners, _feed(ctx, batch))
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
    backend = getattr(runners[0], "backend", "onnxruntime-cpu")
    for rec in records.values():
        rec.update(backend="ort-cpu" if backend == "onnxruntime-cpu" else backend, threads=None)
        rec["machine"] = _machine()
    return records


def _machine() -> str:
    import os
    import platform

    return f"{platform.machine()} {os.cpu_count()} cpus"


def stage_speed(ctx: Any) -> None:
    """Measure and record the main graph's artifacts (skipped with fewer than two)."""
    records = measure_artifacts(ctx)
    for a in ctx.artifacts:
        if a["file"] in records:
            a["speed"] = records[a["file"]]
    if records:
        ctx.log("CPU latency at export (ort-cpu, p50 ms, batch 1 / 16): " + _summary(ctx, records))


def _summary(ctx: Any, records: dict[str, dict[str, Any]]) -> str:
    parts = []
    for a in ctx.artifacts:
        rec = records.get(a["file"])
        if rec:
            b = rec["batch"]
            parts.append(f"{a['precision']} {b['1']['p50_ms']:.3g} / {b['16']['p50_ms']:.3g}")
    return ", ".join(parts)

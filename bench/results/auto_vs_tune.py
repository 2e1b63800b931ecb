"""How close an untuned ``backend="auto"`` comes to what ``genedge tune`` then finds.

    .venv/bin/python bench/results/auto_vs_tune.py BUNDLE --batch 16 --threads 2 --repeats 3 \
        --markdown bench/results/auto-vs-tune-mnist28.md

Each repeat starts from an empty tuning cache (a temporary ``GENEDGE_CACHE``): the bundle is
opened with ``backend="auto"`` at the batch asked, as a user who never ran ``tune`` would open
it (export's speed record decides, where it was taken on a quiet machine), and the pair it
opened is noted. Then ``tune`` measures every approved (backend, precision) pair here,
interleaved, and picks the fastest. The cost of not tuning is ``auto``'s pair's median
per-round time relative to the round's fastest, over tune's pick's: 1.00 when ``auto`` opened
tune's pick; 1.05 means untuned sampling runs 5% slower than tuned.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from genedge.cpu_load import load_average
from genedge.runtime import Sampler
from genedge.runtime.machine import cpu_model
from genedge.runtime.opening import read_bundle
from genedge.runtime.tune import tune_manifest


class _AutoLines(logging.Handler):
    """Keeps what ``auto`` says about its choice on the ``genedge.runtime`` logger."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("backend auto"):
            self.lines.append(record.getMessage())


def one_repeat(bundle: Path, batch: int, threads: int, seconds: float) -> dict:
    said = _AutoLines()
    logger = logging.getLogger("genedge.runtime")
    logger.addHandler(said)
    logger.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GENEDGE_CACHE"] = cache
        try:
            with Sampler.open(bundle, backend="auto", threads=threads, batch=batch) as s:
                auto = f"{s.info.name} {s.info.precision}"
        finally:
            logger.removeHandler(said)
        record, _ = tune_manifest(
            read_bundle(bundle), batches=[batch], threads=threads, seconds=seconds, write=False
        )
    found = record["batches"][str(batch)]
    tuned = f"{found['choice']['backend']} {found['choice']['precision']}"
    rel = found["relative"]
    return {
        "auto": auto,
        "why": "; ".join(said.lines) or "the fixed rule (no measured choice)",
        "tuned": tuned,
        "cost": rel[auto] / rel[tuned] if auto in rel else None,
        "p50_ms": found["p50_ms"],
        "relative": rel,
        "rounds": found["rounds"],
        "load": load_average(),
    }


def report(bundle: Path, batch: int, threads: int, runs: list[dict]) -> str:
    lines = [
        "# Untuned `auto` against `genedge tune`",
        "",
        f"- command: `python bench/results/auto_vs_tune.py {' '.join(sys.argv[1:])}`",
        f"- bundle: `{bundle}`, batch {batch}, {threads} threads",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical)",
        "- cost of not tuning: auto's pair's median per-round time relative to the round's",
        "  fastest, over tune's pick's (1.00: the same pair)",
        "",
        "| repeat | auto opened | tune picked | cost of not tuning | rounds | load (1 min) |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        cost = "not measured by tune" if r["cost"] is None else f"{r['cost']:.3f}x"
        load = "-" if r["load"] is None else f"{r['load'][0]:.2f}"
        lines.append(f"| {i} | {r['auto']} | {r['tuned']} | {cost} | {r['rounds']} | {load} |")
    lines += ["", "What auto said, per repeat:", ""]
    lines += [f"{i}. {r['why']}" for i, r in enumerate(runs, 1)]
    lines += ["", "p50 per pair (ms), per repeat:", ""]
    labels = sorted({k for r in runs for k in r["p50_ms"]})
    lines.append("| pair | " + " | ".join(f"repeat {i}" for i in range(1, len(runs) + 1)) + " |")
    lines.append("|---" * (len(runs) + 1) + "|")
    for label in labels:
        cells = [f"{r['p50_ms'][label]:.3f}" if label in r["p50_ms"] else "-" for r in runs]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=12.0, help="tune's measuring time")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    runs = []
    for i in range(args.repeats):
        runs.append(one_repeat(args.bundle, args.batch, args.threads, args.seconds))
        r = runs[-1]
        cost = "-" if r["cost"] is None else f"{r['cost']:.3f}x"
        print(f"repeat {i + 1}: auto {r['auto']}, tune {r['tuned']}, cost {cost}", flush=True)
    text = report(args.bundle, args.batch, args.threads, runs)
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

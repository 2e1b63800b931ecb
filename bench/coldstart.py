"""Cold start: a fresh Python process imports the runtime, opens the bundle, makes one result.

Run as ``python -m genedge.bench.coldstart BUNDLE --backend B --precision P [--threads T]``;
it prints one JSON line. ``measure_cold_start`` runs it in a subprocess, so nothing the
benchmark already loaded (shared libraries, page cache aside) helps it, and its peak
RSS is the peak of this one configuration.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from genedge.runtime import Sampler  # import time is part of a cold start

from .cases import open_kwargs
from .memory import peak_rss_bytes


def _child(
    bundle: str, backend: str, precision: str | None, threads: int | None, batch: int
) -> dict[str, Any]:
    t0 = time.perf_counter_ns()

    t1 = time.perf_counter_ns()
    sampler = Sampler.open(bundle, **open_kwargs(Sampler.open, backend, precision, threads))
    t2 = time.perf_counter_ns()
    sampler.sample(batch, seed=0)
    t3 = time.perf_counter_ns()
    return {
        "import_ms": (t1 - t0) / 1e6,
        "open_ms": (t2 - t1) / 1e6,
        "first_result_ms": (t3 - t2) / 1e6,
        "open_to_first_result_ms": (t3 - t1) / 1e6,
        "peak_rss_mib": peak_rss_bytes() / 2**20,
    }


def measure_cold_start(
    bundle: str | Path,
    backend: str,
    precision: str | None,
    threads: int | None,
    batch: int = 1,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Run the cold start in a fresh interpreter; adds the process wall time (interpreter start too)."""
    cmd = [
        sys.executable,
        "-m",
        "genedge.bench.coldstart",
        str(bundle),
        "--backend",
        backend,
        "--batch",
        str(batch),
    ]
    if precision:
        cmd += ["--precision", precision]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    t0 = time.perf_counter_ns()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {
            "backend": backend,
            "precision": precision,
            "error": f"timed out after {timeout:g} s",
        }
    wall_ms = (time.perf_counter_ns() - t0) / 1e6
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return {
            "backend": backend,
            "precision": precision,
            "error": f"exit {proc.returncode}: {err}",
        }
    return {
        "backend": backend,
        "precision": precision,
        "batch": batch,
        "process_wall_ms": wall_ms,
        **json.loads(lines[-1]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m genedge.bench.coldstart")
    p.add_argument("bundle")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch", type=int, default=1)
    a = p.parse_args(argv)
    print(json.dumps(_child(a.bundle, a.backend, a.precision, a.threads, a.batch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the machine itself delivers: a float32 matrix-multiply rate to set effective GFLOP/s against.

A short numpy GEMM probe (``C = A @ B``, ``n x n`` float32) at the bench's thread count:
numpy's BLAS is held to ``threads`` through threadpoolctl where it is installed (it comes
with scikit-learn, in the ``train`` extra); without it the BLAS runs its own default and
the record says so. The rate is the best call's: a ceiling the machine showed it can reach
(on a shared machine most calls lose time to other work, and a median would move with the
load); the median call is kept beside it.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

import numpy as np

PROBE_N = 512
PROBE_SECONDS = 0.5
MIN_CALLS = 5


def _blas_limit(threads: int | None) -> tuple[contextlib.AbstractContextManager, dict[str, Any]]:
    """A context holding numpy's BLAS to ``threads``, and what is known about that BLAS."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), {"blas": None, "threads_held": False}
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    info = {
        "blas": f"{blas[0].get('internal_api')} {blas[0].get('version')}" if blas else None,
        "threads_held": threads is not None and bool(blas),
    }
    if threads is None or not blas:
        return contextlib.nullcontext(), info
    return threadpool_limits(limits=threads, user_api="blas"), info


def matmul_probe(
    threads: int | None, n: int = PROBE_N, seconds: float = PROBE_SECONDS
) -> dict[str, Any]:
    """GFLOP/s of an ``n x n`` float32 matrix multiply with ``threads`` BLAS threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    limit, info = _blas_limit(threads)
    times: list[int] = []
    with limit:
        np.matmul(a, b, out=c)  # first call: BLAS thread start-up, page faults
        deadline = time.perf_counter_ns() + int(seconds * 1e9)
        while len(times) < MIN_CALLS or time.perf_counter_ns() < deadline:
            t0 = time.perf_counter_ns()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter_ns() - t0)
    flop = 2.0 * n**3
    return {
        "n": n,
        "dtype": "float32",
        "threads": threads,
        **info,
        "calls": len(times),
        "gflops": flop / min(times),  # FLOP per ns is GFLOP per s
        "gflops_median": flop / statistics.median(times),
    }

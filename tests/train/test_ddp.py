"""DDP through torchrun: 2 CPU processes (gloo) keep identical replicas; only rank 0 writes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_two_gloo_ranks_stay_identical(kind, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "x.npz",
        images=rng.random((48, 8, 8), dtype=np.float32),
        labels=np.arange(48) % 3,
    )
    env = {**os.environ, "GENEDGE_DDP_DEBUG_DIR": str(tmp_path / "hashes"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "genedge",
        "train",
        kind,
        "--data",
        str(tmp_path / "x.npz"),
        "--out",
        "OUT",
        "--conditional",
        "--steps",
        "4",
        "--batch-size",
        "8",
        "--sample-every",
        "2",
        "--eval-every",
        "100",
        "--no-progress",
    ]
    for attempt in range(2):
        # a fresh --out per attempt: the aborted one may have left a started run behind
        run = tmp_path / f"run{attempt}"
        argv = [str(run) if a == "OUT" else a for a in cmd]
        r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        # A gloo rank now and then aborts in C++ ("terminate called without an active exception",
        # SIGABRT) on a loaded 2-core machine: seen once in ~10 CI-like runs, never twice in a row.
        # One retry for exactly that; any other failure, or the same one twice, fails the test.
        if r.returncode == 0 or "terminate called without an active exception" not in r.stderr:
            break
    assert r.returncode == 0, r.stderr[-3000:]
    hashes = [(tmp_path / "hashes" / f"rank{i}.sha256").read_text().strip() for i in range(2)]
    assert len(hashes[0]) == 64 and hashes[0] == hashes[1]
    assert (run / "generator.safetensors").is_file()
    assert r.stdout.count(f"{kind}: 4 steps") == 1  # only rank 0 reports

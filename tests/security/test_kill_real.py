"""SIGKILL during real `genedge train` and `genedge export` saves (slow: each trial starts torch).

After every kill the run folder / bundle holds the previous complete artifact or none, and
the next run (or ``clean_stale_temps``) removes the temporary leftovers.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors")

from genedge.atomic import TMP_PREFIX, clean_stale_temps  # noqa: E402
from genedge.manifest import read_manifest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TRIALS = 6


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "genedge", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _kill_after(proc: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL ``proc`` after ``seconds`` unless it ended first; True if it was killed."""
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def _wait_for_save(
    proc: subprocess.Popen, path: Path, after: float, timeout: float = 300.0
) -> None:
    """Block until ``path`` was (re)written after ``after`` (a save is happening now and then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.stderr.read().decode()[-2000:]}")
        if path.exists() and path.stat().st_mtime > after:
            return
        time.sleep(0.05)
    pytest.fail(f"no save of {path.name} within {timeout:.0f} s")


def _leftovers(folder: Path) -> list[str]:
    return (
        [p.name for p in folder.iterdir() if p.name.startswith(TMP_PREFIX)]
        if folder.is_dir()
        else []
    )


@pytest.mark.slow
def test_sigkill_during_training_saves(tmp_path):
    pytest.importorskip("genedge.train.commands")
    from genedge.train import load_checkpoint
    from genedge.train.checkpoint import torch_load_weights_only

    run = tmp_path / "run"
    args = [
        "train",
        "gan",
        "--data",
        "digits",
        "--out",
        str(run),
        "--steps",
        "100000",
        "--sample-every",
        "2",
        "--eval-every",
        "100000",
        "--batch-size",
        "8",
        "--no-progress",
    ]
    rng = random.Random(7)
    loaded = 0
    for _ in range(TRIALS):
        gen = run / "generator.safetensors"
        started = time.time()
        proc = _start([*args, "--resume"], tmp_path)  # a killed run is continued, never replaced
        _wait_for_save(proc, gen, started)  # training is running and saving every 2 steps
        assert _kill_after(proc, rng.uniform(0.0, 1.5)), proc.stderr.read().decode()[-2000:]
        proc.stderr.close()
        if gen.exists():
            load_checkpoint(gen)  # complete, or this raises
            loaded += 1
        for resume in run.glob("*.pt"):
            torch_load_weights_only(resume)
        clean_stale_temps(run)
        assert _leftovers(run) == []
    assert loaded, "no trial got as far as a save: the kill times are too short for this machine"


@pytest.mark.slow
def test_sigkill_during_export(tmp_path):
    pytest.importorskip("genedge.export.commands")
    pytest.importorskip("onnx")
    from genedge.train import save_checkpoint
    from genedge.train.gan import GanConfig, Generator

    cfg = GanConfig(latent_dim=8, g_width=16, image_size=8)
    ckpt = save_checkpoint(tmp_path / "generator.safetensors", Generator(cfg), cfg, kind="gan")
    bundle = tmp_path / "bundle"
    args = ["export", str(ckpt), "--out", str(bundle), "--precision", "fp32,fp16", "--force"]
    first = _start(args, tmp_path)
    assert first.wait(timeout=600) == 0, first.stderr.read().decode()[-2000:]
    first.stderr.close()
    previous = {a.file: a.sha256 for a in read_manifest(bundle).artifacts}
    rng = random.Random(11)
    for _ in range(TRIALS):
        proc = _start(args, tmp_path)
        # the export writes into a temporary sibling first: wait until it exists, then kill
        deadline = time.monotonic() + 300
        while not any(p.name.startswith(TMP_PREFIX) for p in tmp_path.iterdir()):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        _kill_after(proc, rng.uniform(0.0, 8.0))
        proc.stderr.close()
        assert bundle.is_dir() or not bundle.exists()
        if not bundle.is_dir():  # killed between the two renames: the next clean puts it back
            clean_stale_temps(tmp_path)
        m = read_manifest(bundle)  # complete: listing, confinement
        for a in m.artifacts:
            m.path_of(a)  # and every hash
        assert {a.file for a in m.artifacts} == set(previous)
        clean_stale_temps(tmp_path)
        assert _leftovers(tmp_path) == [] and _leftovers(bundle) == []
        time.sleep(0.1)

"""`genedge train` / `genedge eval` through the real CLI: exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _genedge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "genedge", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One tiny VAE run through the CLI, shared by the eval tests."""
    root = tmp_path_factory.mktemp("cli")
    images = np.random.default_rng(0).random((40, 8, 8), dtype=np.float32)
    np.save(root / "x.npy", images)
    r = _genedge(
        "train",
        "vae",
        "--data",
        str(root / "x.npy"),
        "--out",
        str(root / "run"),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--no-progress",
        "--threads",
        "1",
        cwd=root,
    )
    assert r.returncode == 0, r.stderr
    assert "vae: 3 steps" in r.stdout
    return root / "run"


def test_train_cli_writes_a_checkpoint(run_dir):
    assert (run_dir / "generator.safetensors").is_file()
    assert json.loads((run_dir / "config.json").read_text())["options"]["batch_size"] == 8


def test_eval_cli_prints_and_writes_json(run_dir, tmp_path):
    out = tmp_path / "m.json"
    r = _genedge(
        "eval", str(run_dir / "generator.safetensors"), "--json", str(out), "-n", "40", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert "frechet_distance" in r.stdout
    assert "frechet_distance" in json.loads(out.read_text())


@pytest.mark.parametrize(
    "args",
    [
        ["train", "gan", "--data", "no-such-thing", "--out", "r", "--steps", "2"],
        ["train", "gan", "--data", "digits", "--out", "r", "--steps", "0"],
        ["train", "ar", "--data", "stdlib-docs", "--out", "r", "--conditional"],
        ["eval", "missing.safetensors"],
    ],
)
def test_user_errors_exit_2_with_one_line(args, tmp_path):
    r = _genedge(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_unknown_kind_is_an_argparse_error(tmp_path):
    r = _genedge("train", "diffusion", "--data", "digits", "--out", "r", cwd=tmp_path)
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_resume_state_exits_2(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "resume.pt").write_bytes(b"not a zip")
    images = np.random.default_rng(0).random((20, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", images)
    r = _genedge(
        "train",
        "vae",
        "--data",
        str(tmp_path / "x.npy"),
        "--out",
        str(tmp_path / "run"),
        "--steps",
        "2",
        "--resume",
        "--no-progress",
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "resume.pt" in r.stderr and "Traceback" not in r.stderr

"""`genedge train --out`: a finished run is never silently replaced (genedge/outputs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genedge.cli import main
from genedge.outputs import folder_lock


def _train(data: Path, out: Path, *extra: str) -> int:
    argv = ["train", "vae", "--data", str(data), "--out", str(out), "--steps", "2"]
    return main([*argv, "--batch-size", "8", "--no-progress", "--threads", "1", *extra])


@pytest.fixture()
def data(tmp_path) -> Path:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((24, 8, 8), dtype=np.float32))
    return tmp_path / "x.npy"


def test_a_finished_run_needs_resume_or_overwrite(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(data, run) == 0
    trained = (run / "generator.safetensors").read_bytes()
    assert _train(data, run) == 2
    assert "--resume to continue it, --overwrite" in capsys.readouterr().err
    assert (run / "generator.safetensors").read_bytes() == trained
    assert _train(data, run, "--overwrite", "--seed", "5") == 0
    assert (run / "generator.safetensors").read_bytes() != trained
    assert json.loads((run / "config.json").read_text())["options"]["seed"] == 5


def test_overwrite_never_removes_a_users_file(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(data, run) == 0
    (run / "my-notes.txt").write_text("keep")
    assert _train(data, run, "--overwrite") == 2
    assert "my-notes.txt" in capsys.readouterr().err
    assert (run / "my-notes.txt").read_text() == "keep"


def test_a_folder_of_user_files_is_refused(data, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "photo.jpg").write_bytes(b"p")
    assert _train(data, mine) == 2
    assert sorted(p.name for p in mine.iterdir()) == ["photo.jpg"]


def test_two_trainings_on_one_folder_cannot_run_at_once(data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with folder_lock(run, who="genedge train"):
        assert _train(data, run) == 4
    assert "being written by another genedge command" in capsys.readouterr().err


def test_resume_and_overwrite_together_are_refused(data, tmp_path):
    assert _train(data, tmp_path / "run", "--resume", "--overwrite") == 2

"""Time-boxed training says how many steps it made against this machine's idle pace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genedge.demo import steps_beside_reference
from genedge.train.budget import StepPace


def _pace(early_s: float, n_early: int, late_s: float, n_late: int) -> StepPace:
    pace = StepPace()
    for s in [1.0, 1.0] + [early_s] * n_early + [late_s] * n_late:  # 2 slow warm-up steps
        pace.add(s)
    return pace


def test_the_first_seconds_set_the_idle_pace():
    pace = _pace(0.01, 600, 0.5, 20)  # 6 s of fast steps, then a hog arrives
    assert pace.idle_steps_per_s() == pytest.approx(100.0)
    assert StepPace().idle_steps_per_s() is None  # too few steps to say


def test_a_run_far_short_of_its_idle_pace_warns_and_offers_steps():
    line, short = _pace(0.01, 100, 1.0, 230).report(332, 240.0)
    assert short and "332 steps in 4 min" in line and "100.0 steps/s" in line
    assert "fits about 24000" in line and "--steps 24000" in line and "weaker model" in line


def test_a_run_at_its_pace_does_not_warn():
    line, short = _pace(0.01, 2000, 0.01, 0).report(2000, 20.0)
    assert not short and "--steps" not in line and "fits about 2000" in line
    assert StepPace().report(4, None) == ("4 steps", False)  # a --steps run: nothing to compare


def test_a_minutes_run_prints_its_budget_line(tmp_path, capsys):
    from genedge.train.options import TrainOptions
    from genedge.train.trainer import train_run

    rng = np.random.default_rng(0)
    data = tmp_path / "bars.npz"
    np.savez(data, images=rng.random((32, 8, 8), dtype=np.float32), labels=np.arange(32) % 4)
    opts = TrainOptions(
        kind="gan",
        data=str(data),
        out=tmp_path / "run",
        minutes=0.02,
        batch_size=8,
        sample_every=10**6,
        eval_every=10**6,
        eval_samples=16,
        progress=False,
        threads=1,
    )
    train_run(opts)
    out = capsys.readouterr()
    said = [ln for ln in (out.out + out.err).splitlines() if "budget: " in ln]
    assert len(said) == 1 and "steps in 0.02 min" in said[0] and "steps/s" in said[0]


def _run_with_steps(run: Path, steps: int) -> Path:
    run.mkdir()
    rows = [{"step": s, "phase": "train"} for s in range(1, steps + 1)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "garbage\n")
    return run


def test_the_demo_prints_its_steps_beside_the_readme_reference(tmp_path):
    few = steps_beside_reference("gan", _run_with_steps(tmp_path / "a", 78), 4.0)
    assert few.startswith("gan: 78 steps in 4 min; the README's reference run made 2647")
    assert "Frechet distance 3.66" in few and "weaker model" in few
    many = steps_beside_reference("gan", _run_with_steps(tmp_path / "b", 2500), 4.0)
    assert "weaker" not in many
    assert steps_beside_reference("vae", tmp_path / "b", 1.0) == "vae: 2500 steps in 1 min"
    assert steps_beside_reference("gan", tmp_path / "missing", 4.0) is None

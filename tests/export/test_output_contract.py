"""`genedge export --out` never deletes what genedge did not write (genedge/outputs.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from genedge.cli import main


def _export(ckpt: Path, out: Path, *extra: str) -> int:
    argv = ["export", str(ckpt), "--out", str(out), "--precision", "fp32", "--calib-samples", "32"]
    return main([*argv, *extra])


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_export_into_the_run_folder_it_reads_is_refused(ckpts, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(ckpts["gan"], run / "generator.safetensors")
    (run / "resume.pt").write_bytes(b"optimizer state")
    (run / "metrics.jsonl").write_text("{}\n")
    before = _tree(run)
    assert _export(run / "generator.safetensors", run) == 2
    err = capsys.readouterr().err
    assert "holds the input" in err and "Traceback" not in err
    assert _tree(run) == before


def test_export_into_a_folder_with_user_files_is_refused(ckpts, tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "docs").mkdir(parents=True)
    (out / "notes.txt").write_text("do not lose me")
    (out / "docs" / "a.md").write_text("a")
    before = _tree(out)
    assert _export(ckpts["gan"], out) == 2
    assert "not a genedge bundle" in capsys.readouterr().err
    assert _tree(out) == before


def test_re_export_keeps_working_but_not_over_a_users_file(ckpts, tmp_path, capsys):
    out = tmp_path / "bundle"
    assert _export(ckpts["gan"], out) == 0
    assert _export(ckpts["gan"], out, "--force") == 0  # genedge's own bundle: rebuilt in place
    (out / "notes.txt").write_text("mine")
    assert _export(ckpts["gan"], out, "--force") == 2
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and (out / "manifest.json").is_file()


def test_a_failed_first_export_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert _export(bad, tmp_path / "new") == 2
    assert not (tmp_path / "new").exists()

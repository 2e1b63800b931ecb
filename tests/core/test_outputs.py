"""The output contract (genedge/outputs.py, genedge/atomic.py): what an output path may name."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from genedge.atomic import atomic_dir, atomic_write_bytes, atomic_write_text
from genedge.cli import main
from genedge.errors import BadInputError, IntegrityError
from genedge.imageio import save_png
from genedge.outputs import (
    check_bundle_out,
    check_output_file,
    check_run_out,
    clear_run,
    folder_lock,
    written_by_genedge,
)


def _bundle(folder: Path, files=("model.onnx",)) -> Path:
    folder.mkdir(parents=True)
    for f in files:
        (folder / f).write_bytes(b"x")
    manifest = {"format": "genedge.bundle", "artifacts": [{"file": f} for f in files]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _run(folder: Path, kind: str = "gan") -> Path:
    (folder / "samples").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"options": {"kind": kind}}))
    (folder / "generator.safetensors").write_bytes(b"w")
    (folder / "samples" / "step_000010.png").write_bytes(b"p")
    return folder


# ---------------------------------------------------------------- single files
def test_a_new_path_and_genedge_files_are_allowed(tmp_path):
    assert check_output_file(tmp_path / "new" / "x.png") == tmp_path / "new" / "x.png"
    save_png(tmp_path / "g.png", np.zeros((4, 4), np.uint8))
    atomic_write_text(tmp_path / "g.json", "{}")
    assert written_by_genedge(tmp_path / "g.png") and written_by_genedge(tmp_path / "g.json")
    check_output_file(tmp_path / "g.png")
    check_output_file(tmp_path / "g.json")


def test_a_png_keeps_its_marker_without_extended_attributes(tmp_path):
    save_png(tmp_path / "g.png", np.zeros((4, 4), np.uint8))
    copy = tmp_path / "copy.png"
    copy.write_bytes((tmp_path / "g.png").read_bytes())  # a plain copy drops the xattr
    assert written_by_genedge(copy)


def test_a_users_file_is_never_replaced(tmp_path):
    mine = tmp_path / "holiday.png"
    mine.write_bytes(b"my photo")
    with pytest.raises(BadInputError, match="genedge did not write it"):
        check_output_file(mine)
    out = tmp_path / "notes.json"
    out.write_text("my notes")
    assert main(["eval", "x.safetensors", "--json", str(out)]) == 2
    assert out.read_text() == "my notes"


def test_a_symlink_is_refused_and_left_alone(tmp_path):
    target = tmp_path / "target.png"
    target.write_bytes(b"t")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    with pytest.raises(BadInputError, match="symbolic link"):
        check_output_file(link)
    with pytest.raises(BadInputError, match="symbolic link"):
        atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"t"


def test_a_fifo_is_written_through_never_replaced(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    check_output_file(fifo)
    save_png(fifo, np.full((2, 2), 7, np.uint8))
    reader.join(10)
    assert got and got[0].startswith(b"\x89PNG")
    assert fifo.is_fifo()
    assert not [p for p in tmp_path.iterdir() if p.name != "pipe.png"]


def test_a_character_device_is_written_through(tmp_path):
    if not os.access("/dev/null", os.W_OK):
        pytest.skip("/dev/null is not writable here")
    check_output_file("/dev/null")
    atomic_write_text("/dev/null", "gone")
    assert Path("/dev/null").is_char_device()


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(BadInputError, match="is a folder"):
        check_output_file(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_is_refused_before_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(BadInputError, match="cannot write"):
            check_output_file(ro / "x.png")
    finally:
        ro.chmod(0o755)


def test_the_cli_checks_every_output_flag_before_work(tmp_path, capsys):
    mine = tmp_path / "report.md"
    mine.write_text("mine")
    code = main(["bench", str(tmp_path / "no-bundle"), "--markdown", str(mine)])
    err = capsys.readouterr().err
    assert code == 2 and "--markdown" in err and "did not write" in err
    assert mine.read_text() == "mine"


# ---------------------------------------------------------------- bundles
def test_bundle_out_new_empty_or_own(tmp_path):
    check_bundle_out(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_bundle_out(tmp_path / "empty")
    check_bundle_out(_bundle(tmp_path / "b"))


def test_bundle_out_with_foreign_files_is_refused(tmp_path):
    b = _bundle(tmp_path / "b")
    (b / "notes.txt").write_text("n")
    with pytest.raises(BadInputError, match="notes.txt"):
        check_bundle_out(b)
    user = tmp_path / "user"
    (user / "docs").mkdir(parents=True)
    with pytest.raises(BadInputError, match="not a genedge bundle"):
        check_bundle_out(user)


def test_bundle_out_that_holds_an_input_is_refused(tmp_path):
    run = _run(tmp_path / "run")
    with pytest.raises(BadInputError, match="holds the input"):
        check_bundle_out(run, sources=[run / "generator.safetensors"])


def test_the_current_folder_is_refused(tmp_path, monkeypatch):
    _bundle(tmp_path / "b")
    monkeypatch.chdir(tmp_path / "b")
    with pytest.raises(BadInputError, match="current folder"):
        check_bundle_out(Path("."))


def test_a_symlinked_out_folder_is_refused(tmp_path):
    real = _bundle(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(BadInputError, match="symbolic link"):
        check_bundle_out(tmp_path / "link")


def test_a_file_that_appears_during_the_build_stops_the_swap(tmp_path):
    b = _bundle(tmp_path / "b")
    swap = atomic_dir(b, before_swap=lambda: check_bundle_out(b))
    with pytest.raises(BadInputError, match="late.txt"), swap as tmp:
        (tmp / "model.onnx").write_bytes(b"new")
        (b / "late.txt").write_text("written while the bundle was built")
    assert (b / "late.txt").read_text().startswith("written")
    assert (b / "model.onnx").read_bytes() == b"x"


# ---------------------------------------------------------------- training runs
def test_run_out_needs_resume_or_overwrite(tmp_path):
    run = _run(tmp_path / "run")
    with pytest.raises(BadInputError, match="--resume to continue it, --overwrite"):
        check_run_out(run, kind="gan", resume=False, overwrite=False)
    check_run_out(run, kind="gan", resume=True, overwrite=False)
    check_run_out(run, kind="gan", resume=False, overwrite=True)
    with pytest.raises(BadInputError, match="holds a `gan` training run"):
        check_run_out(run, kind="vae", resume=False, overwrite=True)


def test_run_out_with_foreign_files_is_refused_even_with_overwrite(tmp_path):
    run = _run(tmp_path / "run")
    (run / "samples" / "keep-me.jpg").write_bytes(b"k")
    with pytest.raises(BadInputError, match="samples/keep-me.jpg"):
        check_run_out(run, kind="gan", resume=False, overwrite=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("n")
    with pytest.raises(BadInputError, match="not a genedge training run"):
        check_run_out(tmp_path / "mine", kind="gan", resume=False, overwrite=True)


def test_clear_run_removes_only_the_runs_files(tmp_path):
    run = _run(tmp_path / "run")
    (run / ".genedge.lock").write_bytes(b"")
    clear_run(run)
    assert sorted(p.name for p in run.iterdir()) == [".genedge.lock"]


def test_a_second_writer_is_refused(tmp_path):
    held = folder_lock(tmp_path, who="genedge train")
    second = folder_lock(tmp_path, who="genedge train")
    with held, pytest.raises(IntegrityError, match="another"), second:
        pass


@pytest.fixture()
def read_only_folder(tmp_path):
    """A read-only bind mount (root may mount; elsewhere the test is skipped)."""
    import subprocess

    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        remount = ["mount", "-o", "remount,bind,ro", str(ro)]
        if subprocess.run(remount, capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_a_read_only_filesystem_is_refused_before_work(read_only_folder, capsys):
    with pytest.raises(BadInputError, match="read-only filesystem"):
        check_output_file(read_only_folder / "x.png")
    with pytest.raises(BadInputError, match="read-only filesystem"):
        check_bundle_out(read_only_folder / "bundle")
    assert main(["train", "gan", "--data", "digits", "--out", str(read_only_folder / "run")]) == 2
    err = capsys.readouterr().err
    assert "read-only filesystem" in err and "Traceback" not in err

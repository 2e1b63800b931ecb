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
    check_triton_out,
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
    """A run folder as genedge writes it: each file carries genedge's marker."""
    (folder / "samples").mkdir(parents=True)
    atomic_write_text(folder / "config.json", json.dumps({"options": {"kind": kind}}))
    atomic_write_bytes(folder / "generator.safetensors", b"w")
    atomic_write_bytes(folder / "samples" / "step_000010.png", b"p")
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


def test_overwrite_never_deletes_a_users_file_under_a_run_files_name(tmp_path):
    run = _run(tmp_path / "run")
    (run / "samples.txt").write_text("my notes")  # a gan run never writes it; a user did
    (run / "samples" / "step_mine.png").write_bytes(b"mine")
    with pytest.raises(BadInputError, match="samples.txt") as e:
        check_run_out(run, kind="gan", resume=False, overwrite=True)
    assert "samples/step_mine.png" in str(e.value)
    clear_run(run)  # even called directly, only marked files go
    assert (run / "samples.txt").read_text() == "my notes"
    assert (run / "samples" / "step_mine.png").read_bytes() == b"mine"
    assert not (run / "generator.safetensors").exists()


def test_a_symlink_in_a_run_is_refused_before_work(tmp_path):
    run = _run(tmp_path / "run")
    (tmp_path / "elsewhere.png").write_bytes(b"e")
    (run / "samples.png").symlink_to(tmp_path / "elsewhere.png")
    for resume, overwrite in ((True, False), (False, True)):
        with pytest.raises(BadInputError, match="samples.png"):
            check_run_out(run, kind="gan", resume=resume, overwrite=overwrite)


def test_a_folder_under_a_listed_bundle_name_is_foreign(tmp_path):
    b = _bundle(tmp_path / "b")
    (b / "model.onnx").unlink()
    (b / "model.onnx").mkdir()
    (b / "model.onnx" / "precious.txt").write_text("p")
    with pytest.raises(BadInputError, match="model.onnx"):
        check_bundle_out(b)


def test_single_files_never_land_inside_a_bundle_or_over_a_runs_files(tmp_path):
    b = _bundle(tmp_path / "b")
    with pytest.raises(BadInputError, match="inside the genedge bundle"):
        check_output_file(b / "grid.png")
    with pytest.raises(BadInputError, match="inside the genedge bundle"):
        check_output_file(b / "manifest.json", flag="--json")
    run = _run(tmp_path / "run")
    with pytest.raises(BadInputError, match="file of the training run"):
        check_output_file(run / "generator.safetensors")
    with pytest.raises(BadInputError, match="file of the training run"):
        check_output_file(run / "samples" / "step_000010.png")
    check_output_file(run / "eval.json", flag="--json")  # a new file beside a run is fine


def test_one_kind_of_genedge_output_never_replaces_another(tmp_path):
    atomic_write_text(tmp_path / "metrics.json", "{}")
    with pytest.raises(BadInputError, match="another kind of genedge output"):
        check_output_file(tmp_path / "metrics.json", suffixes=(".png",))
    check_output_file(tmp_path / "metrics.json", suffixes=(".json",))


def test_the_cli_refuses_a_sample_over_a_checkpoint(tmp_path, capsys):
    run = _run(tmp_path / "run")
    assert main(["sample", "bundle", "--out", str(run / "generator.safetensors")]) == 2
    assert (run / "generator.safetensors").read_bytes() == b"w"
    atomic_write_bytes(tmp_path / "weights.safetensors", b"w")
    assert main(["sample", "bundle", "--out", str(tmp_path / "weights.safetensors")]) == 2
    assert "another kind" in capsys.readouterr().err


def test_triton_repository_rules(tmp_path):
    out = tmp_path / "b"
    check_triton_out(tmp_path / "repo", out)  # new
    repo = tmp_path / "repo"
    (repo / "someone_else_model" / "1").mkdir(parents=True)
    (repo / "someone_else_model" / "config.pbtxt").write_text("theirs")
    check_triton_out(repo, out)  # other models are left alone
    mine = repo / "b_generator"
    (mine / "1").mkdir(parents=True)
    atomic_write_text(mine / "config.pbtxt", "genedge's")
    check_triton_out(repo, out)  # this bundle's own model folder: rewritten
    (mine / "1" / "model.onnx").write_bytes(b"user's")
    with pytest.raises(BadInputError, match="b_generator/1/model.onnx"):
        check_triton_out(repo, out)
    with pytest.raises(BadInputError, match="overlap"):
        check_triton_out(out / "tri", out)
    with pytest.raises(BadInputError, match="not a Triton model repository"):
        check_triton_out(_bundle(tmp_path / "other"), out)


def test_a_triton_model_folder_that_is_a_symlink_is_refused(tmp_path):
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "config.pbtxt").write_text("mine")
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "b_generator").symlink_to(user)
    with pytest.raises(BadInputError, match="b_generator"):
        check_triton_out(tmp_path / "repo", tmp_path / "b")
    assert (user / "config.pbtxt").read_text() == "mine"


def test_the_run_files_the_contract_knows_are_the_ones_train_writes():
    pytest.importorskip("torch")
    from genedge.outputs import RUN_FILES
    from genedge.train.trainer import RunPaths

    paths = RunPaths(Path("run"))
    written = {paths.generator, paths.resume, paths.metrics, paths.samples_dir}
    assert {p.name for p in written} <= RUN_FILES
    assert {"config.json", "samples.png", "samples.txt", "curves.png"} <= RUN_FILES

"""Atomic writes: a kill at any instant leaves the previous complete artifact or none."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from genedge.atomic import (
    TMP_PREFIX,
    atomic_dir,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    clean_stale_temps,
)
from genedge.errors import BadInputError

REPO = Path(__file__).resolve().parents[2]
SIZE = 4 << 20  # 4 MiB per generation: large enough that a kill often lands mid-write


def _content(generation: int, size: int = SIZE) -> bytes:
    block = hashlib.sha256(str(generation).encode()).digest() * 2048  # 64 KiB
    return generation.to_bytes(8, "little") + (block * (size // len(block) + 1))[: size - 8]


def _generation_of(data: bytes) -> int:
    """The generation a complete file holds; fails the test for a partial or foreign file."""
    g = int.from_bytes(data[:8], "little")
    assert data == _content(g, len(data)) and len(data) == SIZE, "partial artifact visible"
    return g


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TMP_PREFIX))


def _child(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


WRITER = """
    import hashlib, sys
    from pathlib import Path
    from genedge.atomic import atomic_path, atomic_dir
    SIZE = 4 << 20
    def content(g, size=SIZE):
        block = hashlib.sha256(str(g).encode()).digest() * 2048
        return g.to_bytes(8, "little") + (block * (size // len(block) + 1))[: size - 8]
    mode, final = sys.argv[1], Path(sys.argv[2])
    print("ready", flush=True)
    for g in range(1, 10**6):
        data = content(g)
        if mode == "file":
            with atomic_path(final) as tmp, open(tmp, "wb") as f:
                for i in range(0, len(data), 1 << 16):
                    f.write(data[i:i + (1 << 16)])
        else:
            with atomic_dir(final) as tmp:
                for name in ("a.bin", "b.bin"):
                    (tmp / name).write_bytes(data)
                (tmp / "manifest.json").write_text(str(g))
"""


def _complete_generation(mode: str, final: Path) -> int | None:
    """The generation ``final`` holds if it exists (asserting it is complete), else None."""
    if not final.exists():
        return None
    if mode == "file":
        return _generation_of(final.read_bytes())
    g = int((final / "manifest.json").read_text())
    assert sorted(p.name for p in final.iterdir()) == ["a.bin", "b.bin", "manifest.json"]
    assert {_generation_of((final / n).read_bytes()) for n in ("a.bin", "b.bin")} == {g}
    return g


def _kill_trials(mode: str, tmp_path: Path, trials: int) -> set[int]:
    final = tmp_path / ("model.bin" if mode == "file" else "bundle")
    seen: set[int] = set()
    rng = random.Random(1234)
    for trial in range(trials):
        proc = _child(WRITER, mode, str(final))
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read()
        deadline = time.monotonic() + 60
        while trial == 0 and not final.exists() and time.monotonic() < deadline:
            time.sleep(0.01)  # the first trial makes sure a previous artifact exists
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = _complete_generation(mode, final)  # previous complete artifact, or none
        clean_stale_temps(tmp_path)
        after = _complete_generation(mode, final)  # a swap cut in half is put back
        assert before is None or after == before
        seen.update(g for g in (before, after) if g is not None)
        assert _leftovers(tmp_path) == []
        for p in proc.stdout, proc.stderr:
            p.close()
    return seen


@pytest.mark.parametrize("mode", ["file", "dir"])
def test_sigkill_at_random_instants_never_exposes_a_partial_artifact(tmp_path, mode):
    seen = _kill_trials(mode, tmp_path, trials=10)
    assert seen, "no trial completed a single write: the kills came too early to test anything"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["file", "dir"])
def test_sigkill_many_trials(tmp_path, mode):
    assert _kill_trials(mode, tmp_path, trials=60)


def test_a_failing_block_keeps_the_previous_file_and_leaves_no_temp(tmp_path):
    final = tmp_path / "x.bin"
    atomic_write_bytes(final, b"old")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert final.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_a_failing_dir_block_keeps_the_previous_folder(tmp_path):
    final = tmp_path / "bundle"
    with atomic_dir(final) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(KeyError), atomic_dir(final) as tmp:
        (tmp / "a").write_text("new")
        raise KeyError("boom")
    assert (final / "a").read_text() == "old" and _leftovers(tmp_path) == []


def test_a_replaced_folder_has_only_the_new_content(tmp_path):
    final = tmp_path / "bundle"
    with atomic_dir(final) as tmp:
        (tmp / "stale").write_text("1")
    with atomic_dir(final) as tmp:
        (tmp / "fresh").write_text("2")
    assert [p.name for p in final.iterdir()] == ["fresh"] and _leftovers(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_clean_keeps_a_live_writers_temps_and_removes_dead_ones(tmp_path):
    dead = _dead_pid()
    live = tmp_path / f"{TMP_PREFIX}{os.getpid()}-abc-model.bin"
    stale = tmp_path / f"{TMP_PREFIX}{dead}-abc-model.bin"
    users = tmp_path / f"{TMP_PREFIX}notes.txt"  # not a name genedge makes: kept
    stale_dir = tmp_path / f"{TMP_PREFIX}{dead}-xyz-bundle"
    for p in (live, stale, users):
        p.write_bytes(b"x")
    stale_dir.mkdir()
    (stale_dir / "f").write_bytes(b"y")
    (tmp_path / "model.bin").write_bytes(b"keep")
    removed = clean_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale, stale_dir])
    assert users.exists() and live.exists() and (tmp_path / "model.bin").read_bytes() == b"keep"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="zombies are read from /proc")
def test_clean_removes_the_temps_of_a_killed_writer_not_yet_reaped(tmp_path):
    """kill -9 leaves a zombie until its parent waits for it (in a container whose init does
    not reap, for good); signal 0 still reaches a zombie, so it must not count as alive."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc.kill()
        stat_file = Path(f"/proc/{proc.pid}/stat")
        deadline = time.monotonic() + 30
        while stat_file.read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.01)
        stale = tmp_path / f"{TMP_PREFIX}{proc.pid}-abc-bundle"
        stale.mkdir()
        assert clean_stale_temps(tmp_path) == [stale]
    finally:
        proc.wait()


def test_clean_puts_back_a_folder_moved_aside_by_a_killed_swap(tmp_path):
    dead = _dead_pid()
    aside = tmp_path / f"{TMP_PREFIX}old-{dead}-bundle"
    aside.mkdir()
    (aside / "manifest.json").write_text("{}")
    assert clean_stale_temps(tmp_path) == []
    assert (tmp_path / "bundle" / "manifest.json").read_text() == "{}"
    assert _leftovers(tmp_path) == []


def test_clean_drops_the_aside_folder_when_the_new_one_is_in_place(tmp_path):
    dead = _dead_pid()
    aside = tmp_path / f"{TMP_PREFIX}old-{dead}-bundle"
    aside.mkdir()
    (tmp_path / "bundle").mkdir()
    assert clean_stale_temps(tmp_path) == [aside] and (tmp_path / "bundle").is_dir()


def test_clean_on_a_missing_folder_is_a_no_op(tmp_path):
    assert clean_stale_temps(tmp_path / "nope") == []


FULL_DISK = """
    import json, resource, signal, sys
    from pathlib import Path
    from genedge.atomic import atomic_dir, atomic_write_bytes
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    mode, final = sys.argv[1], Path(sys.argv[2])
    try:
        if mode == "file":
            atomic_write_bytes(final, b"n" * (3 << 20))
        else:
            with atomic_dir(final) as tmp:
                (tmp / "a.bin").write_bytes(b"n" * (3 << 20))
        print(json.dumps({"error": None}))
    except Exception as e:
        print(json.dumps({"error": type(e).__name__, "message": str(e), "exit": getattr(e, "exit_code", None)}))
"""


@pytest.mark.parametrize("mode", ["file", "dir"])
def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_artifact(tmp_path, mode):
    final = tmp_path / ("model.bin" if mode == "file" else "bundle")
    if mode == "file":
        atomic_write_text(final, "previous")
    else:
        with atomic_dir(final) as tmp:
            (tmp / "a.bin").write_text("previous")
    proc = _child(FULL_DISK, mode, str(final))
    out, err = proc.communicate(timeout=60)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["error"] == BadInputError.__name__ and result["exit"] == 2, (result, err)
    assert str(final) in result["message"] and "disk is full" in result["message"]
    assert "Traceback" not in result["message"]
    kept = final if mode == "file" else final / "a.bin"
    assert kept.read_text() == "previous" and _leftovers(tmp_path) == []


def test_written_files_and_folders_get_the_umasks_mode_not_private(tmp_path):
    """mkstemp/mkdtemp make 0600/0700 temps; what lands must be readable as a plain write would be."""
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        with atomic_dir(tmp_path / "bundle") as d:
            (d / "m.json").write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "bundle").stat().st_mode) == 0o750


def test_discard_staged_removes_only_files_of_its_staging_folder(tmp_path):
    from genedge.atomic import discard_staged

    staging, user = tmp_path / "staging", tmp_path / "user"
    staging.mkdir(), user.mkdir()
    (staging / "model.int4.onnx").write_bytes(b"x")
    (user / "notes.txt").write_text("keep")
    (staging / "sub").mkdir()
    (staging / "sub" / "f").write_text("keep")
    discard_staged(staging, staging / "model.int4.onnx")
    assert not (staging / "model.int4.onnx").exists()
    discard_staged(staging, staging / "model.int4.onnx")  # gone already: nothing to do
    for outside in (
        user / "notes.txt",
        staging / "sub" / "f",
        staging / ".." / "user" / "notes.txt",
    ):
        with pytest.raises(AssertionError):
            discard_staged(staging, outside)
    assert (user / "notes.txt").read_text() == "keep" and (staging / "sub" / "f").exists()

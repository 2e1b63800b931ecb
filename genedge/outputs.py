"""The output contract: what ``--out`` (and every other output path) may name.

One place decides, before any work starts, whether genedge may write where it was asked:

- a path that does not exist (its nearest existing parent must be a writable folder);
- an empty folder;
- genedge's own output of the same kind: a bundle whose manifest says so, a training run
  whose ``config.json`` says so, a file genedge wrote (marked at write time).

Anything else is refused with exit 2, naming what is there and how to proceed. A folder
that also holds files genedge did not write is refused even with ``--overwrite``: genedge
never deletes or replaces a file it did not write. A single-file output that exists and is
not a regular file is written through (a FIFO, a character device such as ``/dev/null``)
or refused (a symlink, a socket, a block device), never replaced.

genedge recognises a file as its own by content, never by a marker alone: each file it
writes records the sha256 of what was written in the extended attribute ``user.genedge``
(set by ``genedge.atomic``), and each PNG it encodes also holds the sha256 of its other
bytes in a ``tEXt`` chunk, which survives copies to filesystems without extended
attributes. A file is replaced only while the recorded hash matches its content.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from genedge.atomic import LOCK_NAME, TMP_PREFIX
from genedge.errors import BadInputError, IntegrityError, printable
from genedge.file_marks import MARK_PREFIX, MARK_XATTR
from genedge.file_marks import is_write_through as is_write_through  # re-exported
from genedge.file_marks import lstat_or_none as _lstat
from genedge.file_marks import mark_written as mark_written  # re-exported
from genedge.file_marks import regular_file_sha256 as _sha256
from genedge.imageio import is_own_png
from genedge.manifest import FORMAT, MANIFEST_NAME
from genedge.readback import (
    MANIFEST_BYTES,
    RUN_CONFIG_BYTES,
    MissingFileError,
    ReadbackError,
    read_json,
)

# What a training run folder holds when genedge wrote it (train/trainer.py's RunPaths).
RUN_FILES = frozenset(
    {
        "config.json",
        "generator.safetensors",
        "resume.pt",
        "metrics.jsonl",
        "samples",
        "samples.png",
        "samples.txt",
        "curves.png",
    }
)


def is_housekeeping(name: str) -> bool:
    """genedge's lock file and temporaries: always genedge's own."""
    return name == LOCK_NAME or name.startswith(TMP_PREFIX)


def _show(path: Path | str) -> str:
    return printable(str(path))


# ---------------------------------------------------------------- markers
def written_by_genedge(path: str | os.PathLike) -> bool:
    """Whether the regular file ``path`` is exactly what genedge wrote: the sha256 its
    extended attribute recorded matches its content, or it is a PNG whose self-hash chunk
    matches (``genedge.imageio.is_own_png``). An edited file, a copy that kept the
    attribute but not the bytes, or a file that only carries a marker is not."""
    try:
        mark = os.getxattr(path, MARK_XATTR, follow_symlinks=False)
    except (OSError, AttributeError):
        mark = b""
    recorded = mark[len(MARK_PREFIX) :].decode("ascii", "replace")
    if mark.startswith(MARK_PREFIX) and len(recorded) == 64 and _sha256(path) == recorded:
        return True
    return is_own_png(path)


# ---------------------------------------------------------------- common checks
def _check_parent_writable(path: Path, flag: str) -> None:
    """The nearest existing ancestor of a new ``path`` must be a folder we can write into."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BadInputError(
            f"{flag} '{_show(path)}': '{_show(parent)}' is not a folder.",
            hint="Pass a path inside a folder.",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        why = "a read-only filesystem" if _read_only(parent) else "a folder you cannot write to"
        raise BadInputError(
            f"{flag} '{_show(path)}': '{_show(parent)}' is {why}.",
            hint="Pass an output path in a folder you can write to.",
        )


def _read_only(folder: Path) -> bool:
    with contextlib.suppress(OSError, AttributeError):
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    return False


def _check_not_cwd(path: Path, flag: str) -> None:
    with contextlib.suppress(OSError):
        here, target = Path.cwd().resolve(), path.resolve()
        if target == here or target in here.parents:
            raise BadInputError(
                f"{flag} '{_show(path)}' is the current folder (or holds it); genedge replaces its "
                "output folder as a whole.",
                hint="Name a new folder for the output, e.g. ./out.",
            )


# ---------------------------------------------------------------- single files
def check_output_file(
    path: str | os.PathLike, *, flag: str = "--out", suffixes: tuple[str, ...] = ()
) -> Path:
    """Check that genedge may write the single file ``path``; return it as a Path.

    Allowed: a new path in a writable folder; a regular file genedge wrote of the same kind
    (its suffix among ``suffixes`` when given); a FIFO or a character device (written
    through, never replaced). Refused (exit 2): a folder, a symlink, a socket, a block
    device, a regular file genedge did not write, another kind of genedge output, and any
    path inside a bundle or a file of a training run (they would break them).
    """
    path = Path(path)
    _refuse_inside_artifacts(path, flag)
    st = _lstat(path)
    if st is None:
        _check_parent_writable(path, flag)
        return path
    mode = st.st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        if not os.access(path, os.W_OK):
            raise BadInputError(f"{flag} '{_show(path)}': not writable.", hint="Pass another path.")
        return path
    if stat.S_ISLNK(mode):
        raise BadInputError(
            f"{flag} '{_show(path)}' is a symbolic link; genedge does not write through or replace links.",
            hint=f"Pass the file it points to ({_show(os.path.realpath(path))}) or a new path.",
        )
    if stat.S_ISDIR(mode):
        raise BadInputError(
            f"{flag} '{_show(path)}' is a folder; expected a file path.",
            hint=f"Name a file inside it, e.g. {_show(path / 'out')}.",
        )
    if not stat.S_ISREG(mode):
        raise BadInputError(
            f"{flag} '{_show(path)}' is a socket or block device, not a file genedge can write.",
            hint="Pass a new file path.",
        )
    if not written_by_genedge(path):
        raise BadInputError(
            f"{flag} '{_show(path)}' already exists and genedge did not write it; genedge never "
            "replaces a file it did not write.",
            hint="Pass a new path, or move that file away first.",
        )
    if suffixes and path.suffix.lower() not in suffixes:
        raise BadInputError(
            f"{flag} '{_show(path)}' is another kind of genedge output (expected a "
            f"{' or '.join(suffixes)} file); genedge does not replace one kind with another.",
            hint="Pass a new path.",
        )
    if not os.access(path, os.W_OK) or not os.access(path.absolute().parent, os.W_OK | os.X_OK):
        _check_parent_writable(path, flag)
        raise BadInputError(f"{flag} '{_show(path)}': not writable.", hint="Pass another path.")
    return path


def _refuse_inside_artifacts(path: Path, flag: str) -> None:
    """A file inside a bundle folder (it would be an unlisted file there) or a run's own file."""
    folder = path.absolute().parent
    if _manifest_files(folder) is not None:
        raise BadInputError(
            f"{flag} '{_show(path)}' is inside the genedge bundle '{_show(folder)}'; a file there "
            "would break the bundle (bundles hold only the files their manifest lists).",
            hint="Pass a path outside the bundle folder.",
        )
    in_run = _run_kind(folder) is not None and path.name in RUN_FILES
    in_samples = folder.name == "samples" and _run_kind(folder.parent) is not None
    if in_run or in_samples:
        raise BadInputError(
            f"{flag} '{_show(path)}' is a file of the training run '{_show(folder)}'; writing it "
            "would replace part of the run.",
            hint="Pass another path.",
        )


# ---------------------------------------------------------------- folders
def _entries(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError as e:
        raise BadInputError(f"Cannot list '{_show(folder)}': {e.strerror}.") from None


def _foreign_message(flag: str, folder: Path, what: str, foreign: list[str]) -> BadInputError:
    shown = ", ".join(_show(n) for n in foreign[:5]) + (" ..." if len(foreign) > 5 else "")
    return BadInputError(
        f"{flag} '{_show(folder)}' {what}: {shown}. genedge never deletes or replaces files it "
        "did not write.",
        hint="Pass a new or empty folder, or move those files away first.",
    )


def _check_folder_common(folder: Path, flag: str) -> os.stat_result | None:
    st = _lstat(folder)
    if st is None:
        _check_parent_writable(folder, flag)
        return None
    if stat.S_ISLNK(st.st_mode):
        raise BadInputError(
            f"{flag} '{_show(folder)}' is a symbolic link; genedge replaces its output folder as a "
            "whole and would replace the link.",
            hint=f"Pass the folder it points to ({_show(os.path.realpath(folder))}).",
        )
    if not stat.S_ISDIR(st.st_mode):
        raise BadInputError(
            f"{flag} '{_show(folder)}' exists and is not a folder.",
            hint="Pass a new folder path.",
        )
    _check_not_cwd(folder, flag)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInputError(
            f"{flag} '{_show(folder)}': cannot write into this folder.",
            hint="Pass a folder you can write to.",
        )
    return st


def _existing_entries(folder: Path, flag: str) -> list[str]:
    """What an output folder holds besides genedge's housekeeping ([] when new or empty)."""
    if _check_folder_common(folder, flag) is None:
        return []
    return [n for n in _entries(folder) if not is_housekeeping(n)]


def _manifest_files(folder: Path) -> set[str] | None:
    """Top-level names a genedge bundle's manifest lists, or None if it is no genedge bundle."""
    try:
        data = read_json(folder / MANIFEST_NAME, what="Manifest", limit=MANIFEST_BYTES)
    except ReadbackError:  # absent, not a regular file, too large, not JSON: no bundle
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    names = {MANIFEST_NAME}
    for a in data.get("artifacts") or []:
        if isinstance(a, dict) and isinstance(a.get("file"), str):
            names.add(a["file"].split("/", 1)[0])
    return names


def check_bundle_out(out: str | os.PathLike, *, sources: Iterable[str | os.PathLike] = ()) -> Path:
    """Check that ``export`` may (re)build the bundle folder ``out``; return it as a Path.

    ``sources`` are the export's inputs (checkpoint, data): none may lie inside ``out``,
    because the folder is replaced as a whole.
    """
    out = Path(out)
    _check_sources_outside(out, sources, "--out")
    entries = _existing_entries(out, "--out")
    if not entries:
        return out
    listed = _manifest_files(out)
    if listed is None:
        raise _foreign_message("--out", out, "holds files and is not a genedge bundle", entries)
    foreign = [n for n in entries if n not in listed or not _plain_file(out / n)]
    if foreign:
        raise _foreign_message(
            "--out", out, "is a bundle but also holds files genedge did not write", foreign
        )
    return out


def _plain_file(p: Path) -> bool:
    st = _lstat(p)
    return st is not None and stat.S_ISREG(st.st_mode)


def _marked_file(p: Path) -> bool:
    return _plain_file(p) and written_by_genedge(p)


def _check_sources_outside(out: Path, sources: Iterable[str | os.PathLike], flag: str) -> None:
    root = out.resolve()
    for src in sources:
        if src is None or not os.path.exists(src):
            continue
        p = Path(src).resolve()
        if p == root or root in p.parents:
            raise BadInputError(
                f"{flag} '{_show(out)}' holds the input '{_show(src)}'; writing the output there would "
                "replace the folder it is read from.",
                hint="Pass an --out outside the input's folder, e.g. a sibling folder.",
            )


def check_triton_out(repo: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Check that ``export --triton REPO`` may write the model folders of bundle ``out``.

    ``REPO`` is a Triton model repository, which usually holds other models: it may be new
    or an existing folder that is not a genedge bundle or run and does not overlap ``out``.
    The model folders this bundle writes (``REPO/<bundle name>_*``) must be new or hold only
    files genedge wrote; nothing else in ``REPO`` is touched.
    """
    repo, out = Path(repo), Path(out)
    r, o = repo.resolve(), out.resolve()
    if r == o or o in r.parents or r in o.parents:
        raise BadInputError(
            f"--triton '{_show(repo)}' and --out '{_show(out)}' overlap; a Triton repository "
            "inside a bundle (or around it) breaks one of them.",
            hint="Give the Triton repository its own folder, beside the bundle.",
        )
    if _check_folder_common(repo, "--triton") is None:
        return repo
    if _manifest_files(repo) is not None or _run_kind(repo) is not None:
        raise BadInputError(
            f"--triton '{_show(repo)}' is a genedge bundle or training run, not a Triton model "
            "repository.",
            hint="Pass a new folder or an existing Triton model repository.",
        )
    foreign: list[str] = []
    for name in _entries(repo):
        if name.startswith(f"{out.name}_"):
            foreign += _unmarked_under(repo / name, name)
    if foreign:
        raise _foreign_message(
            "--triton",
            repo,
            "holds model folders of this bundle's name with files genedge did not write",
            foreign,
        )
    return repo


def _unmarked_under(p: Path, shown: str) -> list[str]:
    """Entries under ``p`` that genedge may not replace: anything but marked files and folders."""
    st = _lstat(p)
    if st is not None and stat.S_ISDIR(st.st_mode):
        return [x for n in _entries(p) for x in _unmarked_under(p / n, f"{shown}/{n}")]
    return [] if _marked_file(p) else [shown]


def _run_kind(folder: Path, *, strict: bool = False) -> str | None:
    """The kind a training run's ``config.json`` names, or None when ``folder`` holds no run.

    ``strict``: a ``config.json`` that is there but not a run's (a FIFO, a device, too large,
    not JSON) is ``ReadbackError`` (exit 2) rather than "no run".
    """
    try:
        data = read_json(folder / "config.json", what="Run config", limit=RUN_CONFIG_BYTES)
    except MissingFileError:
        return None
    except ReadbackError:
        if strict:
            raise
        return None
    options = data.get("options") if isinstance(data, dict) else None
    kind = options.get("kind") if isinstance(options, dict) else None
    return kind if isinstance(kind, str) else None


def check_run_out(out: str | os.PathLike, *, kind: str, resume: bool, overwrite: bool) -> Path:
    """Check that ``train`` may write the run folder ``out``; return it as a Path.

    A new or empty folder is fine. A genedge run of the same kind needs ``resume`` (continue
    it) or ``overwrite`` (start over: its files are replaced). Foreign files are refused
    even with ``overwrite``.
    """
    out = Path(out)
    entries = _existing_entries(out, "--out")
    if not entries:
        return out
    found = _run_kind(out, strict=True)
    if found is None:
        raise _foreign_message(
            "--out", out, "holds files and is not a genedge training run", entries
        )
    # --overwrite deletes the run's files, so each must carry genedge's marker; --resume
    # replaces them in place, so runs written before markers existed can still be continued
    own = _marked_file if overwrite else _plain_file
    foreign = [n for n in entries if n not in RUN_FILES or not _run_entry_ok(out / n, own)]
    foreign += [f"samples/{n}" for n in _sample_strangers(out, own)]
    if foreign:
        raise _foreign_message(
            "--out", out, "is a training run but also holds files genedge did not write", foreign
        )
    if found != kind:
        raise BadInputError(
            f"--out '{_show(out)}' holds a `{_show(found)}` training run; this command trains `{kind}`.",
            hint="Pass another --out.",
        )
    if not (resume or overwrite):
        raise BadInputError(
            f"--out '{_show(out)}' already holds a `{kind}` training run.",
            hint="Add --resume to continue it, --overwrite to start it over, or pass another --out.",
        )
    return out


def _run_entry_ok(p: Path, own: Callable[[Path], bool]) -> bool:
    if p.name == "samples":
        st = _lstat(p)
        return st is not None and stat.S_ISDIR(st.st_mode)
    return own(p)


def _sample_strangers(out: Path, own: Callable[[Path], bool]) -> list[str]:
    samples = out / "samples"
    if not samples.is_dir() or samples.is_symlink():
        return []  # a samples entry that is no folder is reported by _run_entry_ok
    return [
        n
        for n in _entries(samples)
        if not is_housekeeping(n)
        and not (n.startswith("step_") and n.endswith((".png", ".txt")) and own(samples / n))
    ]


def clear_run(out: Path) -> None:
    """Remove a vetted genedge run's own files (``train --overwrite``): only files that carry
    genedge's marker, under the names a run uses; nothing else."""
    for name in RUN_FILES:
        p = out / name
        if name == "samples" and p.is_dir() and not p.is_symlink():
            for child in p.iterdir():
                if child.name.startswith("step_") and _marked_file(child):
                    child.unlink()
            with contextlib.suppress(OSError):
                p.rmdir()
        elif _marked_file(p):
            p.unlink()


# ---------------------------------------------------------------- locking
@contextlib.contextmanager
def folder_lock(folder: Path, *, who: str, wait_s: float = 0.0) -> Iterator[int]:
    """Hold ``FOLDER/.genedge.lock`` (fcntl) while writing; refuse (exit 4) if another holds
    it for longer than ``wait_s`` seconds (0: refuse at once)."""
    fd = open_lock(folder, who=who, wait_s=wait_s)
    try:
        yield fd
    finally:
        os.close(fd)


def open_lock(folder: Path, *, who: str, wait_s: float = 0.0) -> int:
    """Open and lock ``FOLDER/.genedge.lock``; the caller closes the returned fd to release it."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(folder / LOCK_NAME, flags, 0o644)
    except OSError as e:  # ELOOP: a symlink in the lock's place
        raise BadInputError(
            f"Cannot open the lock file {_show(folder / LOCK_NAME)}: {e.strerror}.",
            hint="Remove whatever is in its place; genedge creates it.",
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadInputError(
                f"{_show(folder / LOCK_NAME)} is not a regular file; genedge's lock file is one.",
                hint="Remove whatever is in its place; genedge creates it.",
            )
        deadline = time.monotonic() + wait_s
        while not lock_fd(fd, folder, who=who, last_try=time.monotonic() >= deadline):
            time.sleep(0.02)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_fd(fd: int, folder: Path, *, who: str, last_try: bool = True) -> bool:
    """Lock ``fd`` (the lock file of ``folder``) without waiting: True when locked; when
    another process holds it, False, or ``IntegrityError`` (exit 4) on the ``last_try``."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not last_try:
            return False
        raise IntegrityError(
            f"'{_show(folder)}' is being written by another genedge command (it holds "
            f"{_show(folder / LOCK_NAME)}); `{who}` does not share a folder with it.",
            hint="Wait for the other command to finish, or write into another folder.",
        ) from None
    except OSError as e:
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP):  # filesystems without flock: no lock
            return True
        raise
    return True

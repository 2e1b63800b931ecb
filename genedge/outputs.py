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

Files genedge writes carry a marker: the extended attribute ``user.genedge`` (set by
``genedge.atomic``), and for PNGs also a ``tEXt`` ``Software: genedge`` chunk, which
survives copies to filesystems without extended attributes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from genedge.atomic import TMP_PREFIX
from genedge.errors import BadInputError, IntegrityError, printable

MARK_XATTR = "user.genedge"
PNG_MARK = b"tEXtSoftware\x00genedge"
LOCK_NAME = ".genedge.lock"

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


def _always_ours(name: str) -> bool:
    return name == LOCK_NAME or name.startswith(TMP_PREFIX)


def _show(path: Path | str) -> str:
    return printable(str(path))


# ---------------------------------------------------------------- markers
def mark_written(path: str | os.PathLike) -> None:
    """Mark ``path`` as written by genedge (best effort: not every filesystem has xattrs)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setxattr(path, MARK_XATTR, b"1", follow_symlinks=False)


def written_by_genedge(path: str | os.PathLike) -> bool:
    """Whether genedge wrote the regular file ``path`` (its xattr, or a PNG's text chunk)."""
    with contextlib.suppress(OSError, AttributeError):
        os.getxattr(path, MARK_XATTR, follow_symlinks=False)
        return True
    with contextlib.suppress(OSError), open(path, "rb") as f:
        head = f.read(256)
        return head.startswith(b"\x89PNG") and PNG_MARK in head
    return False


# ---------------------------------------------------------------- common checks
def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise BadInputError(f"Cannot look at output path '{_show(path)}': {e.strerror}.") from None


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
def check_output_file(path: str | os.PathLike, *, flag: str = "--out") -> Path:
    """Check that genedge may write the single file ``path``; return it as a Path.

    Allowed: a new path in a writable folder; a regular file genedge wrote; a FIFO or a
    character device (written through, never replaced). Refused (exit 2): a folder, a
    symlink, a socket, a block device, or a regular file genedge did not write.
    """
    path = Path(path)
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
    if not os.access(path, os.W_OK) or not os.access(path.absolute().parent, os.W_OK | os.X_OK):
        _check_parent_writable(path, flag)
        raise BadInputError(f"{flag} '{_show(path)}': not writable.", hint="Pass another path.")
    return path


def is_write_through(path: str | os.PathLike) -> bool:
    """A FIFO or character device: written into, never replaced."""
    st = _lstat(Path(path))
    return st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode))


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


def _manifest_files(folder: Path) -> set[str] | None:
    """Top-level names a genedge bundle's manifest lists, or None if it is no genedge bundle."""
    try:
        data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != "genedge.bundle":
        return None
    names = {"manifest.json"}
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
    if _check_folder_common(out, "--out") is None:
        return out
    entries = [n for n in _entries(out) if not _always_ours(n)]
    if not entries:
        return out
    listed = _manifest_files(out)
    if listed is None:
        raise _foreign_message("--out", out, "holds files and is not a genedge bundle", entries)
    foreign = [n for n in entries if n not in listed]
    if foreign:
        raise _foreign_message(
            "--out", out, "is a bundle but also holds files genedge did not write", foreign
        )
    return out


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


def _run_kind(folder: Path) -> str | None:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        kind = data["options"]["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return kind if isinstance(kind, str) else None


def check_run_out(out: str | os.PathLike, *, kind: str, resume: bool, overwrite: bool) -> Path:
    """Check that ``train`` may write the run folder ``out``; return it as a Path.

    A new or empty folder is fine. A genedge run of the same kind needs ``resume`` (continue
    it) or ``overwrite`` (start over: its files are replaced). Foreign files are refused
    even with ``overwrite``.
    """
    out = Path(out)
    if _check_folder_common(out, "--out") is None:
        return out
    entries = [n for n in _entries(out) if not _always_ours(n)]
    if not entries:
        return out
    found = _run_kind(out)
    if found is None:
        raise _foreign_message(
            "--out", out, "holds files and is not a genedge training run", entries
        )
    foreign = [n for n in entries if n not in RUN_FILES]
    foreign += [f"samples/{n}" for n in _sample_strangers(out)]
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


def _sample_strangers(out: Path) -> list[str]:
    samples = out / "samples"
    if not samples.is_dir() or samples.is_symlink():
        return [] if not samples.exists() else ["(not a folder)"]
    return [
        n
        for n in _entries(samples)
        if not _always_ours(n) and not (n.startswith("step_") and n.endswith((".png", ".txt")))
    ]


def clear_run(out: Path) -> None:
    """Remove a vetted genedge run's own files (``train --overwrite``), nothing else."""
    for name in RUN_FILES:
        p = out / name
        if name == "samples" and p.is_dir() and not p.is_symlink():
            for child in p.iterdir():
                if child.name.startswith("step_") and child.is_file():
                    child.unlink()
            with contextlib.suppress(OSError):
                p.rmdir()
        elif p.is_file() and not p.is_symlink():
            p.unlink()


# ---------------------------------------------------------------- locking
@contextlib.contextmanager
def folder_lock(folder: Path, *, who: str) -> Iterator[int]:
    """Hold ``FOLDER/.genedge.lock`` (fcntl) while writing; refuse (exit 4) if another holds it."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        lock_fd(fd, folder, who=who)
        yield fd
    finally:
        os.close(fd)


def lock_fd(fd: int, folder: Path, *, who: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise IntegrityError(
            f"'{_show(folder)}' is being written by another `{who}` (it holds {_show(folder / LOCK_NAME)}).",
            hint="Wait for it to finish, or write into another folder.",
        ) from None
    except OSError as e:
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP):  # filesystems without flock: no lock
            return
        raise

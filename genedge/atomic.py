"""Atomic writes: a reader sees the previous complete file or the new complete file, never half.

Every artifact genedge writes goes through here: a temporary file in the same folder
(same filesystem, so ``os.replace`` is atomic), flushed and fsync'd, then renamed over
the final path and the folder fsync'd. Temporary names start with ``.genedge-tmp-`` so
``clean_stale_temps`` can remove leftovers of a killed process on the next run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from genedge.errors import BadInputError

TMP_PREFIX = ".genedge-tmp-"


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets us open a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success it replaces ``final`` atomically.

    Use this for libraries that insist on writing to a path themselves (safetensors,
    torch.save, onnx.save). On any exception the temporary file is removed and
    ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix="-" + final.name, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, final)
        _fsync_dir(final.parent)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(e, OSError) and e.errno in (27, 28, 122):  # EFBIG, ENOSPC, EDQUOT
            raise BadInputError(
                f"Could not write '{final}': {e.strerror}.",
                hint="Free some disk space (the previous file, if any, is intact) and retry.",
            ) from e
        raise


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> None:
    with atomic_path(final) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(final: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(final, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it into place when the block succeeds.

    If ``final`` exists it is moved aside, the new folder renamed in, and the old one
    deleted, so at every instant ``final`` is either the old complete folder or the new
    one (or, for the instant between the two renames, absent: never partial).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, suffix="-" + final.name, dir=final.parent))
    try:
        yield tmp
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        old = None
        if final.exists():
            old = final.parent / f"{TMP_PREFIX}old-{os.getpid()}-{final.name}"
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary leftovers of a killed writer in ``folder``; return what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if p.name.startswith(TMP_PREFIX):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            removed.append(p)
    return removed

"""How genedge marks a file as its own when it writes one, and which paths it writes through.

Each file genedge writes records the sha256 of what was written in the extended attribute
``user.genedge`` (``mark_written``, called by ``genedge.atomic``); ``genedge.outputs``
compares it with the content before it replaces anything. A FIFO or character device is
written into, never replaced (``is_write_through``). This module sits at the bottom of the
core, under both ``genedge.atomic`` and ``genedge.outputs``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

from genedge.errors import BadInputError, printable
from genedge.readback import ReadbackError, open_regular

MARK_XATTR = "user.genedge"
MARK_PREFIX = b"sha256:"  # the xattr's value: this, then the hex sha256 of the content written


def regular_file_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 of the regular file ``path`` (not followed if a link), or None."""
    try:
        fd = open_regular(path, what="Output", limit=1 << 50)
    except ReadbackError:
        return None
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def mark_written(path: str | os.PathLike) -> None:
    """Record in ``path``'s extended attribute the sha256 of what genedge wrote there (best
    effort: not every filesystem has xattrs)."""
    digest = regular_file_sha256(path)
    if digest is not None:
        with contextlib.suppress(OSError, AttributeError):
            os.setxattr(path, MARK_XATTR, MARK_PREFIX + digest.encode(), follow_symlinks=False)


def lstat_or_none(path: Path) -> os.stat_result | None:
    """``os.lstat`` of an output path; None when nothing is there."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise BadInputError(
            f"Cannot look at output path '{printable(str(path))}': {e.strerror}."
        ) from None


def is_write_through(path: str | os.PathLike) -> bool:
    """A FIFO or character device: written into, never replaced."""
    st = lstat_or_none(Path(path))
    return st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode))

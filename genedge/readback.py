"""One reader for every file genedge reads back: caches, run configs, manifests, metadata.

A file genedge wrote earlier may since have been replaced by anything: a FIFO (opening it
would wait for a writer forever), a symlink to ``/dev/zero`` (reading it would never end),
a 10 GiB file, JSON nested a million levels deep, or a hand-edited copy with odd keys. Every
read here:

- looks at the path first (``lstat``; ``stat`` when links may be followed) and opens only a
  regular file, with ``O_NONBLOCK`` (a FIFO swapped in between cannot block the open) and,
  unless asked otherwise, ``O_NOFOLLOW``; ``fstat`` on the opened descriptor must show the
  same regular file;
- reads at most the size cap of its kind, and refuses a file that is larger;
- parses JSON with a nesting bound, then checks types and bounds with the small schema
  helpers (``field``, ``check``).

Every refusal is ``ReadbackError`` (exit 2) naming the file, what is wrong and the cap. A
*cache* is genedge's to regenerate: ``read_cache_json`` turns any refusal into one warning
and None. A file the user named (a run's ``config.json``, a manifest, a checkpoint) lets
the error reach the CLI. stdlib only.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from genedge.errors import CorruptArtifactError, GenedgeError, printable

log = logging.getLogger("genedge")

KiB, MiB = 1 << 10, 1 << 20
MAX_JSON_DEPTH = 64  # genedge's own JSON nests a few levels; a parser recursion starts at ~1000
MAX_STRING_CHARS = 1 << 16  # a string field of a small record (labels, names, hashes)

# Size caps per kind of file (bytes). A file past its cap was not written by genedge.
MANIFEST_BYTES = 16 * MiB
RUN_CONFIG_BYTES = 1 * MiB
TUNE_CACHE_BYTES = 1 * MiB
DATASET_CACHE_BYTES = 2 << 30  # a converted dataset (.npz) of up to 2 GiB
JUDGE_CACHE_BYTES = 256 * MiB
SAFETENSORS_HEADER_BYTES = 100 * MiB  # the safetensors library's own header limit

T = TypeVar("T")


class ReadbackError(CorruptArtifactError):
    """A file read back is not what genedge wrote: wrong type, too large, bad JSON or schema."""


class MissingFileError(ReadbackError):
    """The file read back does not exist."""


def _show(path: str | os.PathLike) -> str:
    return printable(os.fspath(path))


# ---------------------------------------------------------------- bytes
def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n:,} bytes"


def _kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(
    path: str | os.PathLike, *, what: str, limit: int, follow_symlinks: bool = False
) -> int:
    """A read-only descriptor of the regular file ``path`` of at most ``limit`` bytes.

    Refused (``ReadbackError``) before anything is read: a FIFO, device, socket or folder;
    a symbolic link unless ``follow_symlinks`` (then its target must be a regular file);
    a file larger than ``limit``. The caller closes the descriptor.
    """
    try:
        st = os.stat(path) if follow_symlinks else os.lstat(path)
    except FileNotFoundError:
        raise MissingFileError(f"{what} '{_show(path)}' does not exist.") from None
    except OSError as e:
        raise ReadbackError(f"{what} '{_show(path)}': cannot read it ({e.strerror}).") from None
    if not stat.S_ISREG(st.st_mode):
        raise ReadbackError(
            f"{what} '{_show(path)}' is {_kind_of(st.st_mode)}; expected a regular file.",
            hint="Replace it with the file genedge wrote, or remove it.",
        )
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:  # ELOOP: a link swapped in after the lstat; ENXIO: a socket
        raise ReadbackError(f"{what} '{_show(path)}': cannot open it ({e.strerror}).") from None
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise ReadbackError(
                f"{what} '{_show(path)}' changed while it was opened; expected a regular file."
            )
        if now.st_size > limit:
            raise ReadbackError(
                f"{what} '{_show(path)}' is {now.st_size:,} bytes; the limit for it is "
                f"{_size(limit)}.",
                hint="It is not a file genedge wrote: replace or remove it.",
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(
    path: str | os.PathLike, *, what: str, limit: int, follow_symlinks: bool = False
) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``), checked as ``open_regular``."""
    fd = open_regular(path, what=what, limit=limit, follow_symlinks=follow_symlinks)
    with os.fdopen(fd, "rb") as f:
        data = f.read(os.fstat(fd).st_size)  # no buffer beyond the file's own size
        grew = f.read(1)
    if grew:
        raise ReadbackError(f"{what} '{_show(path)}' grew while it was read; try again.")
    return data


# ---------------------------------------------------------------- JSON
def json_depth_ok(value: Any, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests lists and dicts at most ``max_depth`` levels (iteratively)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return False
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return True


def parse_json(
    data: bytes | str, *, what: str, path: str | os.PathLike, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """``data`` as JSON, refused (``ReadbackError``) when it is not UTF-8, not JSON, holds
    a number too large to convert, or nests deeper than ``max_depth``."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text)
    except (UnicodeDecodeError, RecursionError, ValueError) as e:  # ValueError: 5000-digit ints
        raise ReadbackError(
            f"{what} '{_show(path)}' is not valid JSON ({type(e).__name__}).",
            hint="The file is truncated, corrupt or not genedge's; replace or remove it.",
        ) from None
    if not json_depth_ok(value, max_depth):
        raise ReadbackError(f"{what} '{_show(path)}' nests deeper than {max_depth} levels.")
    return value


def read_json(
    path: str | os.PathLike,
    *,
    what: str,
    limit: int,
    follow_symlinks: bool = False,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Read and parse the JSON file ``path`` with every check of this module."""
    data = read_bytes(path, what=what, limit=limit, follow_symlinks=follow_symlinks)
    return parse_json(data, what=what, path=path, max_depth=max_depth)


# ---------------------------------------------------------------- safetensors
def safetensors_metadata(head: bytes, *, what: str, path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file whose first bytes are ``head`` (at least
    the 8-byte header length and the header): a dict of strings, or ``ReadbackError``."""
    if len(head) < 8:
        raise ReadbackError(f"{what} '{_show(path)}' is truncated ({len(head)} bytes).")
    n = int.from_bytes(head[:8], "little")
    if n > SAFETENSORS_HEADER_BYTES or 8 + n > len(head):
        raise ReadbackError(
            f"{what} '{_show(path)}' declares a {n:,}-byte header; the file holds "
            f"{len(head) - 8:,} bytes after its length (limit {_size(SAFETENSORS_HEADER_BYTES)}).",
            hint="The file is truncated or not a safetensors file.",
        )
    header = parse_json(head[8 : 8 + n], what=what, path=path, max_depth=8)
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise ReadbackError(f"{what} '{_show(path)}': its metadata is not a map of strings.")
    return meta


# ---------------------------------------------------------------- schema
_REQUIRED = object()


def check(
    value: Any,
    kind: type | tuple[type, ...],
    *,
    where: str,
    low: float | None = None,
    high: float | None = None,
    max_len: int | None = MAX_STRING_CHARS,
) -> Any:
    """``value`` if it is of ``kind`` (bool is no int) within ``[low, high]`` and, for
    strings, lists and dicts, at most ``max_len`` long; else ``ReadbackError`` at ``where``."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        expected = " or ".join(k.__name__ for k in kinds)
        raise ReadbackError(f"{where}: expected {expected}, found {type(value).__name__}.")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and not _within(value, low, high):
        raise ReadbackError(f"{where}: {printable(value, 40)} is outside [{low}, {high}].")
    if isinstance(value, str | list | dict) and max_len is not None and len(value) > max_len:
        raise ReadbackError(f"{where}: {len(value):,} long; the limit is {max_len:,}.")
    return value


def _within(value: float, low: float | None, high: float | None) -> bool:
    """Whether ``value`` is a number (not NaN) in ``[low, high]``."""
    if value != value:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def field(
    obj: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    *,
    where: str,
    default: Any = _REQUIRED,
    **bounds: Any,
) -> Any:
    """``obj[key]`` checked as ``check``; ``default`` when absent (required when not given)."""
    if key not in obj:
        if default is _REQUIRED:
            raise ReadbackError(f"{where}: '{printable(key)}' is missing.")
        return default
    return check(obj[key], kind, where=f"{where}: '{printable(key)}'", **bounds)


# ---------------------------------------------------------------- caches
_warned: set[str] = set()


def read_cache_json(
    path: str | os.PathLike,
    *,
    what: str,
    limit: int,
    schema: Callable[[Any], T] | None = None,
) -> T | Any | None:
    """A cache file's JSON after ``schema`` checked it (it may raise ``ReadbackError`` or
    return a cleaned value), or None: silently when the file is absent, with one warning
    per file and process when it fails any check (a cache is genedge's to regenerate)."""
    try:
        value = read_json(path, what=what, limit=limit)
        return schema(value) if schema is not None else value
    except MissingFileError:
        return None
    except GenedgeError as e:
        warn_ignored(path, e)
        return None


def warn_ignored(path: str | os.PathLike, error: GenedgeError) -> None:
    """Say once per file and process that a cache file was ignored, and why."""
    key = os.fspath(path)
    if key not in _warned:
        _warned.add(key)
        log.warning("ignoring cache file: %s", error.message)


__all__ = [
    "MissingFileError",
    "ReadbackError",
    "check",
    "field",
    "open_regular",
    "parse_json",
    "read_bytes",
    "read_cache_json",
    "read_json",
    "safetensors_metadata",
    "warn_ignored",
]

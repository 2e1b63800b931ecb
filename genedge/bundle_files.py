"""A bundle's files on disk: path confinement and hashing, the bottom of the core.

Every check that must pass before a file named by a manifest is opened: the entry stays
inside the bundle folder (no ``..``, absolute paths, symlinks or hardlinks leaving it) and
the file's size and sha256 match what the manifest records. ``genedge.manifest`` and
``genedge.onnx_guard`` both stand on this module; it imports nothing else of genedge but
its errors.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from genedge.errors import CorruptArtifactError, IntegrityError, SecurityRefusal, printable

_MAX_NAME_BYTES = 255  # NAME_MAX on Linux, macOS and Windows file systems
_MAX_ENTRY_CHARS = 1024


def shown(value: Any, limit: int = 80) -> str:
    """A value from a file, as a message may show it: quoted, escaped, bounded."""
    return printable(repr(value), limit)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_inside(root: str | os.PathLike, relpath: str) -> Path:
    """Resolve ``relpath`` inside ``root`` or refuse (exit 4) before anything is read.

    Refused: absolute paths, ``..`` components, symlinks anywhere on the way, files with
    more than one hard link (a hardlink can point at a secret outside the folder), and
    anything whose resolved path leaves ``root``. A name longer than file systems allow
    is corrupt (exit 2).
    """
    root = Path(root).resolve()
    if not isinstance(relpath, str) or not relpath or "\x00" in relpath or not Path(relpath).parts:
        raise SecurityRefusal(f"Bundle entry {shown(relpath)} is not a valid relative file name.")
    rel = Path(relpath)
    shown_rel = shown(relpath)
    if rel.is_absolute() or relpath.startswith(("/", "\\")) or ":" in rel.parts[0]:
        raise SecurityRefusal(
            f"Bundle entry {shown_rel} is an absolute path; bundle files must stay inside the bundle."
        )
    if any(part in ("..", "") for part in rel.parts) or "\\" in relpath:
        raise SecurityRefusal(f"Bundle entry {shown_rel} leaves the bundle folder ('..').")
    if len(relpath) > _MAX_ENTRY_CHARS or any(
        len(part.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES for part in rel.parts
    ):
        raise CorruptArtifactError(
            f"Bundle entry {shown_rel} ({len(relpath)} characters) is longer than a file name may be: "
            f"at most {_MAX_NAME_BYTES} bytes per folder or file name, {_MAX_ENTRY_CHARS} in all.",
            hint="Re-export the bundle with `genedge export`.",
        )
    try:
        return _walk_inside(root, rel, shown_rel)
    except OSError as e:  # e.g. ENAMETOOLONG on a file system with shorter names
        raise CorruptArtifactError(
            f"Bundle entry {shown_rel} cannot be looked up ({printable(e.strerror)}).",
            hint="Re-export the bundle with `genedge export`.",
        ) from None


def _walk_inside(root: Path, rel: Path, where: str) -> Path:
    cur = root
    for part in rel.parts:
        cur = cur / part
        if cur.is_symlink():
            raise SecurityRefusal(
                f"Bundle entry {where} is or passes through a symlink; symlinks are refused."
            )
    if cur.exists():
        st = cur.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            raise SecurityRefusal(
                f"Bundle entry {where} has {st.st_nlink} hard links; hardlinked files are refused."
            )
    resolved = cur.resolve()
    if root != resolved and root not in resolved.parents:
        raise SecurityRefusal(f"Bundle entry {where} resolves outside the bundle.")
    return resolved


def verify_file(path: Path, sha256: str, size: int | None = None) -> None:
    """Refuse (exit 4) a file whose size or sha256 differs from the manifest's record."""
    name = printable(path.name)
    if not path.is_file():
        raise IntegrityError(
            f"Bundle file '{name}' is listed in the manifest but missing.",
            hint="Re-export the bundle with `genedge export`.",
        )
    if size is not None and path.stat().st_size != size:
        raise IntegrityError(
            f"Bundle file '{name}' has {path.stat().st_size} bytes; the manifest records {size}.",
            hint="The file was modified or truncated; re-export the bundle.",
        )
    actual = sha256_file(path)
    if actual != sha256:
        raise IntegrityError(
            f"Bundle file '{name}' fails its hash: sha256 {actual[:16]}..., "
            f"manifest records {printable(sha256, 16)}.",
            hint="The file was modified after export; re-export the bundle.",
        )

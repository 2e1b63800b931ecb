"""Atomic writes: a reader sees the previous complete file or the new complete file, never half.

Every artifact genedge writes goes through here: a temporary file in the same folder
(same filesystem, so ``os.replace`` is atomic), flushed and fsync'd, then renamed over
the final path and the folder fsync'd. Temporary names start with ``.genedge-tmp-`` so
``clean_stale_temps`` can remove leftovers of a killed process on the next run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from genedge.errors import BadInputError, GenedgeError, printable
from genedge.file_marks import is_write_through, mark_written

TMP_PREFIX = ".genedge-tmp-"
LOCK_NAME = ".genedge.lock"  # held by a command writing a folder (genedge.outputs)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets us open a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_DISK_FULL_ERRNOS = (errno.EFBIG, errno.ENOSPC, getattr(errno, "EDQUOT", 122))
_DISK_FULL_TEXTS = tuple(os.strerror(n) for n in _DISK_FULL_ERRNOS) + ("os error 27", "os error 28")


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting, restored at once
    os.umask(mask)
    return mask


def _default_mode(path: Path, *, folder: bool) -> None:
    """Give a temporary file/folder the mode a plain ``open``/``mkdir`` would have: mkstemp and
    mkdtemp make them private (0600/0700), and a bundle is often read by another user (a
    service account, Triton, a robot's runtime)."""
    with contextlib.suppress(OSError):
        os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _tmp_prefix() -> str:
    """Temporary names carry the writer's pid, so a cleaner can skip a live writer's files."""
    return f"{TMP_PREFIX}{os.getpid()}-"


def _disk_full(e: BaseException, folder: Path, written: int) -> bool:
    """Whether ``e`` (raised while writing ``written`` bytes into ``folder``) means "no room".

    Libraries hide the errno (torch.save raises "unexpected pos 704 vs 598"), so besides
    the exception chain we look at the facts: a file-size limit reached, or no free space.
    """
    chain: BaseException | None = e
    while chain is not None:
        if isinstance(chain, OSError) and chain.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(chain) for text in _DISK_FULL_TEXTS):
            return True
        chain = chain.__cause__ or chain.__context__
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY and written >= soft - (1 << 16):
            return True
    with contextlib.suppress(OSError, AttributeError):
        st = os.statvfs(folder)
        return st.f_bavail * st.f_frsize < (1 << 20)
    return False


def _unwritable(final: Path, e: OSError) -> BadInputError:
    if e.errno in _DISK_FULL_ERRNOS:
        return _disk_full_error(final, e)
    return BadInputError(
        f"Cannot write '{final}': {e.strerror or e} ({type(e).__name__}).",
        hint="Pass a path in a folder you can write to.",
    )


def _disk_full_error(final: Path, e: BaseException) -> BadInputError:
    return BadInputError(
        f"Could not write '{final}': the disk is full or a file-size limit was reached "
        f"({type(e).__name__}: {str(e)[:120]}).",
        hint="Free some disk space or raise the limit (the previous file, if any, is intact) and retry.",
    )


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success it replaces ``final`` atomically.

    Use this for libraries that insist on writing to a path themselves (safetensors,
    torch.save, onnx.save). On any exception the temporary file is removed and
    ``final`` is untouched; a full disk or file-size limit becomes ``BadInputError``.
    A FIFO or character device at ``final`` is written through, never replaced; a
    symlink is refused. The new file is marked as genedge's (``genedge.outputs``).
    """
    final = Path(final)
    _refuse_non_file(final)
    if is_write_through(final):
        with _write_through(final) as tmp_path:
            yield tmp_path
        return
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(), suffix="-" + final.name, dir=final.parent)
    except OSError as e:
        raise _unwritable(final, e) from None
    os.close(fd)
    tmp_path = Path(tmp)
    _default_mode(tmp_path, folder=False)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        mark_written(tmp_path)
        os.replace(tmp_path, final)
        _fsync_dir(final.parent)
    except Exception as e:
        written = tmp_path.stat().st_size if tmp_path.exists() else 0
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if not isinstance(e, GenedgeError) and _disk_full(e, final.parent, written):
            raise _disk_full_error(final, e) from e
        raise
    except BaseException:  # KeyboardInterrupt, SystemExit: clean up, change nothing else
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _refuse_non_file(final: Path) -> None:
    if final.is_symlink():
        raise BadInputError(
            f"Cannot write '{printable(str(final))}': it is a symbolic link; genedge does not "
            "replace links.",
            hint="Pass the file it points to, or a new path.",
        )
    if final.is_dir():
        raise BadInputError(
            f"Cannot write '{printable(str(final))}': it is a folder; expected a file path.",
            hint=f"Name a file inside it, e.g. {printable(str(final / 'out'))}.",
        )


@contextlib.contextmanager
def _write_through(final: Path) -> Iterator[Path]:
    """Build the content in a private temporary file, then copy it into the FIFO/device."""
    folder = Path(tempfile.mkdtemp(prefix=_tmp_prefix()))
    try:
        tmp_path = folder / ("out" + "".join(final.suffixes[-1:]))
        yield tmp_path
        try:
            with open(tmp_path, "rb") as src, open(final, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except OSError as e:
            raise _unwritable(final, e) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> None:
    with atomic_path(final) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(final: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(final, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(
    final: str | os.PathLike, *, before_swap: Callable[[], object] | None = None
) -> Iterator[Path]:
    """Build a folder in a temporary sibling and move it into place when the block succeeds.

    If ``final`` exists it is moved aside, the new folder renamed in, and the old one
    deleted, so at every instant ``final`` is either the old complete folder or the new
    one (or, for the instant between the two renames, absent: never partial; a kill in
    that instant leaves the old folder aside, and ``clean_stale_temps`` puts it back).
    ``before_swap`` runs right before the swap and may raise to cancel it: callers use it
    to re-check that the old folder holds only what they may delete (files can appear in
    it while the new one is built).
    """
    final = Path(final)
    if final.is_symlink():
        raise BadInputError(
            f"Cannot replace the folder '{printable(str(final))}': it is a symbolic link.",
            hint="Pass the folder it points to.",
        )
    if final.exists() and not final.is_dir():
        raise BadInputError(
            f"Cannot write the folder '{final}': a file of that name exists.",
            hint="Pass another --out, or remove the file.",
        )
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            tempfile.mkdtemp(prefix=_tmp_prefix(), suffix="-" + final.name, dir=final.parent)
        )
    except OSError as e:
        raise _unwritable(final, e) from None
    _default_mode(tmp, folder=True)
    try:
        yield tmp
        for p in tmp.rglob("*"):
            if p.is_file() and not p.is_symlink():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        if before_swap is not None:
            before_swap()
        old = None
        if final.exists() or final.is_symlink():
            old = final.parent / f"{TMP_PREFIX}old-{os.getpid()}-{final.name}"
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except Exception as e:
        written = max((p.stat().st_size for p in tmp.rglob("*") if p.is_file()), default=0)
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(e, GenedgeError) and _disk_full(e, final.parent, written):
            raise _disk_full_error(final, e) from e
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def discard_staged(staging: str | os.PathLike, path: str | os.PathLike) -> None:
    """Remove ``path``, a file this export wrote into its own staging folder (``atomic_dir``'s
    temporary sibling) and then refused. Anything outside ``staging`` is never removed here:
    asking is a bug, not a user's error."""
    p, folder = Path(path), Path(staging).resolve()
    if p.parent.resolve() != folder or not p.name.strip("."):
        raise AssertionError(f"{p} is not a file of the staging folder {folder}")
    p.unlink(missing_ok=True)


def _writer_alive(name: str) -> bool:
    """Whether temporary ``name`` must be kept: its writer is still running, or the name is not
    one genedge makes (``.genedge-tmp-<pid>-...``), so it may be a user's file."""
    rest = name[len(TMP_PREFIX) :]
    rest = rest[len("old-") :] if rest.startswith("old-") else rest
    pid_text = rest.split("-", 1)[0]
    if not pid_text.isdigit():
        return True  # not a name genedge makes: never treated as a leftover
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped (a killed writer whose parent has not
    collected it yet: in a container whose init does not reap, that may be for good)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False  # no /proc (not Linux): signal 0 is the answer
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary leftovers of a killed writer in ``folder``; return what was removed.

    Leftovers of a writer that is still running are kept. A previous folder that
    ``atomic_dir`` had moved aside when it was killed is put back if nothing replaced it.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in sorted(folder.iterdir()):
        if not p.name.startswith(TMP_PREFIX) or _writer_alive(p.name):
            continue
        if p.name.startswith(f"{TMP_PREFIX}old-") and p.is_dir() and not p.is_symlink():
            original = folder / p.name[len(TMP_PREFIX) + len("old-") :].split("-", 1)[-1]
            if not original.exists() and not original.is_symlink():
                os.replace(p, original)  # the kill came between atomic_dir's two renames
                continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        removed.append(p)
    return removed

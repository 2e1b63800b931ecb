"""Ctrl-C for the CLI, and the code genedge runs on a user's behalf.

Python acts on SIGINT only between bytecodes of the main thread: a long call into native
code (an ONNX Runtime session running a graph, a protobuf parse) would hold Ctrl-C off
until it returns. ``sigint_watch`` keeps Python's own handling (``KeyboardInterrupt``,
cleanup in ``finally`` blocks, exit 130 in ``genedge.cli``) and adds a watcher thread that
wakes on the signal through ``signal.set_wakeup_fd``: when the main thread has not begun
handling it within ``GRACE_S``, the watcher prints one line and ends the process with exit
130 (``os._exit``: a half-written artifact stays a ``.genedge-tmp-<pid>-`` leftover, never
a partial file at its final path, and the next run cleans it).

``roomy_signal_stack`` makes sure a native library's alternate signal stack can hold this
CPU's signal frame: Python's handlers run on that stack (``SA_ONSTACK``), and one sized
without room for AMX tile state turns Ctrl-C into a segmentation fault.

``user_code`` turns ``SystemExit`` and a ``KeyboardInterrupt`` that no Ctrl-C caused,
raised by a user's module while imported or called, into ``BadInputError`` (exit 2).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator

from genedge.errors import BadInputError, printable

GRACE_S = 1.0  # how long native code may hold Ctrl-C off before the process ends
EXIT_INTERRUPTED = 130

_state = {"signalled": False, "handled": threading.Event()}

SIGNAL_STACK_BYTES = 256 * 1024  # a signal frame with AVX-512 and AMX state is about 20 KiB
_SS_ONSTACK, _SS_DISABLE = 1, 2
_kept_stacks: list[ctypes.Array] = []  # the kernel may write to them at any signal: never freed


class _StackT(ctypes.Structure):
    _fields_ = [
        ("ss_sp", ctypes.c_void_p),
        ("ss_flags", ctypes.c_int),
        ("ss_size", ctypes.c_size_t),
    ]


def _current_stack() -> _StackT | None:
    """The calling thread's alternate signal stack as ``sigaltstack`` reports it; None off
    Linux or where libc does not answer."""
    if not sys.platform.startswith("linux"):
        return None
    now = _StackT()
    try:
        return now if ctypes.CDLL(None).sigaltstack(None, ctypes.byref(now)) == 0 else None
    except (OSError, AttributeError):
        return None


def signal_stack_bytes() -> int | None:
    """The calling thread's alternate signal stack size; None when it has none (or the
    platform does not say)."""
    now = _current_stack()
    return None if now is None or now.ss_flags & _SS_DISABLE else int(now.ss_size)


def roomy_signal_stack() -> bool:
    """Give the calling thread a ``SIGNAL_STACK_BYTES`` alternate signal stack where a
    library installed a smaller one; True when it was replaced.

    OpenVINO's CPU plugin installs one of exactly the minimum frame size on the thread that
    compiles a model (20,144 bytes with AMX): once the thread has used AMX tiles, delivering
    SIGINT on it faults before any handler runs. Called after every OpenVINO compile.
    """
    now = _current_stack()
    if now is None or now.ss_flags & (_SS_DISABLE | _SS_ONSTACK):
        return False  # none (signals run on the thread's own stack), or running on it now
    if now.ss_size >= SIGNAL_STACK_BYTES:
        return False
    buf = ctypes.create_string_buffer(SIGNAL_STACK_BYTES)
    new = _StackT(ctypes.cast(buf, ctypes.c_void_p), 0, SIGNAL_STACK_BYTES)
    if ctypes.CDLL(None).sigaltstack(ctypes.byref(new), None) != 0:
        return False
    _kept_stacks.append(buf)
    return True


def ctrl_c_seen() -> bool:
    """Whether this process received SIGINT since ``sigint_watch`` began."""
    return _state["signalled"]


def _handler(signum: int, frame: object) -> None:
    _state["signalled"] = True
    _state["handled"].set()
    raise KeyboardInterrupt


def _watch(read_fd: int, label: str, done: threading.Event) -> None:
    try:
        _watch_until_closed(read_fd, label, done)
    finally:
        with contextlib.suppress(OSError):
            os.close(read_fd)  # the watcher owns the read end: closed once nothing reads it


def _watch_until_closed(read_fd: int, label: str, done: threading.Event) -> None:
    while not done.is_set():
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        if signal.SIGINT not in data:
            continue
        _state["signalled"] = True
        if _state["handled"].wait(GRACE_S) or done.is_set():
            continue
        with contextlib.suppress(OSError):  # the raw fd: sys.stderr's lock may be held
            os.write(2, f"{label}: interrupted\n".encode(errors="replace"))
        os._exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def sigint_watch(label: str) -> Iterator[None]:
    """Within the block, Ctrl-C raises ``KeyboardInterrupt`` as usual, and ends the process
    with exit 130 after ``GRACE_S`` when native code keeps the main thread from handling it.

    Outside the main thread (or where SIGINT is ignored) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    done = threading.Event()
    _state["signalled"] = False
    _state["handled"] = threading.Event()
    previous_handler = signal.signal(signal.SIGINT, _handler)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watcher = threading.Thread(
        target=_watch, args=(read_fd, label, done), name="genedge-sigint", daemon=True
    )
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous_handler)
        os.close(write_fd)  # the watcher's read returns b"", it closes read_fd and ends
        watcher.join(GRACE_S + 1.0)  # a watcher still starved of CPU closes its fd later


@contextlib.contextmanager
def user_code(what: str) -> Iterator[None]:
    """Run a user's module (import or call): its ``sys.exit`` or ``SystemExit``, and a
    ``KeyboardInterrupt`` it raised itself, become ``BadInputError`` naming ``what``."""
    try:
        yield
    except SystemExit as e:
        raise BadInputError(
            f"{printable(what, 200)} called sys.exit({printable(repr(e.code), 60)}) (or raised "
            "SystemExit); genedge stopped and wrote nothing.",
            hint="A module passed to genedge must not exit: guard script code with "
            "`if __name__ == '__main__':`.",
        ) from None
    except KeyboardInterrupt:
        if ctrl_c_seen():
            raise
        raise BadInputError(
            f"{printable(what, 200)} raised KeyboardInterrupt without a Ctrl-C; genedge stopped "
            "and wrote nothing.",
            hint="Remove the raise from the module's import-time or forward code.",
        ) from None

"""Ctrl-C for the CLI, and the code genedge runs on a user's behalf.

Python acts on SIGINT only between bytecodes of the main thread: a long call into native
code (an ONNX Runtime session running a graph, a protobuf parse) would hold Ctrl-C off
until it returns. ``sigint_watch`` keeps Python's own handling (``KeyboardInterrupt``,
cleanup in ``finally`` blocks, exit 130 in ``genedge.cli``) and adds a watcher thread that
wakes on the signal through ``signal.set_wakeup_fd``: when the main thread has not begun
handling it within ``GRACE_S``, the watcher prints one line and ends the process with exit
130 (``os._exit``: a half-written artifact stays a ``.genedge-tmp-<pid>-`` leftover, never
a partial file at its final path, and the next run cleans it).

``user_code`` turns ``SystemExit`` and a ``KeyboardInterrupt`` that no Ctrl-C caused,
raised by a user's module while imported or called, into ``BadInputError`` (exit 2).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

from genedge.errors import BadInputError, printable

GRACE_S = 1.0  # how long native code may hold Ctrl-C off before the process ends
EXIT_INTERRUPTED = 130

_state = {"signalled": False, "handled": threading.Event()}


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

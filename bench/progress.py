"""A progress bar on stderr while the bench runs; nothing at all when stderr is not a terminal.

rich (imported here only) draws it; without rich, or when the stream is a pipe or a file
(CI logs, ``2> log``), ``progress_bar`` hands back a step function that does nothing, so
logs keep only the line that says how long the run will take.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

Step = Callable[[], None]


def _noop() -> None:
    return None


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


@contextlib.contextmanager
def progress_bar(total: int, description: str, stream: TextIO | None = None) -> Iterator[Step]:
    """Yield ``step()``, which advances a bar of ``total`` steps drawn on ``stream``
    (default stderr) when it is a terminal; the bar is removed when the block ends."""
    stream = stream if stream is not None else sys.stderr
    if total < 1 or not is_terminal(stream):
        yield _noop
        return
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
    except ImportError:
        yield _noop
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=stream), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)

"""Progress display: a rich bar with live losses on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time

from genedge.errors import printable


def format_value(v: object) -> str:
    """A metric as a progress line shows it; text (an ``ar`` sample of the data) is escaped."""
    return f"{v:.4g}" if isinstance(v, float) else printable(v)


def _fmt(values: dict[str, object]) -> str:
    """``key value`` pairs; a value that does not apply (None) is left out."""
    return " ".join(f"{k} {format_value(v)}" for k, v in values.items() if v is not None)


class Progress:
    """``update(step, losses)`` every step; ``note(text)`` for one-off lines; ``close()``.

    ``total_steps`` or ``total_seconds`` sets what the bar counts. Plain mode (``--no-progress``
    or stdout not a terminal) prints one line every ``plain_every_s`` seconds.
    """

    def __init__(
        self,
        *,
        total_steps: int | None,
        total_seconds: float | None,
        start_step: int,
        enabled: bool,
        fancy: bool,
        plain_every_s: float = 10.0,
    ) -> None:
        self.total_steps, self.total_seconds = total_steps, total_seconds
        self.enabled = enabled
        self.plain_every_s = plain_every_s
        self.t0 = time.perf_counter()
        self._last_print = self.t0
        self._bar = None
        if enabled and fancy and sys.stdout.isatty():
            self._start_rich(start_step)

    def _start_rich(self, start_step: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
        )
        total = self.total_steps if self.total_steps is not None else self.total_seconds
        self._task = self._bar.add_task(
            "train", total=total, completed=start_step if self.total_steps else 0, losses=""
        )
        self._bar.start()

    def update(self, step: int, losses: dict[str, float]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._bar is not None:
            done = step if self.total_steps is not None else now - self.t0
            self._bar.update(self._task, completed=done, losses=_fmt(losses))
        elif now - self._last_print >= self.plain_every_s:
            self._last_print = now
            total = f"/{self.total_steps}" if self.total_steps is not None else ""
            print(f"step {step}{total}  {now - self.t0:6.1f}s  {_fmt(losses)}", flush=True)

    def note_metrics(self, step: int, metrics: dict[str, object]) -> None:
        self.note(f"step {step}: {_fmt(metrics)}")

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

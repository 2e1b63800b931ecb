"""``RUN/metrics.jsonl``: one JSON object per line, ``{"step", "phase": "train"|"eval", ...}``.

Appended as training goes; on ``--resume`` the lines a killed run logged after its last
complete checkpoint are dropped, so the file reads as if the run had never stopped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from genedge.atomic import atomic_write_text
from genedge.file_marks import mark_written
from genedge.readback import MissingFileError, read_bytes

MAX_METRICS_BYTES = 256 << 20


def read_metrics(path: Path) -> list[dict]:
    """Parse every complete line (a torn last line from a killed writer is skipped).

    Read through ``genedge.readback``: a FIFO, device or oversized file is refused (exit 2).
    """
    try:
        raw = read_bytes(path, what="Metrics log", limit=MAX_METRICS_BYTES)
    except MissingFileError:
        return []
    rows = []
    for line in raw.decode("utf-8", "replace").splitlines():
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError, ValueError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _clean(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    return value


def _step(row: dict) -> int | float:
    step = row.get("step", 0)
    return step if isinstance(step, int) and not isinstance(step, bool) else math.inf


class MetricsLog:
    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled

    def start(self, resume_step: int | None) -> None:
        """Fresh run: empty the file. Resume: keep only lines up to ``resume_step``."""
        if not self.enabled:
            return
        keep = [
            r
            for r in read_metrics(self.path)
            if resume_step is not None and _step(r) <= resume_step
        ]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def write(self, step: int, phase: str, values: dict[str, object]) -> None:
        if not self.enabled:
            return
        row = {"step": step, "phase": phase, **{k: _clean(v) for k, v in values.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        mark_written(self.path)  # the recorded hash follows the appended content

"""Judging an api_probe.py report: which problems a VersionGuard excuses, and which not."""

from __future__ import annotations

from typing import Any

from version_guards import GuardChecker, guard_for


def excused(use: dict[str, Any], major: str, checker: GuardChecker) -> bool:
    """A missing name on ``major`` that its VersionGuard allows at this use's place."""
    g = guard_for(use["name"], major)
    if g is None or "has no attribute" not in (use["problem"] or ""):
        return False
    place = f"{use['file']}:{use['function']}"
    in_allowed = any(place == f or place.startswith(f + ".") for f in g.functions)
    return in_allowed and checker.guarded(use["file"], use["line"], use["function"], g.guard)


def failures(report: dict[str, Any], major: str, checker: GuardChecker) -> list[str]:
    """One line per use that does not fit TensorRT ``major`` and is not excused."""
    return [
        f"{u['where']}: {u['problem']}"
        for u in report["uses"]
        if u["problem"] and not excused(u, major, checker)
    ]

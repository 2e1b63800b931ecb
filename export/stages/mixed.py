"""Mixed-precision recipe search: keep the most sensitive nodes in float until the gate passes.

Sensitivity of a node = how much the quality score improves when only that node is left in
float (everything else int8). Nodes are then kept in float greedily, most sensitive first,
until ``evaluate`` passes. ``build`` and ``evaluate`` are injected, so the search is the
same for images (PSNR/SSIM/accuracy) and text (bits per character).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GateResult:
    """One candidate's verdict: ``score`` higher is better; ``record`` goes to the manifest."""

    passed: bool
    score: float
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """The chosen int8 artifact: nodes kept in float, its gate result, per-node sensitivity,
    and the all-int8 graph's gate result (what made the search keep nodes in float)."""

    path: Path
    kept_float: tuple[str, ...]
    result: GateResult
    sensitivity: dict[str, float]
    all_int8: GateResult | None = None


def search_recipe(
    build: Callable[[tuple[str, ...]], Path],
    evaluate: Callable[[Path], GateResult],
    candidates: list[str],
    *,
    log: Callable[[str], None] = lambda s: None,
) -> Recipe:
    """Try all-int8 first; if it fails, rank ``candidates`` by sensitivity and keep them in float greedily.

    ``build(kept)`` must write a distinct file per ``kept`` tuple and return its path.
    """
    tried: dict[tuple[str, ...], tuple[Path, GateResult]] = {}

    def attempt(kept: tuple[str, ...]) -> GateResult:
        if kept not in tried:
            path = build(kept)
            tried[kept] = (path, evaluate(path))
        return tried[kept][1]

    kept: tuple[str, ...] = ()
    sensitivity: dict[str, float] = {}
    if not attempt(kept).passed and candidates:
        base = attempt(()).score
        sensitivity = {n: attempt((n,)).score - base for n in candidates}
        order = sorted(candidates, key=lambda n: sensitivity[n], reverse=True)
        for i in range(1, len(order) + 1):
            kept = tuple(order[:i])
            log(f"int8 quality gate: keeping {kept[-1]} in float ({i}/{len(order)})")
            if attempt(kept).passed:
                break
    path, result = tried[kept]
    return Recipe(path, kept, result, sensitivity, tried[()][1])

"""How a bundle's verdicts read in one line: which checks ran, the task metrics, the reason.

Shared by ``genedge export``'s summary, ``genedge inspect`` and ``export_generator``'s log, so
all three say the same thing. Reads parsed manifest records only (no heavy imports).
"""

from __future__ import annotations

from genedge.errors import printable
from genedge.manifest import Manifest, Verification

_SHORT = {"conditional_accuracy": "acc", "frechet_distance": "FD", "bpc": "bpc"}


CHECK_NAMES = {
    "parity": "parity vs source",
    "psnr": "image quality",
    "task_metric": "task metric",
    "max_err": "max error",
}


def checks_text(checks: tuple[str, ...] | list[str]) -> str:
    """``image quality + task metric``: which checks a verdict rests on."""
    return " + ".join(CHECK_NAMES.get(c, c) for c in checks)


def metric_text(v: Verification) -> str:
    """``acc 0.991 (fp32 0.988), FD 13.8`` from a verification record."""
    now, ref = v.metrics, v.metrics_fp32
    parts = []
    for key, short in _SHORT.items():
        if now.get(key) is not None:
            parts.append(
                f"{short} {now[key]:.3f}"
                + (f" (fp32 {ref[key]:.3f})" if ref.get(key) is not None else "")
            )
    return ", ".join(parts)


def gate_lines(manifest: Manifest) -> list[str]:
    """One line per gated artifact: its verdict and what it rests on (measured vs limits)."""
    return [
        f"{printable(a.file)}: {a.verification.verdict} - {printable(a.verification.reason, 300)}"
        for a in manifest.artifacts
        if a.verification.reason
    ]

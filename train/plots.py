"""``RUN/curves.png``: training losses and eval metrics against step (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

from genedge.atomic import atomic_path

from .metrics_log import read_metrics

SKIP = {
    "step",
    "phase",
    "elapsed_s",
    "num_samples",
    "num_chars",
    "vocab_size",
    "judge_heldout_accuracy",  # the yardstick's own accuracy: a flat line, not progress
}
Series = dict[str, tuple[list[int], list[float]]]


def _series(rows: list[dict], phase: str) -> Series:
    out: Series = {}
    for r in rows:
        if r.get("phase") != phase:
            continue
        for k, v in r.items():
            if k in SKIP or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            xs, ys = out.setdefault(k, ([], []))
            xs.append(r["step"])
            ys.append(float(v))
    return out


def plot_curves(metrics_path: Path, out_png: Path) -> Path | None:
    """Plot every numeric series of ``metrics.jsonl``; None when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    evals = _series(rows, "eval")
    scores = {k: v for k, v in evals.items() if all(0.0 <= y <= 1.0 for y in v[1])}  # accuracy, P/R
    others = {k: v for k, v in evals.items() if k not in scores}  # distances, bpc
    panels = [("train", _series(rows, "train")), ("eval scores", scores), ("eval", others)]
    panels = [(name, s) for name, s in panels if s]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (name, series) in zip(axes[0], panels, strict=True):
        for key, (xs, ys) in sorted(series.items()):
            ax.plot(xs, ys, label=key, marker="o" if name == "eval" else None, markersize=3)
        ax.set_title(f"{name} metrics")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out_png

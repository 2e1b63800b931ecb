"""The benchmark picture: latency CDF per configuration, throughput vs batch (two panels).

matplotlib (Agg, no display) is imported inside ``write_plot`` only.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

from genedge.atomic import atomic_write_bytes
from genedge.errors import require

from .report import BenchReport


def write_plot(report: BenchReport, path: str | Path, *, cdf_batch: int | None = None) -> Path:
    """Write a PNG: left, latency CDF of every configuration at ``cdf_batch`` (default the
    smallest batch measured); right, throughput (samples/s) against batch size."""
    matplotlib = require("matplotlib", "train", purpose="--plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = list(report.results)
    batches = sorted({r.batch for r in results})
    cdf_batch = cdf_batch if cdf_batch is not None else (batches[0] if batches else 1)
    labels = list(dict.fromkeys(r.label for r in results))
    style = {label: _style(label, i, plt) for i, label in enumerate(labels)}
    fig, (ax_cdf, ax_tp) = plt.subplots(1, 2, figsize=(13, 5.5 + 0.1 * len(labels)))
    try:
        for r in (r for r in results if r.batch == cdf_batch):
            xs = sorted(t / 1e6 for t in r.times_ns)
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax_cdf.step(xs, ys, where="post", **style[r.label])
        ax_cdf.set(
            xscale="log",
            xlabel="latency per call (ms, log)",
            ylabel="fraction of calls",
            title=f"Latency CDF, batch {cdf_batch}",
        )
        ax_cdf.grid(True, which="both", alpha=0.3)
        series: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for r in results:
            series[r.label].append((r.batch, r.throughput))
        for label, points in series.items():
            points.sort()
            ax_tp.plot([b for b, _ in points], [t for _, t in points], marker="o", **style[label])
        ax_tp.set(
            xscale="log",
            yscale="log",
            xlabel="batch size",
            ylabel="samples / s",
            title="Throughput vs batch",
        )
        ax_tp.grid(True, which="both", alpha=0.3)
        fig.suptitle(f"genedge bench: {report.environment.get('cpu_model', '')}", fontsize=9)
        handles, names = ax_tp.get_legend_handles_labels()
        if handles:  # one legend for both panels, below them: it hides no curve
            fig.legend(handles, names, loc="lower center", ncol=3, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.04 + 0.022 * ((len(labels) + 2) // 3), 1, 1))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _style(label: str, i: int, plt) -> dict:
    """One colour per configuration (tab20, so 20 stay apart); solid for the runtime, dashed
    for baselines, dotted for ``sample()`` calls."""
    dash = ":" if "sample()" in label else ("-" if label.startswith("runtime") else "--")
    return {"label": label, "color": plt.get_cmap("tab20")(i % 20), "linestyle": dash}

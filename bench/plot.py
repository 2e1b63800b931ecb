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
    own = label.startswith(("runtime", "genedge"))
    dash = ":" if "sample()" in label else ("-" if own else "--")
    return {"label": label, "color": plt.get_cmap("tab20")(i % 20), "linestyle": dash}


# (bar hatch, line dash) per framework: genedge's first backend plain and solid
_FRAMEWORK_MARKS = ((None, "-"), ("//", "--"), ("..", "-."), ("xx", ":"), ("\\\\", (0, (5, 1))))


def _text_styles(configs: list[dict], plt) -> dict[str, dict]:
    """Text configurations drawn so that like compares with like: one colour per precision
    (genedge fp32 and genai fp32 share a hue), one bar hatch and line dash per framework
    (genedge's backends first, then each baseline), baselines' bars filled paler."""
    cmap = plt.get_cmap("tab10")
    precisions = list(dict.fromkeys(str(c.get("precision")) for c in configs))
    frameworks = list(
        dict.fromkeys(
            (c.get("kind") != "runtime", str(c.get("backend")))
            for c in sorted(configs, key=lambda c: c.get("kind") != "runtime")
        )
    )
    out = {}
    for c in configs:
        colour = cmap(precisions.index(str(c.get("precision"))) % 10)
        j = frameworks.index((c.get("kind") != "runtime", str(c.get("backend"))))
        hatch, dash = _FRAMEWORK_MARKS[j % len(_FRAMEWORK_MARKS)]
        face = colour if c.get("kind") == "runtime" else (*colour[:3], 0.35)
        out[c["label"]] = {"color": colour, "face": face, "hatch": hatch, "linestyle": dash}
    return out


def write_text_plot(report: BenchReport, path: str | Path) -> Path:
    """A transformer bundle's PNG: left, tokens/s of every configuration per (prompt, new
    tokens) case; right, the cost of a token against its position in the longest case (a
    flat line: the KV cache works; a rising one: each token recomputes the context)."""
    matplotlib = require("matplotlib", "train", purpose="--plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list((report.text or {}).get("configurations", []))
    labels = list(dict.fromkeys(c["label"] for c in configs))
    cases = list(dict.fromkeys((c["prompt_tokens"], c["new_tokens"]) for c in configs))
    style = _text_styles(configs, plt)
    fig, (ax_tp, ax_pos) = plt.subplots(1, 2, figsize=(13, 5.5 + 0.1 * len(labels)))
    try:
        width = 0.8 / max(1, len(labels))
        for i, label in enumerate(labels):
            by_case = {
                (c["prompt_tokens"], c["new_tokens"]): c for c in configs if c["label"] == label
            }
            xs = [j + i * width for j in range(len(cases))]
            ys = [(by_case.get(k) or {}).get("tokens_per_s") or 0.0 for k in cases]
            st = style[label]
            ax_tp.bar(
                xs,
                ys,
                width,
                label=label,
                color=st["face"],
                edgecolor=st["color"],
                hatch=st["hatch"],
                linewidth=0.8,
            )
        ax_tp.set_xticks([j + 0.4 - width / 2 for j in range(len(cases))])
        ax_tp.set_xticklabels([f"prompt {p}\n{n} new" for p, n in cases], fontsize=8)
        ax_tp.set(yscale="log", ylabel="tokens / s (whole generation)", title="Tokens/s per case")
        ax_tp.grid(True, axis="y", which="both", alpha=0.3)
        longest = max(cases, key=lambda k: k[0] + k[1]) if cases else None
        for c in (c for c in configs if (c["prompt_tokens"], c["new_tokens"]) == longest):
            curve = c.get("token_ms_by_position") or {}
            st = style[c["label"]]
            ax_pos.plot(
                curve.get("position", []),
                curve.get("ms", []),
                color=st["color"],
                linestyle=st["linestyle"],
                label=c["label"],
            )
        if longest is not None:
            ax_pos.set(
                yscale="log",
                xlabel="position in the sequence",
                ylabel="ms per token (median over rounds, log)",
                title=f"Token cost vs position (prompt {longest[0]}, {longest[1]} new)",
            )
        ax_pos.grid(True, which="both", alpha=0.3)
        fig.suptitle(f"genedge bench: {report.environment.get('cpu_model', '')}", fontsize=9)
        handles, names = ax_tp.get_legend_handles_labels()
        if handles:
            fig.legend(handles, names, loc="lower center", ncol=3, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.04 + 0.022 * ((len(labels) + 2) // 3), 1, 1))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)

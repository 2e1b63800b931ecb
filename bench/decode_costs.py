"""Where one decode step's time goes: a KV-cache decoder graph against two graphs cut from it.

    python -m genedge.bench.decode_costs BUNDLE/model.onnx [MORE.onnx ...]
        [--labels genedge,genai] [--positions 32,600] [--rounds 10] [--threads 2]
        [--markdown OUT.md] [--json OUT.json] [--plot OUT.png]

For each graph and each cache position P, three graphs run one token at position P (batch 1,
ONNX Runtime CPU with the session options genedge's text runtime uses):

- ``full``: the graph as it is (attention over P + 1 positions of a shared cache buffer);
- ``no attention``: every ``GroupQueryAttention`` replaced by a slice of its query (the
  cache inputs and outputs gone, and what only fed them);
- ``weights only``: one node per weight-reading op (``MatMul``/``Gemm`` with a constant
  weight, ``MatMulNBits``) with its own weights, each reading a fixed input of its width.

``full - no attention`` is what attention costs in place; ``no attention - weights only`` is
everything else (norms, activations, the embedding, the ops that feed attention, and what the
weight ops lose to running between them); ``weights only`` is the floor that streaming the
weights through the cores sets. Each difference is taken per round (the three graphs run in
a Williams order, ``runtime.measure.round_order``) and reported as the median with its IQR.

Timings are of ``OrtBackend.rerun_bound``: the run alone, no sampling, no Python between
runs beyond the call. Graphs are files you trust (no manifest hash is checked; their
external data still goes through ``genedge.onnx_guard``). Needs the export extra (onnx).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genedge.atomic import atomic_write_bytes, atomic_write_text
from genedge.errors import BadInputError, GenedgeError, printable, require
from genedge.limits import check_bytes
from genedge.onnx_guard import check_external_data
from genedge.outputs import check_output_file
from genedge.runtime.measure import balance_period, interleave
from genedge.runtime.ort_backend import OrtBackend, OrtOptions
from genedge.runtime.text_lm import DECODER_SPIN_US

from .env import environment
from .report import md_env, md_table
from .stats import iqr
from .timer import time_calls, warm_up

VARIANTS = ("full", "no attention", "weights only")
HEADER = (
    "graph",
    "position",
    "full (us)",
    "weights only",
    "everything else (IQR)",
    "attention (IQR)",
    "rounds",
)
ATTENTION_OPS = ("GroupQueryAttention",)
WEIGHT_OPS = ("MatMul", "Gemm", "MatMulNBits")
RUNS_PER_TURN = 40  # timed runs per graph per round, after WARM_RUNS
WARM_RUNS = 8
PAST, PRESENT = "past_key_values.", "present."


# ---------------------------------------------------------------- cutting the graphs
def _attr(node: Any, name: str, default: Any = None) -> Any:
    onnx = require("onnx", "export", purpose="decode_costs")
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _prune(model: Any) -> None:
    """Drop nodes no output needs, then graph inputs and initializers nothing reads."""
    g = model.graph
    wanted = {o.name for o in g.output}
    keep: list[Any] = []
    for n in reversed(g.node):
        if any(o and o in wanted for o in n.output):
            keep.append(n)
            wanted.update(i for i in n.input if i)
    del g.node[:]
    g.node.extend(reversed(keep))
    for field in (g.input, g.initializer):
        for x in [x for x in field if x.name not in wanted]:
            field.remove(x)


def without_attention(model: Any) -> Any:
    """A copy with each attention node replaced by a slice of its query to the attention's
    output width (heads x head size, the past cache's last dimension) and the cache gone."""
    onnx = require("onnx", "export", purpose="decode_costs")
    numpy_helper = onnx.numpy_helper
    m = copy.deepcopy(model)
    g = m.graph
    dropped: set[str] = set()
    nodes = []
    for n in g.node:
        if n.op_type not in ATTENTION_OPS:
            nodes.append(n)
            continue
        width = _attention_width(g, n)
        base = f"{n.output[0]}.cut"
        g.initializer.extend(
            numpy_helper.from_array(np.array([v], np.int64), f"{base}.{k}")
            for k, v in (("start", 0), ("end", width), ("axis", -1))
        )
        ends = [n.input[0], f"{base}.start", f"{base}.end", f"{base}.axis"]
        nodes.append(onnx.helper.make_node("Slice", ends, [n.output[0]], name=base))
        dropped.update(o for o in n.output[1:] if o)
    if not dropped:
        raise BadInputError(
            f"No {' or '.join(ATTENTION_OPS)} node in the graph: its attention cannot be "
            "measured apart.",
            hint="decode_costs reads the KV-cache decoders genedge export writes.",
        )
    del g.node[:]
    g.node.extend(nodes)
    for o in [o for o in g.output if o.name in dropped]:
        g.output.remove(o)
    _prune(m)
    return m


def _attention_width(g: Any, node: Any) -> int:
    """Heads x head size of ``node``'s output: the input width of the weight op that reads it
    (the output projection), else num_heads x the past cache's fixed last dimension."""
    inits = {t.name: t for t in g.initializer}
    for n in g.node:
        if n.op_type in WEIGHT_OPS and n.input and n.input[0] == node.output[0]:
            k = _weight_in_out(n, inits)
            if k is not None:
                return k[0]
    for i in g.input:
        dims = i.type.tensor_type.shape.dim
        if i.name.startswith(PAST) and len(dims) == 4 and dims[3].dim_value > 0:
            return int(_attr(node, "num_heads")) * int(dims[3].dim_value)
    raise BadInputError(
        f"The width of attention node {printable(node.name)!r} is unknown: no weight op reads "
        "its output and no past_key_values.* input has a fixed head size.",
        hint="decode_costs reads the KV-cache decoders genedge export writes.",
    )


def _weight_in_out(n: Any, inits: dict[str, Any]) -> tuple[int, int, int] | None:
    """(K, N, element type of the activation) of a weight op whose weights are constants,
    else None."""
    if n.op_type not in WEIGHT_OPS or len(n.input) < 2:
        return None
    if not all(i in inits for i in n.input[1:] if i):
        return None
    w = inits[n.input[1]]
    if n.op_type == "MatMulNBits":
        return int(_attr(n, "K")), int(_attr(n, "N")), inits[n.input[2]].data_type
    if len(w.dims) != 2:
        return None
    trans_b = n.op_type == "Gemm" and _attr(n, "transB", 0) == 1
    k, n_out = (int(d) for d in (reversed(w.dims) if trans_b else w.dims))
    return k, n_out, w.data_type


def weights_only(model: Any) -> Any:
    """One node per weight op of ``model`` with its constant inputs, each reading a graph
    input ``x{K}`` of shape (1, K); every result is a graph output."""
    onnx = require("onnx", "export", purpose="decode_costs")
    helper = onnx.helper
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    nodes, outputs, used, widths = [], [], [], {}
    for n in g.node:
        shape = _weight_in_out(n, inits)
        if shape is None:
            continue
        k, n_out, dtype = shape
        c = copy.deepcopy(n)
        c.input[0] = f"x{k}"
        del c.output[:]
        c.output.append(f"y{len(nodes)}")
        nodes.append(c)
        outputs.append(helper.make_tensor_value_info(c.output[0], dtype, [1, n_out]))
        used.extend(i for i in n.input[1:] if i)
        widths[k] = dtype
    if not nodes:
        raise BadInputError("No weight op (MatMul, Gemm, MatMulNBits) reads a constant weight.")
    inputs = [helper.make_tensor_value_info(f"x{k}", t, [1, k]) for k, t in widths.items()]
    graph = helper.make_graph(
        nodes, "weights_only", inputs, outputs, [inits[x] for x in dict.fromkeys(used)]
    )
    m = helper.make_model(graph, opset_imports=list(model.opset_import))
    m.ir_version = model.ir_version
    return m


def head_size(model: Any) -> int:
    """The attention's head size: its output width over its query heads."""
    for n in model.graph.node:
        if n.op_type in ATTENTION_OPS:
            return _attention_width(model.graph, n) // int(_attr(n, "num_heads"))
    raise BadInputError(f"No {' or '.join(ATTENTION_OPS)} node in the graph.")


def cut_graphs(path: Path, folder: Path) -> tuple[dict[str, Path], int]:
    """The three graphs of ``path`` as files in ``folder`` (``full`` is ``path`` itself), and
    the attention's head size (the cache's last dimension, which a graph may leave open)."""
    onnx = require("onnx", "export", purpose="decode_costs")
    check_external_data(path, path.parent)
    model = onnx.load(str(path))
    files = {"full": path}
    for name, cut in (("no attention", without_attention), ("weights only", weights_only)):
        out = folder / f"{path.stem}.{name.replace(' ', '_')}.onnx"
        onnx.save(cut(model), str(out), save_as_external_data=True, location=f"{out.name}.data")
        files[name] = out
    return files, head_size(model)


# ---------------------------------------------------------------- one step, bound once
class BoundStep:
    """One graph opened on ONNX Runtime CPU with every input and output bound for a token at
    cache position ``position``; ``median_us()`` reruns it."""

    def __init__(self, path: Path, position: int, threads: int, head: int) -> None:
        opts = OrtOptions(intra_op_threads=threads, inter_op_threads=1, spin_us=DECODER_SPIN_US)
        self.backend = OrtBackend.open(path, options=opts)
        try:
            self._keep = self._bind(position, head)
        except BaseException:
            self.backend.close()
            raise

    def _bind(self, position: int, head: int) -> tuple[dict, dict]:
        rng = np.random.default_rng(0)
        feed: dict[str, np.ndarray] = {}
        out: dict[str, np.ndarray] = {}
        cache: dict[str, np.ndarray] = {}
        caches = [t for t in self.backend.inputs if t.name.startswith(PAST)]
        check_bytes(
            f"A KV cache of {position + 1} positions",
            sum(_kv_heads(t) * (position + 1) * head * np.dtype(t.dtype).itemsize for t in caches),
            hint="Ask for smaller --positions (at most the model's context).",
        )
        for t in self.backend.inputs:
            dtype = np.dtype(t.dtype)
            if t.name == "input_ids":
                feed[t.name] = np.ones((1, 1), dtype)
            elif t.name == "position_ids":
                feed[t.name] = np.full((1, 1), position, dtype)
            elif t.name == "attention_mask":
                feed[t.name] = np.ones((1, position + 1), dtype)
            elif t.name.startswith(PAST):
                shape = (1, _kv_heads(t), position + 1, head)
                cache[t.name[len(PAST) :]] = feed[t.name] = np.zeros(shape, dtype)
            elif t.name.startswith("x") and t.name[1:].isdigit():  # a weights-only input
                feed[t.name] = rng.standard_normal(t.shape).astype(dtype)
            else:
                raise BadInputError(
                    f"Graph input {printable(t.name)!r} is not one decode_costs knows how to "
                    "feed (input_ids, position_ids, attention_mask, past_key_values.*)."
                )
        for t in self.backend.outputs:
            if t.name.startswith(PRESENT) and t.name[len(PRESENT) :] in cache:
                out[t.name] = cache[t.name[len(PRESENT) :]]  # the shared buffer: present is past
            elif t.name == "logits" and isinstance(t.shape[-1], int):
                out[t.name] = np.empty((1, 1, t.shape[-1]), np.dtype(t.dtype))
            elif all(isinstance(d, int) for d in t.shape):  # a weights-only result, (1, N)
                out[t.name] = np.empty(t.shape, np.dtype(t.dtype))
            else:
                raise BadInputError(
                    f"Graph output {printable(t.name)!r} has shape {t.shape}; expected logits "
                    "(B, S, vocabulary) with a fixed vocabulary, or a present.* cache with its past."
                )
        self.backend.run_bound(feed, out)
        return feed, out

    def median_us(self, runs: int = RUNS_PER_TURN, warm: int = WARM_RUNS) -> float:
        warm_up(self.backend.rerun_bound, warm)
        return statistics.median(time_calls(self.backend.rerun_bound, runs)) / 1e3

    def close(self) -> None:
        self.backend.close()


def _kv_heads(t: Any) -> int:
    if len(t.shape) != 4 or not isinstance(t.shape[1], int):
        raise BadInputError(
            f"Cache input {printable(t.name)!r} has shape {t.shape}; expected (B, heads, T, "
            "head size) with a fixed number of heads."
        )
    return t.shape[1]


# ---------------------------------------------------------------- measuring and reporting
@dataclass
class Breakdown:
    label: str
    position: int
    rounds: int
    full_us: float
    attention_us: float
    attention_iqr: tuple[float, float]
    other_us: float
    other_iqr: tuple[float, float]
    weights_us: float


def breakdown(label: str, position: int, per_variant: list[list[float]]) -> Breakdown:
    full, no_attn, weights = per_variant
    attention = [a - b for a, b in zip(full, no_attn, strict=True)]
    other = [a - b for a, b in zip(no_attn, weights, strict=True)]
    return Breakdown(
        label,
        position,
        len(full),
        statistics.median(full),
        statistics.median(attention),
        iqr(attention),
        statistics.median(other),
        iqr(other),
        statistics.median(weights),
    )


def cut_all(graphs: list[tuple[str, Path]], folder: Path) -> list[tuple[dict[str, Path], int]]:
    """``cut_graphs`` of each graph, each in its own subfolder (two graphs may share a name:
    every decoder is a ``model.onnx``)."""
    out = []
    for i, (_, path) in enumerate(graphs):
        sub = folder / str(i)
        sub.mkdir()
        out.append(cut_graphs(path, sub))
    return out


def measure(
    graphs: list[tuple[str, Path]],
    positions: list[int],
    rounds: int,
    threads: int,
    folder: Path,
    say: Any = None,
) -> list[Breakdown]:
    """Per position, every graph's three variants interleaved for ``rounds`` rounds."""
    runs = [(files[v], head) for files, head in cut_all(graphs, folder) for v in VARIANTS]
    results = []
    for p in positions:
        times = _interleaved(runs, p, rounds, threads, say)
        for g, (label, _) in enumerate(graphs):
            results.append(breakdown(label, p, times[3 * g : 3 * g + 3]))
    return results


def _interleaved(
    runs: list[tuple[Path, int]], position: int, rounds: int, threads: int, say: Any
) -> list[list[float]]:
    """``times[i][r]``: the median step of ``runs[i]`` (a file and its head size) at
    ``position`` in round ``r``."""
    steps: list[BoundStep] = []
    try:
        steps.extend(BoundStep(f, position, threads, head) for f, head in runs)

        def done(r: int) -> None:
            if say is not None:
                say(f"position {position}: round {r}/{rounds}")

        turn = lambda i, r: steps[i].median_us()  # noqa: E731
        return interleave(len(steps), turn, rounds=rounds, rotate=True, after_round=done)  # type: ignore[return-value]
    finally:
        for s in steps:
            s.close()


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole > 0 else "-"


def markdown(results: list[Breakdown], env: dict[str, Any]) -> str:
    rows = [
        (
            b.label,
            str(b.position),
            f"{b.full_us:.0f}",
            f"{b.weights_us:.0f} ({_share(b.weights_us, b.full_us)})",
            f"{b.other_us:.0f} ({b.other_iqr[0]:.0f} to {b.other_iqr[1]:.0f}; "
            f"{_share(b.other_us, b.full_us)})",
            f"{b.attention_us:.0f} ({b.attention_iqr[0]:.0f} to {b.attention_iqr[1]:.0f}; "
            f"{_share(b.attention_us, b.full_us)})",
            str(b.rounds),
        )
        for b in results
    ]
    lines = [
        "# Where a decode step's time goes",
        "",
        *md_env(env),
        "One token at cache position P, batch 1, ONNX Runtime CPU; per round the median of "
        f"{RUNS_PER_TURN} runs of each graph; the table gives medians over rounds, and each "
        "part's IQR over rounds (the parts are differences taken within a round).",
        "",
        *md_table(HEADER, [tuple(printable(c) for c in r) for r in rows]),
    ]
    return "\n".join(lines)


def write_plot(results: list[Breakdown], path: Path) -> None:
    """Stacked horizontal bars, one per graph and position: weights, everything else,
    attention (us), and a tick at the full step's median."""
    matplotlib = require("matplotlib", "train", purpose="--plot")
    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.55 * len(results)))
    try:
        names = [f"{printable(b.label)}, P = {b.position}" for b in results][::-1]
        rows = results[::-1]
        left = np.zeros(len(rows))
        parts = (
            ("weights only", [b.weights_us for b in rows], "#4c72b0"),
            ("everything else", [max(b.other_us, 0.0) for b in rows], "#dd8452"),
            ("attention", [max(b.attention_us, 0.0) for b in rows], "#55a868"),
        )
        for label, values, colour in parts:
            ax.barh(names, values, left=left, label=label, color=colour)
            left = left + np.array(values)
        # the parts are medians of per-round differences: the full step's own median beside them
        ax.scatter(
            [b.full_us for b in rows],
            names,
            marker="|",
            s=300,
            color="black",
            zorder=3,
            label="full step (median)",
        )
        ax.set(
            xlabel="one decode step (us, medians over rounds)", title="Where a token's time goes"
        )
        ax.legend(loc="lower right")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 0:
        raise BadInputError(
            f"--{what} {printable(text)!r}: expected comma-separated integers >= 0."
        )
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m genedge.bench.decode_costs",
        description="Split a KV-cache decoder's step time into weights, attention and the rest.",
    )
    p.add_argument(
        "graphs", nargs="+", type=Path, help="decoder ONNX files (a bundle's model.onnx)"
    )
    p.add_argument("--labels", help="comma-separated names of the graphs (default: file paths)")
    p.add_argument("--positions", default="32,600", help="cache positions (default 32,600)")
    p.add_argument("--rounds", type=int, help="rounds (default: one balanced period, at least 10)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--markdown", type=Path)
    p.add_argument("--json", type=Path)
    p.add_argument("--plot", type=Path)
    return p


def run(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    labels = a.labels.split(",") if a.labels else [str(g) for g in a.graphs]
    if len(labels) != len(a.graphs):
        raise BadInputError(f"--labels names {len(labels)} graphs; {len(a.graphs)} were given.")
    for g in a.graphs:
        if not g.is_file():
            raise BadInputError(f"{printable(str(g))!r} is not a file; expected a decoder .onnx.")
    if a.threads < 1 or (a.rounds is not None and a.rounds < 1):
        raise BadInputError("--threads and --rounds must be at least 1.")
    positions = _ints(a.positions, "positions")
    for value, flag, suffixes in (
        (a.markdown, "--markdown", (".md", ".markdown")),
        (a.json, "--json", (".json",)),
        (a.plot, "--plot", (".png",)),
    ):
        if value:  # genedge's output contract: never replace a file genedge did not write
            check_output_file(value, flag=flag, suffixes=suffixes)
    count = 3 * len(a.graphs)
    rounds = a.rounds or max(10, balance_period(count))
    with tempfile.TemporaryDirectory(prefix="genedge-decode-costs-") as tmp:
        results = measure(
            list(zip(labels, a.graphs, strict=True)),
            positions,
            rounds,
            a.threads,
            Path(tmp),
            say=lambda s: print(s, file=sys.stderr, flush=True),
        )
    env = environment(a.graphs[0].parent, ["python", "-m", "genedge.bench.decode_costs", *argv])
    text = markdown(results, env)
    print(text)
    if a.markdown:
        atomic_write_text(a.markdown, text)
    if a.json:
        payload = {"environment": env, "results": [asdict(b) for b in results]}
        atomic_write_text(a.json, json.dumps(payload, indent=1) + "\n")
    if a.plot:
        write_plot(results, a.plot)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except GenedgeError as e:
        print(f"decode_costs: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # the machine's: a full disk under the temporary folder, a lost mount
        print(f"decode_costs: error: {printable(str(e))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

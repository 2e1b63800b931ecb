"""AR bundles: time to first token, per-token latency percentiles and tokens/s via ``TextGenerator``.

Character-level RNN bundles (below ``text_bench``): each run streams ``max_new_tokens`` tokens from a fixed prompt and seed; the clock
starts at the call, the first token's arrival gives the time to first token (which
includes the prompt's prefill) and the gaps between later tokens give the per-token
latency. Runs are repeated for the budget; the first ``warmup`` tokens' worth of runs
are discarded.

Transformer bundles (``transformer_bench``): for each (prompt tokens, new tokens) case,
every configuration of the bundle and every baseline (``genedge.bench.text_targets``)
generates greedily from the same prompt token ids, exactly the same number of new tokens,
in interleaved rounds (one generation per configuration per round; the orders put every
configuration after every other equally often: ``runtime.measure.round_order``). Per configuration and case: time to first token, inter-token
p50/p90/p99, tokens/s; per round the ratio of each baseline's generation time to each
genedge configuration's (median and interquartile range over rounds); and, when a case
reaches position ~600, the cost of a token there against one at ~50 (a cache that grows
like a recompute shows here).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from genedge.errors import BadInputError, printable
from genedge.runtime.measure import interleave

from .baselines import recorded_path
from .cases import SkipCase, describe, open_kwargs
from .options import BenchOptions
from .runner import SETTLE_S
from .stats import NS_PER_MS, NS_PER_S, intervals, iqr, latency_stats, percentile
from .text_targets import (
    GENAI_PRECISIONS,
    GenaiTarget,
    GenedgeTextTarget,
    Prompt,
    TransformersTarget,
    baseline_folder,
)

PROMPT = "def "


def stream_tokens(gen: Any, prompt: str, max_new_tokens: int, seed: int) -> Iterable[Any]:
    """``TextGenerator.generate``: yields characters as they are produced."""
    return gen.generate(prompt, max_new_tokens=max_new_tokens, seed=seed)


def time_stream(tokens: Callable[[], Iterable[Any]]) -> list[int]:
    """Arrival times (ns since the call) of every token of one stream."""
    clock = time.perf_counter_ns
    t0 = clock()
    return [clock() - t0 for _ in tokens()]


def summarize_text(runs: list[list[int]]) -> dict[str, Any]:
    """TTFT and per-token stats over several runs of token arrival offsets."""
    runs = [r for r in runs if r]
    ttft = latency_stats([r[0] for r in runs])
    per_token = [g for r in runs for g in intervals(r)]
    total_tokens = sum(len(r) for r in runs)
    total_ns = sum(r[-1] for r in runs)
    return {
        "runs": len(runs),
        "tokens": total_tokens,
        "time_to_first_token": ttft.to_dict(),
        "per_token": latency_stats(per_token).to_dict() if per_token else None,
        "tokens_per_s": total_tokens * NS_PER_S / total_ns if total_ns else None,
        "decode_tokens_per_s": len(per_token) * NS_PER_S / sum(per_token) if per_token else None,
    }


def expected_text_duration(o: BenchOptions) -> str:
    """What a text bench will take, said before it starts."""
    n = len(o.backends) * len(o.precisions or ("fp32",))
    each = f"{o.seconds:g} s" if o.seconds is not None else f"{o.iters} tokens"
    about = f": about {n * o.seconds:.0f} s" if o.seconds is not None else ""
    return f"bench: {n} text configuration{'s' if n != 1 else ''} x {each}{about} (plus loading)"


def text_bench(
    o: BenchOptions,
    notes: list[str],
    announce: Callable[[str], None] | None = None,
    manifest: Any = None,
) -> dict[str, Any]:
    """One entry per backend x precision: TTFT, per-token percentiles, tokens/s.
    ``announce`` receives one line saying how long it will take, before it starts.
    A transformer bundle's ``manifest`` sends it to ``transformer_bench``."""
    from genedge.runtime import TextGenerator

    if manifest is not None and is_transformer(manifest):
        return transformer_bench(o, manifest, notes, announce)
    if announce is not None:
        announce(expected_text_duration(o))
    out: dict[str, Any] = {
        "prompt": PROMPT,
        "max_new_tokens": o.max_new_tokens,
        "configurations": [],
    }
    for backend in o.backends:
        for precision in o.precisions or ("fp32",):
            try:
                gen = TextGenerator.open(
                    o.bundle, **open_kwargs(TextGenerator.open, backend, precision, o.threads)
                )
            except Exception as e:  # a configuration this machine cannot run is a note, not a crash
                notes.append(f"text {backend} {precision}: skipped ({type(e).__name__}: {e})")
                continue
            out["configurations"].append(_one(gen, o, backend, precision))
    if not out["configurations"]:  # nothing could run: that is an answer, not an empty report
        raise BadInputError(
            "No text configuration could be measured: " + "; ".join(notes[-3:]),
            hint="Check --backend/--precision against the bundle's artifacts.",
        )
    return out


def _one(gen: Any, o: BenchOptions, backend: str, precision: str) -> dict[str, Any]:
    def tokens(seed: int = 0) -> Iterable[Any]:
        return stream_tokens(gen, PROMPT, o.max_new_tokens, seed)

    for _ in range(max(1, o.warmup // max(1, o.max_new_tokens))):
        time_stream(tokens)
    runs: list[list[int]] = []
    deadline = time.perf_counter() + (o.seconds or 0.0)
    want = max(1, (o.iters or 0) // max(1, o.max_new_tokens))
    while len(runs) < want or time.perf_counter() < deadline:
        runs.append(time_stream(lambda s=len(runs): tokens(s)))
    info = describe(getattr(gen, "info", None))
    close = getattr(gen, "close", None)
    if close is not None:
        close()
    return {
        "backend": str(info.get("backend") or backend),
        "precision": precision,
        "info": info,
        **summarize_text(runs),
    }


# ------------------------------------------------------------------ transformer bundles

# The prompt every configuration reads, cut to the number of tokens asked (repeated if short).
PROMPT_TEXT = (
    "Return a new list containing all items from the iterable in ascending order. A custom "
    "key function can be supplied to customize the sort order, and the reverse flag can be "
    "set to request the result in descending order. The sort is stable: it never changes "
    "the relative order of elements that compare equal. "
)
POSITIONS = (50, 600)  # the per-token cost here shows whether the cache grows like a recompute
POSITION_WINDOW = 8  # tokens on each side of a position whose gaps are pooled


def is_transformer(manifest: Any) -> bool:
    return getattr(manifest.model, "arch", None) == "transformer"


def make_prompt(tokenizer_json: Path, n: int) -> Prompt:
    """The longest start of ``PROMPT_TEXT`` (repeated as needed) that the bundle's tokenizer
    encodes to at most ``n`` ids (exactly ``n`` unless a merge jumps past it), with those ids:
    genedge encodes the text itself and gets these very ids; the baselines are given them."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    text = PROMPT_TEXT * (1 + n // max(1, len(tok.encode(PROMPT_TEXT).ids)))
    lo, hi = 1, len(text)  # the longest prefix with at most n ids (lengths grow with the prefix)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if len(tok.encode(text[:mid]).ids) <= n else (lo, mid - 1)
    return Prompt(text[:lo], tuple(tok.encode(text[:lo]).ids))


def text_cases(o: BenchOptions, max_context: int | None) -> list[tuple[int, int]]:
    """(prompt tokens, new tokens) pairs; one past the model's context is refused (exit 2)."""
    cases = [(p, n) for p in o.prompt_tokens for n in (o.new_tokens or (o.max_new_tokens,))]
    too_long = [c for c in cases if max_context and c[0] + c[1] > max_context]
    if too_long:
        p, n = too_long[0]
        raise BadInputError(
            f"bench: {p} prompt + {n} new tokens = {p + n} positions; the model's context is "
            f"{max_context}.",
            hint="Pass smaller --prompt-tokens/--new-tokens.",
        )
    return cases


def text_targets(o: BenchOptions, manifest: Any, notes: list[str], work: Path) -> list[Any]:
    """genedge's configurations, then the baselines on the source folder (when found)."""

    out: list[Any] = [
        GenedgeTextTarget(o.bundle, b, p, o.threads)
        for b in o.backends
        for p in o.precisions or ("fp32",)
    ]
    wanted = [b for b in ("torch", "torch-compile", "genai") if b in o.baselines]
    if not wanted:
        return out
    folder = o.checkpoint or recorded_path(manifest)
    if folder is None or not baseline_folder(folder):
        where = f"'{printable(str(folder))}' is not" if folder else "the manifest records no"
        notes.append(
            f"text baselines skipped: {where} a Hugging Face folder (config.json, *.safetensors, "
            "tokenizer.json); pass it with --checkpoint FOLDER"
        )
        return out
    notes.append(f"text baselines read the source folder {printable(str(folder))}")
    if "torch" in wanted:
        out.append(TransformersTarget(folder, o.threads))
    if "torch-compile" in wanted:
        out.append(TransformersTarget(folder, o.threads, compile=True))
    if "genai" in wanted:
        out += [GenaiTarget(folder, p, o.threads, work) for p in GENAI_PRECISIONS]
    return out


def _open_targets(targets: list[Any], notes: list[str]) -> list[tuple[Any, float]]:
    live = []
    for t in targets:
        try:
            t.preload()
            t0 = time.perf_counter()
            t.open()
        except SkipCase as e:
            notes.append(f"{t.label}: skipped ({e})")
            continue
        live.append((t, (time.perf_counter() - t0) * 1e3))
    return live


def transformer_bench(
    o: BenchOptions,
    manifest: Any,
    notes: list[str],
    announce: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every configuration and baseline on every (prompt, new tokens) case, interleaved."""
    cfg = manifest.model.transformer
    cases = text_cases(o, cfg.max_context)
    prompts = {p: make_prompt(manifest.root / cfg.tokenizer, p) for p, _ in cases}
    short = sorted({f"{p} -> {len(q.ids)}" for p, q in prompts.items() if len(q.ids) != p})
    if short:
        notes.append(f"prompt tokens (asked -> made; a merge jumped past the count): {short}")
    with tempfile.TemporaryDirectory(prefix="genedge-bench-text-") as work:
        targets = text_targets(o, manifest, notes, Path(work))
        if announce is not None:
            announce(
                f"bench: {len(targets)} text configurations x {len(cases)} case(s) x "
                f"{o.rounds} round(s), one generation each (plus loading and one warm-up each)"
            )
        try:
            live = _open_targets(targets, notes)
            if not any(t.kind == "runtime" for t, _ in live):
                raise BadInputError(
                    "No genedge text configuration could be measured: " + "; ".join(notes[-3:]),
                    hint="Check --backend/--precision against the bundle's artifacts.",
                )
            results = [
                r for case in cases for r in _measure_case(live, case, prompts, o.rounds, notes)
            ]
        finally:
            for t in targets:
                t.close()
    return {
        "prompt_text": PROMPT_TEXT,
        "cases": [{"prompt_tokens": p, "new_tokens": n} for p, n in cases],
        "configurations": results,
        "ratios": text_ratios(results),
    }


def _measure_case(
    live: list[tuple[Any, float]],
    case: tuple[int, int],
    prompts: dict[int, Prompt],
    rounds: int,
    notes: list[str] | None = None,
) -> list[dict[str, Any]]:
    p, n = case
    prompt = prompts[p]
    p = len(prompt.ids)
    first_ms = {}
    for t, _ in list(live):  # warm-up (for torch.compile: the compile)
        t0 = time.perf_counter()
        try:
            t.generate(prompt, n)
        except Exception as e:  # a baseline that fails here is a note; genedge's failure is not
            if t.kind == "runtime" or notes is None:
                raise
            notes.append(
                f"{t.label}, prompt {p} + {n} new: skipped ({type(e).__name__}: {e})"[:400]
            )
            live = [x for x in live if x[0] is not t]
            continue
        first_ms[t.label] = (time.perf_counter() - t0) * 1e3
    runs: dict[str, list[tuple[list[int], list[int]]]] = {t.label: [] for t, _ in live}

    def turn(i: int, r: int) -> float:
        t = live[i][0]
        time.sleep(SETTLE_S)
        tokens, times = t.generate(prompt, n)
        runs[t.label].append((tokens, times))
        return times[-1] / NS_PER_S if times else 0.0  # the generation's time

    # one generation per configuration per round, in orders that put every configuration
    # after every other equally often (runtime.measure.round_order): a generation inherits
    # the caches the one before it left, and its first tokens pay for that
    interleave(len(live), turn, rounds=rounds, rotate=True)
    reference = next(runs[t.label][0][0] for t, _ in live if t.kind == "runtime")
    return [
        {
            "label": t.label,
            "kind": t.kind,
            "backend": str(t.info.get("name") or t.backend),
            "precision": t.precision,
            "prompt_tokens": p,
            "new_tokens": n,
            "load_ms": load_ms,
            "first_generation_ms": first_ms[t.label],
            "info": t.info,
            "leading_tokens_equal": leading_equal(runs[t.label][0][0], reference),
            **summarize_generations([times for _, times in runs[t.label]], p),
        }
        for t, load_ms in live
    ]


def leading_equal(a: list[int], b: list[int]) -> int:
    """How many first tokens of ``a`` and ``b`` agree (greedy runs of one model: all)."""
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


def summarize_generations(runs: list[list[int]], prompt_tokens: int) -> dict[str, Any]:
    """TTFT, inter-token percentiles, tokens/s and per-round generation times (ms) of
    several generations given as token arrival offsets (ns since the call)."""
    runs = [r for r in runs if r]
    totals = [r[-1] for r in runs]
    gaps = [g for r in runs for g in intervals(r)]
    n = len(runs[0])
    total_p50 = latency_stats(totals).p50
    decode = latency_stats([r[-1] - r[0] for r in runs]).p50
    return {
        "rounds": len(runs),
        "time_to_first_token": latency_stats([r[0] for r in runs]).to_dict(),
        "inter_token": latency_stats(gaps).to_dict() if gaps else None,
        "generation_ms": [t / NS_PER_MS for t in totals],
        "tokens_per_s": n * NS_PER_S / total_p50 if total_p50 else None,
        "decode_tokens_per_s": (n - 1) * NS_PER_S / decode if n > 1 and decode else None,
        "per_token_at": position_costs(runs, prompt_tokens),
        "token_ms_by_position": gap_curve(runs, prompt_tokens),
    }


def gap_curve(runs: list[list[int]], prompt_tokens: int, points: int = 64) -> dict[str, list]:
    """The median gap (ms) between new tokens in up to ``points`` bins of consecutive tokens,
    pooled over the runs, at each bin's middle position (absolute: ``prompt_tokens + k``):
    the plot's token-cost-against-position curve."""
    n = min(len(r) for r in runs)
    width = max(1, -(-(n - 1) // points))
    bins = [range(k, min(k + width, n)) for k in range(1, n, width)]
    return {
        "position": [prompt_tokens + (b.start + b.stop - 1) // 2 for b in bins],
        "ms": [
            latency_stats([r[k] - r[k - 1] for r in runs for k in b]).p50 / NS_PER_MS for b in bins
        ],
    }


def position_costs(runs: list[list[int]], prompt_tokens: int) -> dict[str, float] | None:
    """Median gap (ms) between tokens around each of ``POSITIONS`` (absolute positions in the
    sequence), and the ratio of the last to the first; None when the runs stop short."""
    out: dict[str, float] = {}
    for q in POSITIONS:
        k = q - prompt_tokens  # the new token that sits at position q
        lo, hi = max(1, k - POSITION_WINDOW), k + POSITION_WINDOW
        gaps = [r[i] - r[i - 1] for r in runs for i in range(lo, min(hi + 1, len(r)))]
        if k < 1 or hi >= len(runs[0]) or not gaps:
            return None
        out[f"{q}_ms"] = latency_stats(gaps).p50 / NS_PER_MS
    first, last = (out[f"{q}_ms"] for q in (POSITIONS[0], POSITIONS[-1]))
    out["ratio"] = last / first if first else float("nan")
    return out


def text_ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case, each baseline's generation time over each genedge configuration's, round by
    round: median and interquartile range (above 1: genedge is faster)."""
    out = []
    for rt in (r for r in results if r["kind"] == "runtime"):
        for other in (r for r in results if r["kind"] == "baseline"):
            if (other["prompt_tokens"], other["new_tokens"]) != (
                rt["prompt_tokens"],
                rt["new_tokens"],
            ):
                continue
            per_round = [
                b / a for a, b in zip(rt["generation_ms"], other["generation_ms"], strict=True) if a
            ]
            if not per_round:
                continue
            out.append(
                {
                    "subject": rt["label"],
                    "reference": other["label"],
                    "prompt_tokens": rt["prompt_tokens"],
                    "new_tokens": rt["new_tokens"],
                    "speedup": percentile(sorted(per_round), 50.0),
                    "iqr": list(iqr(per_round)),
                    "rounds": len(per_round),
                }
            )
    return out

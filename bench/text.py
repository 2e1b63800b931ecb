"""AR bundles: time to first token, per-token latency percentiles and tokens/s via ``TextGenerator``.

Each run streams ``max_new_tokens`` tokens from a fixed prompt and seed; the clock
starts at the call, the first token's arrival gives the time to first token (which
includes the prompt's prefill) and the gaps between later tokens give the per-token
latency. Runs are repeated for the budget; the first ``warmup`` tokens' worth of runs
are discarded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from genedge.errors import BadInputError

from .cases import describe, open_kwargs
from .options import BenchOptions
from .stats import NS_PER_S, intervals, latency_stats

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
    o: BenchOptions, notes: list[str], announce: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """One entry per backend x precision: TTFT, per-token percentiles, tokens/s.
    ``announce`` receives one line saying how long it will take, before it starts."""
    from genedge.runtime import TextGenerator

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

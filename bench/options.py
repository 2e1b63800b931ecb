"""``BenchOptions``: everything one ``genedge bench`` run needs, frozen and validated once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from genedge.errors import BadInputError
from genedge.limits import MAX_BATCH, MAX_NEW_TOKENS, check_count, check_threads
from genedge.precisions import ARTIFACT_PRECISIONS
from genedge.runtime.select import backend_names

MAX_SECONDS = 86400.0  # per case: a day is already a typo
MAX_ROUNDS = 1000  # interleaving rounds; ranges settle within tens
MAX_COLD_RUNS = 100  # fresh-process cold starts per configuration, seconds each
MAX_ITERS = 10_000_000  # timed or warm-up runs per case

BASELINES = ("torch", "torch-compile", "ort", "openvino", "trtexec", "genai")
DEFAULT_SECONDS = 2.0  # per case, when neither --iters nor --seconds is given


@dataclass(frozen=True)
class BenchOptions:
    bundle: Path
    backends: tuple[str, ...] = ("auto",)
    precisions: tuple[str, ...] | None = None  # None: every precision the bundle holds
    batches: tuple[int, ...] = (1, 8, 32)
    iters: int | None = None  # per case; exclusive with seconds
    seconds: float | None = None  # per case
    warmup: int = 20
    threads: int | None = None  # None: every CPU this process may use
    fps: float | None = None  # also run the real-time mode at this fps
    fps_seconds: float = 5.0
    baselines: tuple[str, ...] = ("torch", "torch-compile", "ort", "genai")
    checkpoint: Path | None = None
    module: str | None = None  # FILE.py:NAME of a bundle exported from a user's module
    weights: Path | None = None
    module_args: str | None = None  # JSON
    json_out: Path | None = None
    markdown: Path | None = None
    plot: Path | None = None
    rounds: int = 10
    cold_runs: int = 1  # fresh-process cold starts per configuration (0: skip)
    seed: int = 0
    max_new_tokens: int = 64  # ar bundles: tokens per generation
    prompt_tokens: tuple[int, ...] = (16,)  # transformer bundles: prompt lengths to time
    new_tokens: tuple[int, ...] | None = None  # ... and generation lengths (None: max_new_tokens)
    check_targets: bool = False  # also grade genedge's own regression targets (ratios.TARGETS)
    argv: tuple[str, ...] = ()


def _bad(field: str, got: object, expected: str, hint: str | None = None) -> BadInputError:
    return BadInputError(f"bench option {field}: received {got!r}; expected {expected}.", hint=hint)


def validate_options(o: BenchOptions) -> None:
    """Raise ``BadInputError`` (exit 2) naming the offending option."""
    unknown = [b for b in o.backends if b not in backend_names()]
    if not o.backends or unknown:
        raise _bad(
            "--backend",
            ",".join(o.backends),
            f"a comma-separated subset of {', '.join(backend_names())}",
        )
    if o.precisions is not None and (
        not o.precisions or any(p not in ARTIFACT_PRECISIONS for p in o.precisions)
    ):
        raise _bad(
            "--precision",
            ",".join(o.precisions),
            f"a comma-separated subset of {', '.join(ARTIFACT_PRECISIONS)}",
        )
    if not o.batches or any(not 1 <= b <= MAX_BATCH for b in o.batches):
        raise _bad("--batch", o.batches, f"batch sizes in [1, {MAX_BATCH}], e.g. 1,8,32")
    if o.iters is not None and o.seconds is not None:
        raise _bad("--iters/--seconds", (o.iters, o.seconds), "one of the two, not both")
    if o.iters is not None and o.iters < 1:
        raise _bad("--iters", o.iters, "an integer >= 1")
    if o.seconds is not None and not (math.isfinite(o.seconds) and 0 < o.seconds <= MAX_SECONDS):
        raise _bad("--seconds", o.seconds, f"a finite duration in (0, {MAX_SECONDS:g}] seconds")
    if o.warmup < 0:
        raise _bad("--warmup", o.warmup, "an integer >= 0")
    check_threads("--threads", o.threads)
    check_count("--max-new-tokens", o.max_new_tokens, MAX_NEW_TOKENS, "characters per generation")
    if not o.prompt_tokens or (o.new_tokens is not None and not o.new_tokens):
        raise _bad(
            "--prompt-tokens/--new-tokens", (o.prompt_tokens, o.new_tokens), "non-empty lists"
        )
    for n in o.prompt_tokens:
        check_count("--prompt-tokens", n, MAX_NEW_TOKENS, "tokens per prompt")
    for n in o.new_tokens or ():
        check_count("--new-tokens", n, MAX_NEW_TOKENS, "tokens per generation")
    if o.fps is not None and not (math.isfinite(o.fps) and o.fps > 0):
        raise _bad("--fps", o.fps, "a finite number of frames per second > 0")
    if any(b not in BASELINES for b in o.baselines):
        raise _bad(
            "--baselines",
            ",".join(o.baselines),
            f"a comma-separated subset of {', '.join(BASELINES)}",
        )
    check_count("--rounds", o.rounds, MAX_ROUNDS, "each round times every case once more")
    check_count("--cold-runs", o.cold_runs, MAX_COLD_RUNS, "each starts a fresh process", low=0)
    if o.iters is not None:
        check_count("--iters", o.iters, MAX_ITERS, "timed runs per case")
    check_count("--warmup", o.warmup, MAX_ITERS, "untimed runs per case", low=0)

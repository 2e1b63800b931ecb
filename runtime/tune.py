"""The tuned choice behind ``backend="auto"``: measure, on the machine that samples, every
quality-approved (backend, precision) pair available for a bundle's graph, per batch size,
and keep the fastest.

    genedge tune gan-bundle --batch 1,16 --threads 2       # or tune_bundle(...) from Python

Candidates come from ``available_backends()`` (the backends of ``runtime.registry`` whose
libraries and device are here, in ``auto``'s order) and the precisions the bundle approved
for each that the backend runs: fp32 always, the others when their export gate passed and
this machine computes them (bf16 where the CPU has it; fp16 is no CPU speed path). Every
candidate runs through the runtime's own backends, interleaved round by round so that they
share the machine's state (``runtime.measure``), and is timed per run with
``perf_counter_ns``. The choice per batch is the
lowest median, over rounds, of each candidate's time relative to the round's fastest: a
load spike slows every candidate of its round alike and cancels out, where pooled p50s let
it decide between two close candidates.

The result lives outside the bundle (a bundle holds only listed, hashed files), in the
tuning cache (``runtime.tune_cache``: one JSON file per bundle, graph, CPU, thread count and
library versions), so a stale measurement is never used. ``backend="auto"`` reads it for
the batch asked (``BackendOptions.batch``; the nearest measured batch on a log scale) and
says which and why on the ``genedge.runtime`` logger; without a tuning, unless ``tune=True`` (or
``GENEDGE_TUNE=1``) asks for a short probe, export's CPU speed record is the hint it starts
from (``fastest``), and without either ``runtime.select``'s fixed rule decides.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genedge.errors import (
    BadInputError,
    GenedgeError,
    IncompatibleEnvironmentError,
    printable,
)
from genedge.limits import check_threads
from genedge.manifest import MAIN_GRAPH, Manifest
from genedge.precisions import INFERENCE_PRECISIONS, REFERENCE
from genedge.precisions import precision as precision_row

from . import registry
from .artifacts import onnx_artifacts
from .backend import Backend
from .measure import (
    feed_for,
    int_ranges,
    interleave,
    median,
    relative_to_fastest,
    round_medians,
    time_runs,
)
from .opening import open_named, read_bundle
from .options import BackendOptions
from .speed_record import fastest_cpu
from .tune_cache import (
    FORMAT,
    MAX_TUNE_BATCH,
    VERSION,
    cache_dir,
    ever_tuned,
    read_tuning,
    tune_identity,
    tune_key,
    tune_path,
    write_tuning,
)

log = logging.getLogger("genedge.runtime")

DEFAULT_BATCHES = (1, 16)
DEFAULT_SECONDS = 6.0  # measuring time of `genedge tune`, all batches together
PROBE_SECONDS = 1.0  # the opt-in probe on first open: one batch size (MIN_ROUNDS rounds at least)
MIN_ROUNDS = 3
# One candidate's turn in a round: this long, at least BLOCK_RUNS runs, the first not kept.
# Runs just after a switch pay for the other backend's threads and the caches it filled, and
# a user samples from one backend, so that cost is not theirs: with 50 ms turns OpenVINO fp32
# read 19 ms at batch 16 on the 28x28 DCGAN, with 250 ms turns 10.8 ms, as the bench reads it.
BLOCK_S = 0.2
BLOCK_RUNS = 3


@dataclass(frozen=True)
class Candidate:
    """One (backend, precision) pair ``auto`` may choose."""

    backend: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}"


@dataclass(frozen=True)
class Choice:
    """What the tuning chose for one batch size, and why (for the log)."""

    candidate: Candidate
    batch: int  # the measured batch the choice was made for
    why: str
    source: str = "tuned choice"  # or "export record's choice": what measured it


# ------------------------------------------------------------------ candidates
def available_backends() -> list[str]:
    """Backends whose libraries (and device) are here, in ``auto``'s order (GPU first)."""
    return [spec.name for spec in registry.available()]


def candidates(
    manifest: Manifest, graph: str, backends: Sequence[str] | None = None
) -> tuple[list[Candidate], dict[str, str]]:
    """The quality-approved (backend, precision) pairs for ``graph``, and why others are out."""
    backends = available_backends() if backends is None else list(backends)
    onnx = onnx_artifacts(manifest, graph)
    out: list[Candidate] = []
    skipped: dict[str, str] = {}
    for spec in map(registry.spec, backends):
        if spec.artifact == "engine":
            precs = {
                a.precision or REFERENCE: a for a in manifest.find(graph=graph, format="engine")
            }
        else:
            precs = {p: a for p, a in onnx.items() if p in spec.precisions}
        for p, a in sorted(precs.items()):
            c = Candidate(spec.name, p)
            ok, why = spec.supports(p)
            if p != REFERENCE and not (a.quality_approved and a.verification.passed):
                skipped[c.label] = "not quality-approved at export"
            elif not ok:
                skipped[c.label] = why
            elif spec.device == "cpu" and not precision_row(p).cpu_compute:
                skipped[c.label] = f"{p} is not a CPU speed path (no {p} compute on this backend)"
            else:
                out.append(c)
    return out, skipped


# ------------------------------------------------------------------ measuring
def _time_block(run: Callable[[], object]) -> list[float]:
    """One candidate's turn: a run not kept (it pays for the switch), then runs for
    ``BLOCK_S``, at least ``BLOCK_RUNS - 1`` of them timed."""
    run()
    return time_runs(run, seconds=BLOCK_S, runs=BLOCK_RUNS - 1)


def measure(
    opened: dict[Candidate, Backend],
    batch: int,
    seconds: float,
    int_ranges: dict[str, tuple[int, int]],
    progress: Callable[[str], None] | None = None,
) -> dict[Candidate, list[list[float]]]:
    """Per-run times (ms) of every opened candidate at ``batch``, one list per round
    (candidates interleaved round by round)."""
    order = list(opened)
    calls = []
    for c in order:  # warm-up: compiles a static shape, fills caches
        b, feed = opened[c], feed_for(opened[c].inputs, batch, int_ranges)
        calls.append(functools.partial(b.run_unchecked, feed))
        for _ in range(3):
            calls[-1]()
    t_end = time.perf_counter() + seconds

    def said(rounds: int) -> None:
        if progress is not None:
            done = min(1.0, 1 - (t_end - time.perf_counter()) / max(seconds, 1e-9))
            progress(f"batch {batch}: {'#' * int(20 * done):20s} {rounds} rounds")

    times = interleave(
        len(order),
        lambda i, r: _time_block(calls[i]),
        seconds=seconds,
        min_rounds=MIN_ROUNDS,
        after_round=said,
    )
    return dict(zip(order, times, strict=True))


def _choice_record(times: dict[Candidate, list[list[float]]]) -> dict[str, Any]:
    p50 = {c.label: median(t) for c, t in times.items()}
    relative = relative_to_fastest({c.label: round_medians(t) for c, t in times.items()})
    best = min(times, key=lambda c: (relative[c.label], p50[c.label]))
    return {
        "choice": {"backend": best.backend, "precision": best.precision},
        "p50_ms": p50,
        "relative": relative,
        "runs": {c.label: sum(len(block) for block in t) for c, t in times.items()},
        "rounds": len(next(iter(times.values()))),
    }


def tune_manifest(
    manifest: Manifest,
    *,
    batches: Sequence[int] = DEFAULT_BATCHES,
    threads: int | None = None,
    seconds: float = DEFAULT_SECONDS,
    backends: Sequence[str] | None = None,
    graph: str | None = None,
    progress: Callable[[str], None] | None = None,
    write: bool = True,
) -> tuple[dict[str, Any], Path | None]:
    """Measure the candidates of ``graph`` (default: the bundle's main graph) at each batch,
    merge the result into the cache file for this machine and return (record, path); path
    is None when the cache could not be written (a warning says why)."""
    graph = graph or MAIN_GRAPH[manifest.kind]
    threads = check_threads("threads", threads)
    identity = tune_identity(manifest, graph, threads)
    path = cache_dir() / f"{tune_key(identity)}.json"
    cands, skipped = candidates(manifest, graph, backends)
    opts = BackendOptions(threads=threads, check_inputs=False)
    ranges = int_ranges(manifest)
    opened: dict[Candidate, Backend] = {}
    try:
        for c in cands:
            try:
                opened[c] = open_named(manifest, graph, c.backend, c.precision, opts, ranges)
            except GenedgeError as e:  # not on this machine after all: say why, go on
                skipped[c.label] = e.message
        if not opened:
            raise BadInputError(
                f"No backend could open '{manifest.root}' here: "
                + "; ".join(f"{k}: {v}" for k, v in skipped.items()),
                hint="Install a runtime extra: pip install 'genedge[cpu]' (or [openvino]).",
            )
        found: dict[str, Any] = {}
        for b in batches:
            times = measure(opened, b, seconds / len(batches), ranges, progress)
            found[str(b)] = _choice_record(times)
    finally:
        for b in opened.values():
            b.close()
    record = {
        "format": FORMAT,
        "version": VERSION,
        "bundle": str(manifest.root),
        **identity,
        "seconds": seconds,
        "measured_unix": int(time.time()),
        "batches": found,
        "skipped": skipped,
    }
    if write:
        written = write_tuning(path, record)
        return (record, None) if written is None else (written, path)
    return record, path


# ------------------------------------------------------------------ choosing
def nearest_batch(measured: Sequence[int], batch: int) -> int:
    """The measured batch closest to ``batch`` on a log scale (ties: the larger)."""
    return min(measured, key=lambda m: (abs(math.log(m) - math.log(batch)), -m))


def choose(record: dict[str, Any], batch: int, precision: str | None = None) -> Choice | None:
    """The fastest measured candidate for ``batch`` (of ``precision`` when given), with why."""
    measured = {}
    for b, rec in record.get("batches", {}).items():
        if str(b).isdigit() and int(b) >= 1 and isinstance(rec, dict):
            measured[int(b)] = rec
    if not measured:
        return None
    at = nearest_batch(sorted(measured), batch)
    p50 = measured[at].get("p50_ms", {})
    relative = measured[at].get("relative", {})  # absent in tunings written before it existed
    pairs = []
    for label, ms in p50.items():
        parts = str(label).split()
        if len(parts) == 2 and isinstance(ms, int | float) and ms > 0:
            rel = relative.get(label) if isinstance(relative, dict) else None
            rank = float(rel) if isinstance(rel, int | float) and rel > 0 else float(ms)
            pairs.append((rank, float(ms), Candidate(*parts)))
    if precision is not None:
        pairs = [p for p in pairs if p[2].precision == precision]
    if not pairs:
        return None
    pairs.sort(key=lambda p: (p[0], p[1]))
    _, best_ms, best = pairs[0]
    others = ", ".join(f"{c.label} {ms:.3g} ms" for _, ms, c in pairs[1:4])
    why = (
        f"fastest at batch {at} in this machine's tuning ({best_ms:.3g} ms p50"
        f"{'; ' + others if others else ''})"
        + ("" if at == batch else f"; batch {batch} asked, {at} the nearest measured")
    )
    return Choice(best, at, why)


def fastest(
    manifest: Manifest,
    graph: str,
    precision: str | None,
    opts: BackendOptions,
    *,
    gpu: bool = False,
) -> Choice | None:
    """``auto``'s measured choice for ``graph`` at ``opts.batch`` (1 when unset), or None for
    the fixed rule to decide.

    This machine's tuning decides when there is one (without one, ``opts.tune`` or
    ``GENEDGE_TUNE=1`` asks for a short probe now, cached for the next open). Else export's
    CPU speed record is the hint, where no GPU backend applies (``gpu``) and the precision
    is not a hint precision: the fastest quality-approved CPU (backend, precision) in it.
    """
    tuned = _tuned(manifest, graph, precision, opts)
    if tuned is not None or gpu or precision in INFERENCE_PRECISIONS:
        return tuned
    found = onnx_artifacts(manifest, graph)
    if precision is not None:  # the fastest backend for the precision asked
        found = {p: a for p, a in found.items() if p in (precision, REFERENCE)}
        if precision not in found:
            return None
    cpu = tuple(s.name for s in registry.available() if s.device == "cpu")
    pick = fastest_cpu(found, opts.batch or 1, cpu)
    if pick is None or (precision is not None and pick[1].precision != precision):
        return None
    backend, artifact, why = pick
    c = Candidate(backend, artifact.precision or REFERENCE)
    return Choice(c, opts.batch or 1, why, "export record's choice")


def _tuned(
    manifest: Manifest, graph: str, precision: str | None, opts: BackendOptions
) -> Choice | None:
    """This machine's tuning's choice, or None (no tuning and no probe asked)."""
    batch = opts.batch or 1
    if not _probe_asked(opts) and not ever_tuned(manifest):
        log.debug("backend auto: no tuning for %s on this machine", manifest.root)
        return None  # the common case: no tuning, decided without reading package versions
    try:
        path = tune_path(manifest, graph, opts.threads)
    except OSError as e:  # the manifest vanished meanwhile: the open that follows says so
        log.debug("no tuning lookup: %s", e)
        return None
    record = read_tuning(path)
    if (record is None or str(batch) not in record["batches"]) and _probe_asked(opts):
        log.info("tuning %s at batch %d (a probe of a few seconds)...", manifest.root, batch)
        record, path = tune_manifest(
            manifest, batches=(batch,), threads=opts.threads, seconds=PROBE_SECONDS, graph=graph
        )
    if record is None:
        return None
    choice = choose(record, batch, precision)
    if choice is not None:
        where = f"; {printable(path, None)}" if path is not None else "; not cached"
        choice = Choice(choice.candidate, choice.batch, f"{choice.why}{where}")
    return choice


def _probe_asked(opts: BackendOptions) -> bool:
    return opts.tune or os.environ.get("GENEDGE_TUNE", "") not in ("", "0")


# ------------------------------------------------------------------ the command
def _progress_line(text: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r  {text}")
        sys.stderr.flush()


def tune_command(args: argparse.Namespace) -> int:
    """``genedge tune BUNDLE [--batch 1,16] [--threads N] [--seconds S] [--backends ...]``."""
    batches = tuple(args.batch or DEFAULT_BATCHES)
    for b in batches:
        if type(b) is not int or not 1 <= b <= MAX_TUNE_BATCH:
            raise BadInputError(
                f"--batch {b!r}: expected batch sizes in [1, {MAX_TUNE_BATCH}], e.g. --batch 1,16."
            )
    if args.seconds is None:
        args.seconds = DEFAULT_SECONDS
    if not (math.isfinite(args.seconds) and 0.1 <= args.seconds <= 600):
        raise BadInputError(
            f"--seconds {args.seconds}: expected a measuring time in [0.1, 600] seconds."
        )
    backends = args.backends
    if backends is not None:
        known = available_backends()
        unknown = [b for b in backends if b not in registry.names()]
        if unknown:
            raise BadInputError(
                f"--backends {printable(','.join(unknown))}: not a backend; expected some of "
                f"{', '.join(registry.names())}."
            )
        missing = [b for b in backends if b not in known]
        if missing:
            raise IncompatibleEnvironmentError(
                f"--backends {','.join(missing)}: not installed here; available: "
                f"{', '.join(known)}.",
                hint="Install its extra (e.g. pip install 'genedge[openvino]') or leave it out.",
            )
    manifest = read_bundle(args.bundle)
    print(
        f"tuning {args.bundle}: batch {','.join(map(str, batches))}, threads "
        f"{args.threads or 'default'}, {args.seconds:g} s",
        file=sys.stderr,
    )
    record, path = tune_manifest(
        manifest,
        batches=batches,
        threads=args.threads,
        seconds=args.seconds,
        backends=backends,
        progress=_progress_line,
    )
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    print(format_tuning(record, batches))
    if path is not None:
        print(f"cached in {printable(path, None)}; backend auto now uses it", file=sys.stderr)
    return 0


def format_tuning(record: dict[str, Any], batches: Sequence[int]) -> str:
    """The measured table: one line per batch, candidates fastest first, the choice marked.

    The factor beside each p50 is its median per-round time relative to the fastest.
    """
    lines = []
    for b in batches:
        rec = record["batches"][str(b)]
        p50, rel = rec["p50_ms"], rec.get("relative") or {}
        best = min(p50.values())
        ranked = sorted(p50, key=lambda label: (rel.get(label, p50[label] / best), p50[label]))
        cells = ", ".join(
            f"{label} {p50[label]:.3f} ms ({rel.get(label, p50[label] / best):.2f}x)"
            for label in ranked
        )
        lines.append(f"batch {b}: -> {ranked[0]}   [{cells}]")
    for label, why in record.get("skipped", {}).items():
        lines.append(f"skipped {label}: {printable(why, 160)}")
    return "\n".join(lines)

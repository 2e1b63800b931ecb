"""The tuned choice behind ``backend="auto"``: measure, on the machine that samples, every
quality-approved (backend, precision) pair available for a bundle's graph, per batch size,
and keep the fastest.

    genedge tune gan-bundle --batch 1,16 --threads 2       # or tune_bundle(...) from Python

Candidates come from ``available_backends()`` (the CPU backends here; the GPU backends,
``tensorrt``, ``ort-trt`` and ``ort-cuda``, where their libraries and a GPU are present) and
the precisions the bundle approved for each: fp32 always, fp16 and int8 when their export
gate passed, bf16 on ``openvino`` when gated and the CPU has it. Every candidate runs
through the runtime's own backends, interleaved round by round so that they share the
machine's state, and is timed per run with ``perf_counter_ns``. The choice per batch is the
lowest median, over rounds, of each candidate's time relative to the round's fastest: a
load spike slows every candidate of its round alike and cancels out, where pooled p50s let
it decide between two close candidates.

The result lives outside the bundle (a bundle holds only listed, hashed files), in
``$GENEDGE_CACHE/tune`` (else ``$XDG_CACHE_HOME/genedge/tune``, else
``~/.cache/genedge/tune``), one JSON file per key: the sha256 of the bundle's manifest (so
of every artifact), the graph, the CPU model, the thread count and the versions of genedge,
onnxruntime, openvino and tensorrt. Anything that changes one of them is a new key, so a
stale measurement is never used. ``backend="auto"`` reads it for the batch asked
(``BackendOptions.batch``; the nearest measured batch on a log scale) and says which and
why on the ``genedge.runtime`` logger; without a tuning it falls back to the fixed rule of
``runtime.select``, unless ``tune=True`` (or ``GENEDGE_TUNE=1``) asks for a short probe.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genedge.atomic import atomic_write_text
from genedge.errors import (
    BadInputError,
    GenedgeError,
    IncompatibleEnvironmentError,
    printable,
)
from genedge.limits import check_threads
from genedge.manifest import MAIN_GRAPH, MANIFEST_NAME, Artifact, Manifest
from genedge.outputs import folder_lock
from genedge.precisions import INFERENCE_PRECISIONS, REFERENCE
from genedge.precisions import precision as precision_row
from genedge.readback import (
    MANIFEST_BYTES,
    TUNE_CACHE_BYTES,
    ReadbackError,
    check,
    field,
    read_bytes,
    read_cache_json,
)

from . import registry
from .artifacts import onnx_artifacts, qualifies
from .backend import Backend
from .options import BackendOptions
from .select import open_backend, read_bundle

log = logging.getLogger("genedge.runtime")

FORMAT = "genedge.tune"
VERSION = 1
DEFAULT_BATCHES = (1, 16)
DEFAULT_SECONDS = 6.0  # measuring time of `genedge tune`, all batches together
PROBE_SECONDS = 1.0  # the opt-in probe on first open: one batch size (MIN_ROUNDS rounds at least)
MAX_TUNE_BATCH = 4096
MIN_ROUNDS = 3
LOCK_WAIT_S = 10.0  # another tune's cache write holds the lock for milliseconds
# One candidate's turn in a round: this long, at least BLOCK_RUNS runs, the first not kept.
# Runs just after a switch pay for the other backend's threads and the caches it filled, and
# a user samples from one backend, so that cost is not theirs: with 50 ms turns OpenVINO fp32
# read 19 ms at batch 16 on the 28x28 DCGAN, with 250 ms turns 10.8 ms, as the bench reads it.
BLOCK_S = 0.2
BLOCK_RUNS = 3
_VERSIONED = ("genedge", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt")
MIN_SPEEDUP = 1.05  # a reduced precision must beat fp32 by this factor: not by timing noise


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
            precs = {a.precision or "fp32": a for a in manifest.find(graph=graph, format="engine")}
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


# ------------------------------------------------------------------ the cache
def cache_dir() -> Path:
    """Where tunings are kept (the folder may not exist yet)."""
    if os.environ.get("GENEDGE_CACHE"):
        return Path(os.environ["GENEDGE_CACHE"]) / "tune"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "genedge" / "tune"
    return Path.home() / ".cache" / "genedge" / "tune"


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Installed versions of the packages whose speed a tuning measured (no imports; read once
    per process: importlib.metadata's first lookup costs tens of milliseconds)."""
    from importlib import metadata

    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def manifest_sha256(manifest: Manifest) -> str:
    path = Path(manifest.root) / MANIFEST_NAME
    return hashlib.sha256(read_bytes(path, what="Manifest", limit=MANIFEST_BYTES)).hexdigest()


def tune_identity(manifest: Manifest, graph: str, threads: int | None) -> dict[str, Any]:
    """Everything a measurement depends on; its hash is the cache key."""
    from .machine import cpu_model

    return {
        "manifest_sha256": manifest_sha256(manifest),
        "graph": graph,
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "threads": threads,
        "versions": library_versions(),
    }


def tune_key(identity: dict[str, Any]) -> str:
    """The cache file's name: the bundle's manifest hash first (so that ``auto`` finds out
    cheaply that a bundle was never tuned), then the hash of the whole identity."""
    whole = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{identity['manifest_sha256'][:16]}-{whole[:32]}"


def tune_path(manifest: Manifest, graph: str, threads: int | None) -> Path:
    return cache_dir() / f"{tune_key(tune_identity(manifest, graph, threads))}.json"


def _ever_tuned(manifest: Manifest) -> bool:
    """Whether any tuning of this bundle is cached here (any machine state, any threads)."""
    try:
        return any(cache_dir().glob(f"{manifest_sha256(manifest)[:16]}-*.json"))
    except OSError:
        return False


def read_tuning(path: Path) -> dict[str, Any] | None:
    """A cached tuning, or None: silently when absent, with one warning when the file is not
    a regular file, too large, not JSON or not a tuning (``_checked_tuning``)."""
    return read_cache_json(
        path, what="Tuning cache", limit=TUNE_CACHE_BYTES, schema=_checked_tuning
    )


_LABEL = re.compile(r"([a-z0-9-]{1,16}) ([a-z0-9]{1,16})")
_MAX_MS = 1e9  # a p50 past 11 days is no measurement


def _checked_tuning(data: Any) -> dict[str, Any]:
    """``data`` if it is a tuning as ``tune_manifest`` writes it, else ``ReadbackError``:
    batch keys are sizes in [1, MAX_TUNE_BATCH], labels name a backend and a precision,
    times are positive numbers."""
    where = "Tuning cache"
    check(data, dict, where=where)
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ReadbackError(f"{where}: not a {FORMAT} version {VERSION} file.")
    for b, rec in field(data, "batches", dict, where=where, max_len=MAX_TUNE_BATCH).items():
        at = f"{where}: batch {printable(b, 20)}"
        if not (b.isascii() and b.isdigit() and 1 <= int(b[:5]) <= MAX_TUNE_BATCH):
            raise ReadbackError(f"{at}: expected a batch size in [1, {MAX_TUNE_BATCH}].")
        check(rec, dict, where=at)
        for key in ("p50_ms", "relative"):
            for label, value in field(rec, key, dict, where=at, default={}, max_len=64).items():
                m = _LABEL.fullmatch(label)
                if m is None or m.group(1) not in registry.names():
                    raise ReadbackError(
                        f"{at}: {printable(label, 40)} is no backend and precision."
                    )
                check(value, (int, float), where=f"{at}: {label}", low=0, high=_MAX_MS)
    for label, why in field(data, "skipped", dict, where=where, default={}, max_len=64).items():
        check(why, str, where=f"{where}: skipped {printable(label, 40)}", max_len=1024)
    return data


def write_tuning(path: Path, data: dict[str, Any]) -> dict[str, Any] | None:
    """Merge ``data``'s batches into the cache file ``path`` and write it atomically, under
    the cache folder's lock, so that two ``tune`` runs keep both results (for one batch, the
    later measurement wins). Returns what was written, or None (with a warning) where the
    cache is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with folder_lock(path.parent, who="tune", wait_s=LOCK_WAIT_S):
            old = read_tuning(path)
            if old is not None:
                data = {**data, "batches": {**old["batches"], **data["batches"]}}
            atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except (OSError, GenedgeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        log.warning("tuning not cached (%s); set GENEDGE_CACHE to a writable folder", why)
        return None
    return data


# ------------------------------------------------------------------ measuring
def _feed(b: Backend, batch: int, int_ranges: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """Inputs of ``batch`` for ``b``: normal floats, integers cycling through their range."""
    rng = np.random.default_rng(0)
    feed = {}
    for s in b.inputs:
        shape = tuple(d if isinstance(d, int) else batch for d in s.shape)
        if s.np_dtype.kind == "f":
            feed[s.name] = rng.standard_normal(shape).astype(s.np_dtype)
        else:
            lo, hi = int_ranges.get(s.name, (0, 0))
            feed[s.name] = (lo + np.arange(np.prod(shape)) % (hi - lo + 1)).reshape(shape)
            feed[s.name] = feed[s.name].astype(s.np_dtype)
    return feed


def _int_ranges(manifest: Manifest) -> dict[str, tuple[int, int]]:
    k = manifest.model.num_classes if manifest.kind != "ar" else 0
    ranges = {"label": (0, max(k - 1, 0))}
    if manifest.kind == "ar":
        ranges["token"] = (0, max(manifest.model.vocab_size - 1, 0))
    return ranges


def _time_block(b: Backend, feed: dict[str, np.ndarray], times: list[float]) -> None:
    run = b.run_unchecked
    run(feed)  # after a switch: not kept
    t_end = time.perf_counter() + BLOCK_S
    while True:
        t0 = time.perf_counter_ns()
        run(feed)
        t1 = time.perf_counter_ns()
        times.append((t1 - t0) / 1e6)
        if len(times) >= BLOCK_RUNS - 1 and time.perf_counter() >= t_end:
            return


def measure(
    opened: dict[Candidate, Backend],
    batch: int,
    seconds: float,
    int_ranges: dict[str, tuple[int, int]],
    progress: Callable[[str], None] | None = None,
) -> dict[Candidate, list[list[float]]]:
    """Per-run times (ms) of every opened candidate at ``batch``, one list per round
    (candidates interleaved round by round)."""
    feeds = {c: _feed(b, batch, int_ranges) for c, b in opened.items()}
    for c, b in opened.items():  # warm-up: compiles a static shape, fills caches
        for _ in range(3):
            b.run_unchecked(feeds[c])
    times: dict[Candidate, list[list[float]]] = {c: [] for c in opened}
    order = list(opened)
    t_end = time.perf_counter() + seconds
    rounds = 0
    while rounds < MIN_ROUNDS or time.perf_counter() < t_end:
        for c in order:
            times[c].append([])
            _time_block(opened[c], feeds[c], times[c][-1])
        order.append(order.pop(0))  # rotate: nobody always runs right after the same one
        rounds += 1
        if progress is not None:
            done = min(1.0, 1 - (t_end - time.perf_counter()) / max(seconds, 1e-9))
            progress(f"batch {batch}: {'#' * int(20 * done):20s} {rounds} rounds")
    return times


def relative_to_fastest(rounds: dict[str, list[float]]) -> dict[str, float]:
    """Per label: the median over rounds of its round p50 over the round's fastest p50.

    ``rounds[label][i]`` is the label's p50 in round i; every label has the same rounds.
    """
    per_round = np.array(list(rounds.values()), dtype=float)  # (labels, rounds)
    ratios = per_round / per_round.min(axis=0, keepdims=True)
    return {label: float(np.median(r)) for label, r in zip(rounds, ratios, strict=True)}


def _choice_record(times: dict[Candidate, list[list[float]]]) -> dict[str, Any]:
    p50 = {c.label: float(np.median(np.concatenate(t))) for c, t in times.items()}
    relative = relative_to_fastest(
        {c.label: [float(np.median(block)) for block in t] for c, t in times.items()}
    )
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
    ranges = _int_ranges(manifest)
    opened: dict[Candidate, Backend] = {}
    try:
        for c in cands:
            try:
                opened[c] = open_backend(manifest, graph, c.backend, c.precision, opts, ranges)
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
    if not _probe_asked(opts) and not _ever_tuned(manifest):
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


# ------------------------------------------------------------------ export's speed record
def fastest_in_record(found: dict[str, Artifact]) -> tuple[Artifact, str] | None:
    """From ``{precision: Artifact}``: the quality-approved artifact with the lowest batch-1 p50
    in the bundle's CPU ``speed`` records, never one measured slower than fp32 at any batch;
    with the reason, for the log. None when fp32 has no speed record (older bundles)."""
    fp32 = found.get(REFERENCE)
    ref = _speed_p50s(fp32) if fp32 else {}
    if not ref:
        return None
    if fp32.speed.busy:  # its numbers decide nothing: the reference, never slower than itself
        return fp32, (
            "export's speed record was taken on a busy machine, so it is not used; fp32 until "
            "`genedge tune BUNDLE` measures this machine"
        )
    best, best_ms = fp32, ref.get("1", min(ref.values()))
    for prec, a in found.items():
        mine = _speed_p50s(a)
        if prec == REFERENCE or not (a.quality_approved and qualifies(a)) or set(mine) != set(ref):
            continue
        if any(mine[b] > ref[b] for b in ref):
            continue
        ms = mine.get("1", min(mine.values()))
        if ms * MIN_SPEEDUP <= ref.get("1", min(ref.values())) and ms < best_ms:
            best, best_ms = a, ms
    b = "1" if "1" in ref else min(ref)
    others = ", ".join(
        f"{prec} {_speed_p50s(a).get(b, float('nan')):.3g} ms"
        for prec, a in found.items()
        if prec != REFERENCE
    )
    if best is fp32:
        why = (
            f"no quality-approved artifact measured at export at least {MIN_SPEEDUP:.2f}x faster "
            f"than fp32 and no slower at any batch (batch {b}: fp32 {ref[b]:.3g} ms"
            f"{', ' + others if others else ''})"
        )
    else:
        why = (
            f"the fastest quality-approved artifact in the bundle's export-time CPU measurement "
            f"(batch {b}: {best_ms:.3g} ms vs fp32 {ref[b]:.3g} ms)"
        )
    return best, why


def fastest_cpu(
    found: dict[str, Artifact], batch: int, backends: Sequence[str]
) -> tuple[str, Artifact, str] | None:
    """From export's speed records (``found``: ``{precision: Artifact}``): the quality-approved
    (backend, artifact) of ``backends`` with the lowest p50 at the measured batch nearest
    ``batch``, and why, for the log. None without a usable record (none, or taken on a busy
    machine), or when nothing beats the reference backend's fp32 by ``MIN_SPEEDUP`` there
    (the fixed rule then decides, as it would without a record)."""
    fp32 = found.get(REFERENCE)
    if fp32 is None or fp32.speed is None or not fp32.speed.batch:
        return None
    if fp32.speed.busy:
        log.info("backend auto: export's speed record was taken on a busy machine; not used")
        return None
    b = min(fp32.speed.batch, key=lambda m: (abs(math.log(m / max(batch, 1))), m))
    ref = fp32.speed.batch[b].p50_ms
    timed_on = registry.reference().name  # the record's ``batch``; the others' in ``others``
    options = []
    for prec, a in found.items():
        if a.speed is None or a.speed.busy or prec in INFERENCE_PRECISIONS:
            continue
        if prec != REFERENCE and not (a.quality_approved and qualifies(a)):
            continue
        times = {timed_on: a.speed.p50s().get(b)}
        times.update({k: v.get(b) for k, v in a.speed.others.items()})
        options += [(ms, k, prec) for k, ms in times.items() if ms is not None and k in backends]
    if not options:
        return None
    ms, backend, prec = min(options)
    if (backend, prec) == (timed_on, REFERENCE) or ms * MIN_SPEEDUP > ref:
        return None
    shown = ", ".join(f"{k} {p} {t:.3g} ms" for t, k, p in sorted(options)[:4])
    why = (
        f"the fastest quality-approved (backend, precision) in export's CPU speed record at "
        f"batch {b} ({shown}); `genedge tune` measures it on this machine"
    )
    return backend, found[prec], why


def auto_precision_note(manifest: Manifest, graph: str) -> str | None:
    """Why ``precision=None`` on the reference CPU backend picks what it picks, when the
    bundle's speed record decided it (None otherwise): for the CLI to say so."""
    found = {a.precision or REFERENCE: a for a in manifest.find(graph=graph, format="onnx")}
    measured = fastest_in_record(found)
    return None if measured is None else f"{measured[0].precision}, {measured[1]}"


def _speed_p50s(a: Artifact) -> dict[str, float]:
    """``{batch: p50_ms}`` of an artifact's speed record ({} without one), batch as text."""
    return {} if a.speed is None else {str(b): ms for b, ms in a.speed.p50s().items()}


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

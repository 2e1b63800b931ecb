"""The Python half of the C ABI (``runtime/c/genedge.h``, docs/embedding.md).

``libgenedge.so`` embeds CPython and calls the plain functions below with the GIL held.
They take ints, floats, strings and memoryviews over the host's own memory, and return
ints, tuples of ints/floats/strings or None; no Python object reaches the C caller.
A handle is an integer key into ``_handles``; ``close`` drops the last reference to its
``Sampler``. Errors are ordinary exceptions: the C side turns them into the CLI's exit
codes and one-line messages with ``describe_error``.

Caller memory arrives as memoryviews made by ``PyMemoryView_FromMemory``: numpy views them
without a copy and the runtime writes the images straight into the host's buffer (ONNX
Runtime's IOBinding binds the output pointer). Nothing here keeps a view after a call
returns; the C side releases each memoryview and reports a bug if it cannot.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genedge.errors import BadInputError, GenedgeError, IncompatibleEnvironmentError, printable
from genedge.manifest import read_manifest
from genedge.runtime import TextGenerator
from genedge.runtime.sampler import Sampler

ABI_VERSION = 1  # must equal GENEDGE_ABI_VERSION in runtime/c/genedge.h
DTYPE_UINT8, LAYOUT_NHWC = 1, 0  # GENEDGE_DTYPE_UINT8, GENEDGE_LAYOUT_NHWC: Sampler's images


@dataclass
class _Handle:
    """One open bundle: its sampler and the current (or last) stream, or for an ``ar``
    bundle its text generator and the current (or last) generation."""

    sampler: Any  # genedge.runtime.Sampler; None for an ar bundle
    stream: Any = None  # genedge.runtime.stream.Stream, running or finished
    running: bool = False
    batch: int = 1
    text: Any = None  # genedge.runtime.TextGenerator of an ar bundle
    gen: _TextRun | None = None  # its current (or last) generation


_handles: dict[int, _Handle] = {}
_ids = itertools.count(1)


def check_abi(version: int) -> None:
    """Refuse a libgenedge built from another header than this module's."""
    if version != ABI_VERSION:
        raise IncompatibleEnvironmentError(
            f"libgenedge speaks C ABI version {version}; this genedge.runtime.capi speaks {ABI_VERSION}.",
            hint="Rebuild libgenedge from the runtime/c of the installed genedge.",
        )


def describe_error(exc: BaseException, context: str) -> tuple[int, str]:
    """(exit code, one-line message) for an exception raised under a C call: codes as the
    CLI's (an OS error on a file is 2), text through ``printable`` (a 1 MiB path is cut)."""
    if isinstance(exc, GenedgeError):
        return exc.exit_code, str(exc)
    if isinstance(exc, MemoryError):
        return 1, f"{context}: out of memory."
    if isinstance(exc, OSError) and exc.errno is not None:
        name = f" '{printable(exc.filename)}'" if exc.filename else ""
        return 2, f"{context}:{name} {printable(exc.strerror or str(exc))}."
    if os.environ.get("GENEDGE_DEBUG"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return 1, (
        f"{context}: internal error (a bug; please report it): {type(exc).__name__}: "
        f"{printable(str(exc))} (GENEDGE_DEBUG=1 prints the traceback on stderr)"
    )


def _get(hid: int, text: bool = False) -> _Handle:
    """The open handle ``hid``, of an image bundle (or with ``text``, of an ar bundle)."""
    h = _handles.get(hid)
    if h is None:
        raise BadInputError(f"Handle {hid} is not open; it was closed or never opened.")
    if (h.text is not None) != text:
        raise BadInputError(
            "This handle holds an ar (text) bundle; the image calls need a gan or vae bundle."
            if h.text is not None
            else "This handle holds an image bundle; the genedge_generate calls need an ar "
            "(text) bundle.",
            hint="Open the bundle of the kind these calls are for.",
        )
    return h


def open_bundle(
    bundle: str, backend: str | None, precision: str | None, threads: int, check_inputs: int
) -> int:
    """``Sampler.open`` the bundle; returns the new handle's key."""
    if threads < 0:
        raise BadInputError(
            f"genedge_open: options.threads is {threads}; expected 0 (the runtime's default) "
            "or a thread count >= 1."
        )
    if _is_text_bundle(bundle):
        return _open_text(bundle, backend, precision, threads)
    sampler = Sampler.open(
        bundle,
        backend=backend or "auto",
        precision=precision or None,
        threads=threads or None,  # past the CPUs: refused by the runtime's own check
        check_inputs=bool(check_inputs),
    )
    hid = next(_ids)
    _handles[hid] = _Handle(sampler)
    return hid


def output_info(hid: int) -> tuple[int, int, int, int, int, int, int, int, str, str]:
    """(H, W, C, dtype, layout, num_classes, latent_dim, bytes per sample, backend, precision)."""
    s = _get(hid).sampler
    height, width, channels = s.image_shape
    return (
        height,
        width,
        channels,
        DTYPE_UINT8,
        LAYOUT_NHWC,
        s.num_classes,
        s.latent_dim,
        height * width * channels,
        s.info.name,
        s.info.precision,
    )


def _out_array(h: _Handle, n: int, out: memoryview, what: str) -> np.ndarray:
    """The caller's buffer as a writeable uint8 (n, H, W, C) array, or a BadInputError."""
    shape = (n, *h.sampler.image_shape)
    need = math.prod(shape)
    if out.nbytes != need:
        raise BadInputError(
            f"{what}: out_size is {out.nbytes} bytes; {n} image(s) of "
            f"{'x'.join(map(str, shape[1:]))} uint8 need {need} bytes.",
            hint="Allocate n * genedge_output_info().bytes_per_sample bytes.",
        )
    return np.frombuffer(out, dtype=np.uint8).reshape(shape)


def _labels(labels: memoryview | bytes | None) -> np.ndarray | None:
    return None if labels is None else np.frombuffer(labels, dtype=np.int64)


def _check_n(n: int, what: str) -> None:
    if n < 1:
        raise BadInputError(f"{what}: n is {n}; expected at least 1 image.")


def sample(
    hid: int, n: int, seed: int, truncation: float, labels: memoryview | None, out: memoryview
) -> None:
    """``Sampler.sample`` written straight into the caller's buffer (``out=``, no copy)."""
    h = _get(hid)
    _check_n(n, "genedge_sample")
    h.sampler.sample(
        n,
        seed=seed,
        labels=_labels(labels),
        truncation=truncation,
        out=_out_array(h, n, out, "genedge_sample"),
    )


def sample_latents(
    hid: int, n: int, z: memoryview, labels: memoryview | None, out: memoryview
) -> None:
    """``Sampler.sample_latents`` for n * latent_dim caller floats, into the caller's buffer."""
    h = _get(hid)
    _check_n(n, "genedge_sample_latents")
    latent_dim = h.sampler.latent_dim
    zs = np.frombuffer(z, dtype=np.float32)
    if zs.size != n * latent_dim:
        raise BadInputError(
            f"genedge_sample_latents: z_count is {zs.size}; {n} image(s) of latent_dim "
            f"{latent_dim} need {n * latent_dim} floats."
        )
    h.sampler.sample_latents(
        zs.reshape(n, latent_dim),
        labels=_labels(labels),
        out=_out_array(h, n, out, "genedge_sample_latents"),
    )


def stream_start(
    hid: int,
    fps: float,
    seconds: float,
    walk: str | None,
    late: str | None,
    batch: int,
    truncation: float,
    seed: int,
    labels: bytes | None,
) -> None:
    """Start ``Sampler.stream``; a running stream of this handle is stopped first."""
    h = _get(hid)
    for name, v in (("seconds", seconds), ("truncation", truncation), ("batch", batch)):
        if not math.isfinite(v) or v < 0:
            raise BadInputError(
                f"genedge_stream_start: {name} {v!r}; expected a finite value >= 0 (0: the default)."
            )
    stream_stop(hid)
    y = _labels(labels)
    batch = batch if batch > 0 else 1
    h.stream = h.sampler.stream(
        fps=fps,
        seconds=seconds if seconds > 0 else None,
        walk=walk or "circle",
        late=late or "drop",
        batch=batch,
        seed=seed,
        truncation=truncation if truncation > 0 else 1.0,
        labels=None if y is None else (int(y[0]) if y.size == 1 else y),
        realtime_priority=None,  # the host owns its threads' scheduling (see docs/embedding.md)
    )
    h.running, h.batch = True, batch


def stream_next(hid: int, out: memoryview) -> tuple[int, float, float, float, float] | None:
    """Wait for the next frame and copy it into the caller's buffer; None once the stream ended."""
    h = _get(hid)
    if not h.running:
        if h.stream is not None:  # it ended or was stopped (maybe from another thread): END again
            return None
        raise BadInputError(
            "genedge_stream_next: no stream was started on this handle.",
            hint="Call genedge_stream_start first.",
        )
    arr = _out_array(h, h.batch, out, "genedge_stream_next")  # checked before a frame is taken
    try:
        frame = h.stream.next_frame()
    except BaseException:
        stream_stop(hid)
        raise
    if frame is None:
        stream_stop(hid)
        return None
    np.copyto(arr.reshape(frame.image.shape), frame.image)  # the ring slot is reused after this
    return (frame.index, frame.t_due, frame.t_ready, frame.t_delivered, frame.latency_s)


def stream_stop(hid: int) -> None:
    """Stop the handle's stream and join its worker; its stats stay readable."""
    h = _get(hid)
    if h.running:
        h.running = False
        h.stream.close()


_STATS_COUNTS = ("frames", "missed_deadlines", "dropped", "late_delivered", "nonfinite")
_STATS_TIMES = (
    "jitter_p50_s",
    "jitter_p99_s",
    "jitter_max_s",
    "latency_p50_s",
    "latency_p99_s",
    "latency_max_s",
)


def stream_stats(hid: int) -> tuple:
    """(frames, missed, dropped, late delivered, non-finite, elapsed s, fps target, fps achieved,
    jitter p50/p99/max s, latency p50/p99/max s) of the current or last stream."""
    h = _get(hid)
    if h.stream is None:
        return (0, 0, 0, 0, 0, 0.0, math.nan, math.nan, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    s = h.stream.stats.to_dict()
    return (
        *(int(s[k]) for k in _STATS_COUNTS),
        float(s["elapsed_s"]),
        float(h.stream.fps),
        float(s["fps"]),
        *(float(s[k]) for k in _STATS_TIMES),
    )


def close(hid: int) -> None:
    """Stop any stream and release the sampler. Closing an unknown key is a no-op."""
    h = _handles.pop(hid, None)
    if h is None:
        return
    try:
        if h.running:
            h.stream.close()
    finally:
        h.stream = None
        (h.sampler if h.text is None else h.text).close()


# ------------------------------------------------------------------ text generation


@dataclass
class _TextRun:
    """One generation driven from C: its runtime object, per-token timestamps and the bytes
    of a piece that did not fit the caller's buffer."""

    g: Any  # the generation (``Generation`` or ``LmGeneration``)
    prompt_tokens: int
    t_start: float
    steps: list[float] = field(default_factory=list)  # seconds each token's step took
    arrivals: list[float] = field(default_factory=list)  # perf_counter when each token came
    pending: bytes = b""
    cancelled: bool = False


_OPTION_DEFAULTS = {"repetition_penalty": 1.0, "stop": (), "eos": True}


def _is_text_bundle(bundle: str) -> bool:
    return read_manifest(bundle, check_files=False).kind == "ar"


def _open_text(bundle: str, backend: str | None, precision: str | None, threads: int) -> int:
    """``TextGenerator.open`` the ar bundle; returns the new handle's key."""
    tg = TextGenerator.open(
        bundle, backend=backend or "auto", precision=precision or None, threads=threads or None
    )
    hid = next(_ids)
    _handles[hid] = _Handle(None, text=tg)
    return hid


def text_info(hid: int) -> tuple[int, int, int, str, str]:
    """(vocabulary size, context in tokens (0: unbounded), is a transformer, backend, precision)."""
    tg = _get(hid, text=True).text
    config = getattr(tg, "config", None)  # a transformer's TransformerConfig
    vocab = config.vocab_size if config is not None else len(tg.vocab)
    context = config.max_context if config is not None else 0
    return vocab, context, int(config is not None), tg.info.name, tg.info.precision


def generate_start(
    hid: int,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    repetition_penalty: float,
    seed: int,
    stop: list[str],
    eos: int,
) -> None:
    """Start a generation (a running one of this handle ends); C's zeros mean the defaults."""
    h = _get(hid, text=True)
    tg = h.text
    if max_new_tokens < 0:
        raise BadInputError(
            f"genedge_generate_start: max_new_tokens is {max_new_tokens}; expected 0 (the "
            "default, 200) or a count >= 1."
        )
    options = {
        "repetition_penalty": repetition_penalty or 1.0,
        "stop": tuple(stop),
        "eos": bool(eos),
    }
    asked = {k: v for k, v in options.items() if v != _OPTION_DEFAULTS[k]}
    if asked and getattr(tg, "config", None) is None:  # the RNN's generator has no such options
        raise BadInputError(
            f"genedge_generate_start: {', '.join(sorted(asked))} need a transformer bundle; this "
            "is a character-level RNN bundle.",
            hint="Leave repetition_penalty 0, stop NULL and ignore_eos 0 for an RNN bundle.",
        )
    h.gen = None
    prompt_ids = tg.prompt_ids(prompt) if hasattr(tg, "prompt_ids") else tg.encode(prompt)
    g = tg.start(
        prompt,
        max_new_tokens=max_new_tokens if max_new_tokens > 0 else 200,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p if top_p > 0 else 1.0,
        seed=seed,
        **asked,
    )
    h.gen = _TextRun(g, len(prompt_ids), time.perf_counter())


def _fit(piece: bytes, cap: int) -> int:
    """The longest start of UTF-8 ``piece`` of at most ``cap`` bytes that ends on a character."""
    if len(piece) <= cap:
        return len(piece)
    n = cap
    while n > 0 and piece[n] & 0xC0 == 0x80:  # a continuation byte: the character started earlier
        n -= 1
    return n


def generate_next(hid: int, cap: int) -> bytes | None:
    """The next text piece as UTF-8 (at most ``cap`` bytes, whole characters), generating
    tokens until one completes some text; None once the generation is over."""
    h = _get(hid, text=True)
    run = h.gen
    if run is None:
        raise BadInputError(
            "genedge_generate_next: no generation was started on this handle.",
            hint="Call genedge_generate_start first.",
        )
    if cap < 4:
        raise BadInputError(
            f"genedge_generate_next: the buffer holds {cap} bytes of text; expected at least 4 "
            "(one UTF-8 character) plus the terminating NUL.",
            hint="Pass a buffer of 64 bytes or more.",
        )
    while not run.pending and not run.g.done and not run.cancelled:
        t0 = time.perf_counter()
        piece = run.g.step()
        t1 = time.perf_counter()
        run.steps.append(t1 - t0)
        run.arrivals.append(t1)
        run.pending = piece.encode("utf-8")
    if not run.pending:
        return None
    n = _fit(run.pending, cap)
    out, run.pending = run.pending[:n], run.pending[n:]
    return out


def generate_cancel(hid: int) -> None:
    """End the handle's generation early (the host's callback asked to stop)."""
    run = _get(hid, text=True).gen
    if run is not None:
        run.cancelled, run.pending = True, b""


def generate_stats(hid: int) -> tuple[int, int, float, float, float, float, float, str]:
    """(prompt tokens, tokens, TTFT s, inter-token p50 s, p99 s, tokens/s, elapsed s, stop
    reason) of the current or last generation; the inter-token times are each token's own
    step (the host's time between calls left out), tokens/s the wall rate after the first."""
    run = _get(hid, text=True).gen
    if run is None:
        return (0, 0, math.nan, math.nan, math.nan, math.nan, 0.0, "")
    n = len(run.arrivals)
    later = sorted(run.steps[1:])  # the first step is the prompt's prefill (in the TTFT)
    p50, p99 = (float(np.percentile(later, q)) if later else math.nan for q in (50, 99))
    span = run.arrivals[-1] - run.arrivals[0] if n > 1 else 0.0
    ttft = run.arrivals[0] - run.t_start if n else math.nan
    elapsed = (run.arrivals[-1] if n else time.perf_counter()) - run.t_start
    reason = (
        "callback"
        if run.cancelled
        else (getattr(run.g, "stop_reason", None) or "length")
        if run.g.done
        else ""
    )
    return (
        run.prompt_tokens,
        n,
        ttft,
        p50,
        p99,
        (n - 1) / span if span > 0 else math.nan,
        elapsed,
        reason,
    )

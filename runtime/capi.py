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
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

from genedge.errors import BadInputError, GenedgeError, IncompatibleEnvironmentError, printable

ABI_VERSION = 1  # must equal GENEDGE_ABI_VERSION in runtime/c/genedge.h
DTYPE_UINT8, LAYOUT_NHWC = 1, 0  # GENEDGE_DTYPE_UINT8, GENEDGE_LAYOUT_NHWC: Sampler's images


@dataclass
class _Handle:
    """One open bundle: its sampler and the current (or last) stream."""

    sampler: Any  # genedge.runtime.Sampler
    stream: Any = None  # genedge.runtime.stream.Stream, running or finished
    running: bool = False
    batch: int = 1


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


def _get(hid: int) -> _Handle:
    h = _handles.get(hid)
    if h is None:
        raise BadInputError(f"Handle {hid} is not open; it was closed or never opened.")
    return h


def open_bundle(
    bundle: str, backend: str | None, precision: str | None, threads: int, check_inputs: int
) -> int:
    """``Sampler.open`` the bundle; returns the new handle's key."""
    from genedge.runtime.sampler import Sampler

    if threads < 0:
        raise BadInputError(
            f"genedge_open: options.threads is {threads}; expected 0 (the runtime's default) "
            "or a thread count >= 1."
        )
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
        h.sampler.close()

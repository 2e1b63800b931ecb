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

import contextlib
import itertools
import math
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genedge.errors import BadInputError, GenedgeError, IncompatibleEnvironmentError

ABI_VERSION = 1  # must equal GENEDGE_ABI_VERSION in runtime/c/genedge.h
DTYPE_CODES = {np.dtype(np.uint8): 1, np.dtype(np.float32): 2}  # GENEDGE_DTYPE_*
LAYOUT_CODES = {"NHWC": 0, "NCHW": 1}  # GENEDGE_LAYOUT_*


@dataclass
class _Handle:
    """One open bundle: its sampler, what closes it, and the running stream if any."""

    sampler: Any
    closer: contextlib.ExitStack
    sample_shape: tuple[int, ...]  # one sample, e.g. (H, W, C)
    dtype: np.dtype
    stream: Any = None
    frames: Any = None  # iterator over the stream's frames
    stats: Any = None  # the last stream's stats object, readable after stop
    fps: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)


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
    """(exit code, one-line message) for an exception raised under a C call."""
    if isinstance(exc, GenedgeError):
        return exc.exit_code, str(exc)
    if isinstance(exc, MemoryError):
        return 1, f"{context}: out of memory."
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    return 1, f"{context}: internal error (a bug; please report it): {tb}"


def _get(hid: int) -> _Handle:
    h = _handles.get(hid)
    if h is None:
        raise BadInputError(f"Handle {hid} is not open; it was closed or never opened.")
    return h


def open_bundle(
    bundle: str, backend: str | None, precision: str | None, threads: int, check_inputs: int
) -> int:
    """Open ``bundle`` with ``Sampler.open`` and return the new handle's key."""
    from genedge.runtime.sampler import Sampler

    closer = contextlib.ExitStack()
    try:
        sampler = closer.enter_context(
            Sampler.open(
                bundle,
                backend=backend or "auto",
                precision=precision or None,
                threads=threads if threads > 0 else None,
                check_inputs=bool(check_inputs),
            )
        )
        shape, dtype = _sample_layout(sampler)
    except BaseException:
        closer.close()
        raise
    hid = next(_ids)
    _handles[hid] = _Handle(sampler, closer, shape, dtype)
    return hid


def _sample_layout(sampler: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one sample, from a 1-sample probe of the real graph."""
    probe = sampler.sample(1, seed=0)
    return tuple(int(d) for d in probe.shape[1:]), probe.dtype


def output_info(hid: int) -> tuple[int, int, int, int, int, int, int, int, str, str]:
    """(H, W, C, dtype, layout, num_classes, latent_dim, bytes per sample, backend, precision)."""
    h = _get(hid)
    info = h.sampler.info
    if h.dtype == np.uint8:
        (height, width, channels), layout = h.sample_shape, "NHWC"
    else:
        (channels, height, width), layout = h.sample_shape, "NCHW"
    return (
        height,
        width,
        channels,
        DTYPE_CODES.get(h.dtype, 0),
        LAYOUT_CODES[layout],
        int(info.num_classes),
        int(info.latent_dim),
        _bytes_per_sample(h),
        str(info.backend),
        str(info.precision),
    )


def _bytes_per_sample(h: _Handle) -> int:
    return math.prod(h.sample_shape) * h.dtype.itemsize


def _out_array(h: _Handle, n: int, out: memoryview, what: str) -> np.ndarray:
    """The caller's buffer as an (n, *sample_shape) array, or a BadInputError."""
    need = n * _bytes_per_sample(h)
    if out.nbytes != need:
        shape = "x".join(str(d) for d in h.sample_shape)
        raise BadInputError(
            f"{what}: out_size is {out.nbytes} bytes; {n} sample(s) of {shape} {h.dtype} need {need} bytes.",
            hint="Allocate n * genedge_output_info().bytes_per_sample bytes.",
        )
    return np.frombuffer(out, dtype=h.dtype).reshape((n, *h.sample_shape))


def _labels(labels: memoryview | bytes | None) -> np.ndarray | None:
    return None if labels is None else np.frombuffer(labels, dtype=np.int64)


def _check_n(n: int, what: str) -> None:
    if n < 1:
        raise BadInputError(f"{what}: n is {n}; expected at least 1 sample.")


def sample(
    hid: int, n: int, seed: int, truncation: float, labels: memoryview | None, out: memoryview
) -> None:
    """``Sampler.sample(n, seed, labels, truncation)`` written into the caller's buffer."""
    h = _get(hid)
    _check_n(n, "genedge_sample")
    arr = _out_array(h, n, out, "genedge_sample")
    result = h.sampler.sample(n, seed=seed, labels=_labels(labels), truncation=truncation, out=arr)
    _land(result, arr)


def sample_latents(
    hid: int, n: int, z: memoryview, labels: memoryview | None, out: memoryview
) -> None:
    """``Sampler.sample_latents(z, labels)`` for n * latent_dim caller floats."""
    h = _get(hid)
    _check_n(n, "genedge_sample_latents")
    latent_dim = int(h.sampler.info.latent_dim)
    zs = np.frombuffer(z, dtype=np.float32)
    if zs.size != n * latent_dim:
        raise BadInputError(
            f"genedge_sample_latents: z_count is {zs.size}; {n} sample(s) of latent_dim "
            f"{latent_dim} need {n * latent_dim} floats."
        )
    arr = _out_array(h, n, out, "genedge_sample_latents")
    result = h.sampler.sample_latents(zs.reshape(n, latent_dim), labels=_labels(labels), out=arr)
    _land(result, arr)


def _land(result: Any, arr: np.ndarray) -> None:
    """Make sure the images are in the caller's buffer (a no-op when ``out=`` was honoured)."""
    if result is not None and result is not arr:
        np.copyto(arr, result)


def stream_start(
    hid: int,
    fps: float,
    seconds: float,
    walk: str | None,
    late: str | None,
    batch: int,
    seed: int,
    labels: bytes | None,
) -> None:
    """Start ``Sampler.stream``; a running stream of this handle is stopped first."""
    h = _get(hid)
    stream_stop(hid)
    kwargs: dict[str, Any] = {"fps": fps, "seconds": seconds if seconds > 0 else None, "seed": seed}
    if walk:
        kwargs["walk"] = walk
    if late:
        kwargs["late"] = late
    if batch > 0:
        kwargs["batch"] = batch
    if labels is not None:
        kwargs["labels"] = _labels(labels)
    h.stream = h.sampler.stream(**kwargs)
    h.frames = iter(h.stream)
    h.stats = getattr(h.stream, "stats", None)
    h.fps = float(fps)


def stream_next(hid: int, out: memoryview) -> tuple[int, float, float, float] | None:
    """Copy the next frame into the caller's buffer; None once the stream is over."""
    h = _get(hid)
    if h.frames is None:
        raise BadInputError(
            "genedge_stream_next: no stream is running on this handle.",
            hint="Call genedge_stream_start first.",
        )
    arr = _out_array(h, 1, out, "genedge_stream_next")
    try:
        frame = next(h.frames)
    except StopIteration:
        _end_stream(h)
        return None
    np.copyto(arr[0], frame.image)
    return (int(frame.index), float(frame.t_due), float(frame.t_ready), float(frame.latency_s))


def _end_stream(h: _Handle) -> None:
    frames, h.frames, h.stream = h.frames, None, None
    close = getattr(frames, "close", None)
    if close is not None:
        close()


def stream_stop(hid: int) -> None:
    """Stop the handle's stream, if one runs; its stats stay readable."""
    h = _get(hid)
    if h.frames is not None:
        _end_stream(h)


def stream_stats(hid: int) -> tuple[int, int, int, float, float, float, float, float, float]:
    """(frames, missed, dropped, fps target, fps achieved, jitter p50/p99, latency p50/p99)."""
    h = _get(hid)
    s = h.stats
    if s is None:
        return (0, 0, 0, h.fps, math.nan, math.nan, math.nan, math.nan, math.nan)

    def num(name: str, default: float = math.nan) -> float:
        v = getattr(s, name, None)
        return default if v is None else float(v)

    return (
        int(num("frames", -1)),
        int(num("missed_deadlines", -1)),
        int(num("dropped", -1)),
        h.fps,
        num("fps"),
        num("jitter_p50_s"),
        num("jitter_p99_s"),
        num("latency_p50_s"),
        num("latency_p99_s"),
    )


def close(hid: int) -> None:
    """Stop any stream and release the sampler. Closing an unknown key is a no-op."""
    h = _handles.pop(hid, None)
    if h is None:
        return
    try:
        if h.frames is not None:
            _end_stream(h)
    finally:
        h.stats = None
        h.closer.close()

"""The backend protocol: open once, ``run(feed) -> outputs`` many times, ``close()``.

Every backend (ONNX Runtime, native TensorRT, OpenVINO) describes its graph with ``TensorSpec``s,
allocates its output buffers once per batch size and reuses them, and checks its
inputs cheaply before running (names, dtype, rank/shape, NaN/Inf, integer ranges)
unless opened with ``check_inputs=False``. numpy + stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from genedge.errors import BadInputError, CorruptArtifactError
from genedge.manifest import Dim, TensorSpec


@dataclass(frozen=True)
class BackendInfo:
    """What actually runs: backend name, provider used, precision and the artifact file."""

    name: str  # a backend's name in runtime.registry
    provider: str  # e.g. "CPUExecutionProvider", "TensorRT 10.3 (sm87)", "OpenVINO 2026.4.1 CPU"
    precision: str  # "fp32" | "fp16" | "bf16" | "int8"
    file: str  # artifact file inside the bundle


def resolve_shape(shape: tuple[Dim, ...], symbols: dict[str, int]) -> tuple[int, ...]:
    """Replace symbolic dims by their values: (("B", 16), {"B": 4}) -> (4, 16)."""
    return tuple(d if isinstance(d, int) else symbols[d] for d in shape)


def bind_symbols(specs: tuple[TensorSpec, ...], feed: dict[str, np.ndarray]) -> dict[str, int]:
    """Read the value of every symbolic input dim from the fed arrays."""
    symbols: dict[str, int] = {}
    for spec in specs:
        shape = feed[spec.name].shape
        for d, n in zip(spec.shape, shape, strict=False):
            if not isinstance(d, int):
                symbols[d] = n
    return symbols


def _expected(spec: TensorSpec) -> str:
    return "(" + ", ".join(str(d) for d in spec.shape) + ")"


def check_array(spec: TensorSpec, x: Any, symbols: dict[str, int]) -> None:
    """Check one input against its spec; ``symbols`` collects symbolic dims across inputs."""
    if not isinstance(x, np.ndarray):
        raise BadInputError(
            f"Input '{spec.name}': received {type(x).__name__}; expected a numpy array "
            f"{spec.dtype} {_expected(spec)}."
        )
    if x.dtype != spec.np_dtype:
        raise BadInputError(
            f"Input '{spec.name}': received dtype {x.dtype}; expected {spec.dtype}.",
            hint=f"Convert with x.astype(np.{spec.dtype}).",
        )
    if x.ndim != len(spec.shape):
        raise BadInputError(
            f"Input '{spec.name}': received shape {x.shape}; expected {_expected(spec)}."
        )
    for d, n in zip(spec.shape, x.shape, strict=True):
        if (
            isinstance(d, int)
            and d != n
            or not isinstance(d, int)
            and symbols.setdefault(d, n) != n
        ):
            raise BadInputError(
                f"Input '{spec.name}': received shape {x.shape}; expected {_expected(spec)}"
                + (f" with {d}={symbols[d]}" if not isinstance(d, int) else "")
                + ".",
                hint="Pass a latent of the bundle's size (manifest model.latent_dim)."
                if spec.name == "z"
                else None,
            )


def check_feed(
    specs: tuple[TensorSpec, ...],
    feed: dict[str, np.ndarray],
    int_ranges: dict[str, tuple[int, int]] | None = None,
    accepted: set[tuple] | None = None,
) -> None:
    """Raise ``BadInputError`` (exit 2) unless ``feed`` matches ``specs`` exactly.

    Checks names, dtype, rank, fixed and symbolic dims (one value per symbol across
    inputs), finiteness of float inputs, and ``int_ranges[name] = (lo, hi)`` (inclusive)
    for integer inputs such as class labels. ``accepted`` (a set the caller keeps) caches
    the feed signatures (names, dtypes, shapes) already checked, so the hot path repeats
    only the checks that depend on the data: finiteness and ranges.
    """
    try:
        signature = tuple((k, v.dtype, v.shape) for k, v in feed.items())
    except AttributeError:  # not an ndarray: the full check says which input and why
        signature = None
    if signature is None or accepted is None or signature not in accepted:
        _check_static(specs, feed)
        if accepted is not None and signature is not None and len(accepted) < 256:
            accepted.add(signature)
    for name, x in feed.items():
        kind = x.dtype.kind
        if kind == "f" and not all_finite(x):
            bad = int(x.size - np.count_nonzero(np.isfinite(x)))
            raise BadInputError(
                f"Input '{name}' holds {bad} NaN/Inf value(s); expected finite numbers."
            )
        if int_ranges and kind in "iu" and x.size and name in int_ranges:
            check_range(name, x, *int_ranges[name])


# Below this many elements the checks run in plain Python. Right after an inference the
# first SIMD (AVX-512) numpy ufunc pays a warm-up of tens of microseconds on x86 (measured:
# 60-110 us vs 3-8 us when warm), which would be most of a real-time caller's overhead.
_SMALL = 4096


def all_finite(x: np.ndarray) -> bool:
    """Whether every value is finite: one pass, the exact check only when the sum says no."""
    if x.size <= _SMALL and x.dtype.itemsize <= 4:  # float32/16 sums cannot overflow a float64
        return math.isfinite(sum(x.ravel().tolist()))
    return math.isfinite(np.add.reduce(x, axis=None)) or bool(np.isfinite(x).all())


def _check_static(specs: tuple[TensorSpec, ...], feed: dict[str, np.ndarray]) -> None:
    if len(feed) != len(specs) or any(s.name not in feed for s in specs):
        raise BadInputError(
            f"Inputs {sorted(feed)} do not match the graph's inputs {sorted(s.name for s in specs)}."
        )
    symbols: dict[str, int] = {}
    for spec in specs:
        check_array(spec, feed[spec.name], symbols)


def check_range(name: str, x: np.ndarray, lo: int, hi: int) -> None:
    """Refuse (exit 2) integer input ``name`` unless every value is in [lo, hi]."""
    if x.size <= _SMALL:
        values = x.ravel().tolist()
        ok = lo <= min(values) and max(values) <= hi
    else:
        ok = lo <= x.min() and x.max() <= hi
    if not ok:
        raise BadInputError(
            f"Input '{name}': values span [{x.min()}, {x.max()}]; expected [{lo}, {hi}].",
            hint="Labels must be class ids below the manifest's model.num_classes."
            if name == "label"
            else None,
        )


def merge_out(
    backend: Any,
    bufs: dict[str, np.ndarray],
    out: dict[str, np.ndarray],
    checked: Callable[[str, np.ndarray, tuple[int, ...]], bool] | None = None,
) -> dict[str, np.ndarray]:
    """The backend's own output buffers ``bufs`` with the caller's ``out`` arrays in their
    place, each checked against its output's spec (``checked(name, arr, shape)``: already
    checked for an output of that shape)."""
    merged = dict(bufs)
    for name, arr in out.items():
        own = bufs.get(name)
        if own is not None and checked is not None and checked(name, arr, own.shape):
            merged[name] = arr
            continue
        spec = backend.output_spec(name)
        if spec is None or own is None:
            raise CorruptArtifactError(
                f"The graph has no output '{name}'; outputs: {[o.name for o in backend.outputs]}."
            )
        check_out(spec, arr, own.shape)
        merged[name] = arr
    return merged


def check_out(spec: TensorSpec, out: Any, shape: tuple[int, ...]) -> None:
    """Refuse a caller's output buffer unless it is a writeable C-contiguous array of the right kind."""
    ok = (
        isinstance(out, np.ndarray)
        and out.dtype == spec.np_dtype
        and out.shape == shape
        and out.flags.c_contiguous
        and out.flags.writeable
    )
    if not ok:
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise BadInputError(
            f"Output buffer for '{spec.name}': received {got}; expected a writeable C-contiguous "
            f"{spec.dtype} array of shape {shape}.",
            hint=f"Allocate it with np.empty({shape}, np.{spec.dtype}).",
        )


def raise_closed(file: str) -> NoReturn:
    raise BadInputError(
        f"The backend for '{file}' is closed; it cannot run any more.",
        hint="Open the bundle again (Sampler.open / TextGenerator.open).",
    )


class Backend:
    """Base of every backend. Subclasses set ``inputs``, ``outputs``, ``info``, ``lock`` and ``_run``.

    ``run(feed, out=None)``: feed maps input names to numpy arrays; returns a dict of
    output arrays. Without ``out`` the arrays are the backend's own buffers, allocated
    once per batch size and overwritten by the next run of that size: copy what you keep
    (several threads sharing a backend copy them while holding ``lock``, a re-entrant lock
    that every run holds). With ``out`` (name -> caller array) the results are written
    there directly. A closed backend refuses to run (``BadInputError``).
    ``run_unchecked(feed, out=None)``: the same run without the input checks, for hot loops
    whose feed was checked once or is built by the caller (a stream's latents, a text state).
    """

    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    info: BackendInfo
    check_inputs: bool = True
    lock: Any  # threading.RLock, held by every run
    int_ranges: dict[str, tuple[int, int]] | None = None
    _accepted: set[tuple] | None = None  # feed signatures that passed the static checks

    def run(
        self, feed: dict[str, np.ndarray], out: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        if self.check_inputs:
            if self._accepted is None:
                self._accepted = set()
            check_feed(self.inputs, feed, self.int_ranges, self._accepted)
        return self._run(feed, out)

    def run_unchecked(
        self, feed: dict[str, np.ndarray], out: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """``run`` without the input checks: ``feed`` must already match ``inputs`` (names,
        dtypes, shapes, finite values, integer ranges); a feed that does not is undefined
        behaviour of the underlying library, not a ``BadInputError``."""
        return self._run(feed, out)

    def _run(
        self, feed: dict[str, np.ndarray], out: dict[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def output_shapes(self, feed: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        """The concrete shape of every output for this feed."""
        symbols = bind_symbols(self.inputs, feed)
        return {s.name: resolve_shape(s.shape, symbols) for s in self.outputs}

    def input_spec(self, name: str) -> TensorSpec | None:
        return next((s for s in self.inputs if s.name == name), None)

    def output_spec(self, name: str) -> TensorSpec | None:
        return next((s for s in self.outputs if s.name == name), None)

    def close(self) -> None:
        """Release sessions and buffers; safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class OpenRequest:
    """What a backend's opener gets besides the file and its precision. ``options`` is a
    ``runtime.options.BackendOptions``; ``declared``: the tensors the graph must declare
    (the manifest's, whose symbolic dim names a backend may take); ``engine``: a TensorRT
    engine's record; ``sha256``: the file's hash where a manifest lists it (keys caches)."""

    options: Any
    int_ranges: dict[str, tuple[int, int]] | None = None
    declared: tuple[TensorSpec, ...] = ()
    engine: Any = None
    sha256: str | None = None


def _runs_everything(precision: str) -> tuple[bool, str]:
    return True, ""


@dataclass(frozen=True)
class BackendSpec:
    """One backend as the runtime's registry (``runtime.registry``) lists it.

    ``open(path, precision, request)`` opens a file already hash-checked; ``options_type``
    is the backend's own options dataclass, which ``make_options`` builds from a
    ``BackendOptions``; ``available()`` says cheaply (no session) whether its libraries and
    device are here. ``precisions``: what it runs; ``prefer``: the reduced precisions its
    default picks, best first, when they qualify (``genedge.precisions`` says whether that
    takes approval); ``supports(precision) -> (ok, why not)``: whether this machine runs
    one (bf16 needs a CPU that has it). ``artifact``: what it opens from a bundle ("onnx"
    or "engine"); ``device``: "cpu" or "gpu"; ``in_auto``: the fixed rule of ``auto``
    tries it, in the registry's order; ``reference``: export's speed record times every
    artifact on it (ORT CPU); ``binds_buffers``: its backends run into caller-bound buffers
    (``run_bound``), which a transformer's KV cache needs."""

    name: str
    open: Callable[[Any, str, OpenRequest], Backend]
    options_type: type
    make_options: Callable[[Any, OpenRequest], Any]
    available: Callable[[], bool]
    precisions: tuple[str, ...]
    prefer: tuple[str, ...] = ()
    supports: Callable[[str], tuple[bool, str]] = _runs_everything
    artifact: str = "onnx"
    device: str = "cpu"
    in_auto: bool = True
    reference: bool = False
    binds_buffers: bool = False

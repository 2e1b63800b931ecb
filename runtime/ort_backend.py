"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers behind ``Backend``.

onnxruntime is imported inside ``OrtBackend.open``, never at module import. Outputs are
written into preallocated numpy buffers (one set per batch size, or the caller's ``out``)
through IOBinding: inputs and outputs bound by host pointer, rebound only when a
different array arrives (tracked by weak reference, so caller memory is never kept
alive), then one ``run_with_iobinding``. On GPU providers ORT copies the inputs to the
device and the results straight into those host buffers.

Why IOBinding on CPU too: measured side by side (ORT 1.32, digits-size generator,
batch 1, one intra-op thread, block-interleaved), ``Sampler.sample(1)`` through this
path ran at 0.98-1.02x a bare ``InferenceSession.run`` on the same file, while
``session.run`` + copy (``run_mode="plain"``, kept for comparison) ran at 1.13-1.18x.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genedge.errors import CorruptArtifactError, IncompatibleEnvironmentError, printable, require
from genedge.user_cache import user_cache

from . import trt_compat
from .backend import (
    Backend,
    BackendInfo,
    BackendSpec,
    OpenRequest,
    TensorSpec,
    bind_symbols,
    merge_out,
    raise_closed,
    resolve_shape,
)

log = logging.getLogger("genedge.runtime")

# backend name -> providers asked for, in order (CPU last so ORT can place shape ops)
PROVIDERS: dict[str, tuple[str, ...]] = {
    "ort-cpu": ("CPUExecutionProvider",),
    "ort-cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "ort-trt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
GRAPH_OPT_LEVELS = ("disable", "basic", "extended", "all")
RUN_MODES = ("iobinding", "plain")  # plain: session.run + copy (kept for comparison)
MAX_BUFFER_SETS = 8  # output buffer sets kept, one per batch size seen (oldest dropped first)
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(bool)": np.bool_,
}


# ONNX Runtime's own log lines for genedge's sessions: fatal only. genedge turns ORT's failures
# into its own one-line errors, which carry ORT's message through the sanitizer; ORT's logger
# would print the same failure first, raw: several lines, colour codes, and the graph's own
# node names, which a hostile file can fill with terminal escapes.
ORT_LOG_SEVERITY = 4


@dataclass(frozen=True)
class OrtOptions:
    """ONNX Runtime session options. ``None`` threads: ORT's default (all physical cores)."""

    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    graph_optimization: str = "all"  # one of GRAPH_OPT_LEVELS
    run_mode: str = "iobinding"  # one of RUN_MODES
    device_id: int = 0
    spin: bool = True  # session.intra_op.allow_spinning
    spin_between_runs: bool = True  # False: session.force_spinning_stop
    spin_us: int | None = None  # session.intra_op.spin_duration_us (None: ORT's default)
    trt_cache_dir: str | None = None  # ort-trt: engine/timing cache folder (see trt_ep_cache_dir)


class MissingKernelError(CorruptArtifactError):
    """This onnxruntime has no kernel for an op and type of the graph (e.g. some fp16 ops on CPU)."""


def _no_kernel(e: Exception) -> bool:
    text = str(e)
    return "NOT_IMPLEMENTED" in text or "Could not find an implementation" in text


def _spec(arg: Any) -> TensorSpec:
    if arg.type not in _ORT_DTYPES:
        raise CorruptArtifactError(f"Graph tensor '{arg.name}' has unsupported type {arg.type}.")
    shape = tuple(d if isinstance(d, int) else (d or "?") for d in arg.shape)
    return TensorSpec(arg.name, np.dtype(_ORT_DTYPES[arg.type]).name, shape)


def _session_options(ort: Any, opts: OrtOptions) -> Any:
    if opts.graph_optimization not in GRAPH_OPT_LEVELS:
        raise CorruptArtifactError(
            f"graph_optimization {opts.graph_optimization!r} is not one of {GRAPH_OPT_LEVELS}."
        )
    so = ort.SessionOptions()
    level = {
        "disable": "ORT_DISABLE_ALL",
        "basic": "ORT_ENABLE_BASIC",
        "extended": "ORT_ENABLE_EXTENDED",
        "all": "ORT_ENABLE_ALL",
    }[opts.graph_optimization]
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if opts.intra_op_threads:
        so.intra_op_num_threads = opts.intra_op_threads
    if opts.inter_op_threads:
        so.inter_op_num_threads = opts.inter_op_threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if opts.spin else "0")
    if not opts.spin_between_runs:
        so.add_session_config_entry("session.force_spinning_stop", "1")
    if opts.spin_us is not None:
        so.add_session_config_entry("session.intra_op.spin_duration_us", str(opts.spin_us))
    so.log_severity_level = ORT_LOG_SEVERITY
    return so


def trt_ep_cache_dir(key: str) -> Path | None:
    """Where ORT's TensorRT provider keeps the engines it builds for the artifact ``key`` (its
    sha256): per artifact, because ORT keys a cached engine by file and tensor names, not by the
    weights, so two exports of one architecture would share (wrong) engines. Per user, outside
    the bundle (a bundle holds only listed, hashed files): ``genedge.user_cache``'s folder.
    ``None`` (no cache, engines rebuilt per session) when no such folder can be made."""
    try:
        path = user_cache("ort-trt", key[:16])
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except (OSError, RuntimeError) as e:  # no HOME, read-only home (services, containers)
        log.warning("no TensorRT engine cache (%s); set GENEDGE_CACHE to a writable folder", e)
        return None
    return path


# ORT's TensorRT provider builds in fp32 unless told otherwise: an fp16 graph would run its
# layers in fp32 between casts, and a Q/DQ graph needs TensorRT's INT8 mode (no calibration
# table: the scales are in the graph).
TRT_EP_PRECISION: dict[str, dict[str, Any]] = {
    "fp16": {"trt_fp16_enable": True},
    "int8": {"trt_int8_enable": True},
}


def _provider_options(provider: str, opts: OrtOptions, precision: str = "fp32") -> dict[str, Any]:
    if provider == "CPUExecutionProvider":
        return {}
    if provider != "TensorrtExecutionProvider":
        return {"device_id": opts.device_id}
    out: dict[str, Any] = {"device_id": opts.device_id, **TRT_EP_PRECISION.get(precision, {})}
    if opts.trt_cache_dir:  # reuse engines across sessions
        out.update(
            trt_engine_cache_enable=True,
            trt_engine_cache_path=opts.trt_cache_dir,
            trt_timing_cache_enable=True,
            trt_timing_cache_path=opts.trt_cache_dir,
        )
    return out


def check_ort_trt_environment(ort: Any) -> None:
    """Refuse (exit 3) an onnxruntime-gpu whose TensorRT provider cannot load the installed
    TensorRT (another libnvinfer major or CUDA major), before ORT tries and falls back."""
    provider = trt_compat.ort_tensorrt_provider(ort.__file__)
    if provider is not None:
        needed = trt_compat.elf_needed(provider)
        trt_compat.check_ort_tensorrt(needed, trt_compat.installed_tensorrt(), ort.__version__)


def _run_error(file: str, e: Exception) -> CorruptArtifactError:
    first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
    return CorruptArtifactError(
        f"ONNX Runtime failed to run '{file}': {first}",
        hint="The inputs matched the graph's declared types and shapes; the bundle's manifest and graph "
        "disagree (e.g. model.num_classes) or the graph is broken. Re-export the bundle with `genedge export`.",
    )


class OrtBackend(Backend):
    """One ONNX graph in an ``onnxruntime.InferenceSession``. Open with ``OrtBackend.open``."""

    def __init__(self, session: Any, info: BackendInfo, opts: OrtOptions) -> None:
        self._sess = session
        self.info = info
        self.inputs = tuple(_spec(a) for a in session.get_inputs())
        self.outputs = tuple(_spec(a) for a in session.get_outputs())
        # inputs with a default (initializers the graph lists as inputs): fed only to override
        self.optional_inputs = frozenset(a.name for a in session.get_overridable_initializers())
        self._out_names = [s.name for s in self.outputs]
        self._buffers: dict[tuple, dict[str, np.ndarray]] = {}
        self._binding = session.io_binding()
        self._run_binding: Callable[[], None] | None = _binding_run(session, self._binding)
        self.lock = threading.RLock()  # one run at a time: the binding and buffers are shared
        # name -> weak reference to the array bound last: while it lives, the same object means
        # the same memory, so nothing is rebound. Weak: caller buffers are never kept alive.
        self._bound: dict[str, weakref.ref | None] = {}
        self._copies: dict[str, np.ndarray] = {}  # contiguous copies of non-contiguous inputs
        self._shapes: dict[str, tuple[int, ...]] = {}  # shape each input was bound with
        self._copy_at_bind = info.provider != "CPUExecutionProvider"
        self._plain = opts.run_mode == "plain"

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        name: str = "ort-cpu",
        precision: str = "fp32",
        options: OrtOptions | None = None,
        check_inputs: bool = True,
        int_ranges: dict[str, tuple[int, int]] | None = None,
    ) -> OrtBackend:
        """Create the session for ``path`` (already hash-checked) on backend ``name``.

        Raises ``IncompatibleEnvironmentError`` (exit 3) when ORT does not offer or did
        not take the requested provider: there is no silent fallback to CPU.
        """
        ort = require("onnxruntime", "cpu", purpose="the ONNX Runtime backend")
        opts = options or OrtOptions()
        if opts.run_mode not in RUN_MODES:
            raise CorruptArtifactError(f"run_mode {opts.run_mode!r} is not one of {RUN_MODES}.")
        wanted = PROVIDERS[name]
        if wanted[0] not in ort.get_available_providers():
            raise IncompatibleEnvironmentError(
                f"Backend '{name}' needs {wanted[0]}, which this onnxruntime does not offer "
                f"(available: {', '.join(ort.get_available_providers())}).",
                hint="Install onnxruntime-gpu (pip install 'genedge[gpu]') on a CUDA machine, "
                "or pass --backend ort-cpu.",
            )
        if name == "ort-trt":
            check_ort_trt_environment(ort)
        provider_opts = [_provider_options(p, opts, precision) for p in wanted]
        try:
            sess = ort.InferenceSession(
                str(path),
                sess_options=_session_options(ort, opts),
                providers=list(wanted),
                provider_options=provider_opts,
            )
        except Exception as e:  # ORT raises its own Fail/InvalidProtobuf types
            error = MissingKernelError if _no_kernel(e) else CorruptArtifactError
            raise error(
                f"ONNX Runtime could not load '{Path(path).name}': {str(e).splitlines()[0][:300]}",
                hint="Re-export the bundle with `genedge export`.",
            ) from None
        used = sess.get_providers()[0]
        if used != wanted[0]:
            raise IncompatibleEnvironmentError(
                f"Backend '{name}' asked ONNX Runtime for {wanted[0]} but it used {used}.",
                hint="Check the CUDA/TensorRT libraries onnxruntime-gpu needs, or pass --backend ort-cpu.",
            )
        info = BackendInfo(
            name=name, provider=used, precision=precision, file=printable(Path(path).name)
        )
        backend = cls(sess, info, opts)
        backend.check_inputs = check_inputs
        backend.int_ranges = int_ranges
        log.debug("opened %s with %s (%s)", info.file, used, precision)
        return backend

    def _own_buffers(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = next(
            iter(feed.values())
        ).shape  # the batch is a dim of the first input in every graph
        bufs = self._buffers.get(key)
        if bufs is None:
            symbols = bind_symbols(self.inputs, feed)
            bufs = {
                s.name: np.empty(resolve_shape(s.shape, symbols), s.np_dtype) for s in self.outputs
            }
            self._buffers[key] = bufs
            if len(self._buffers) > MAX_BUFFER_SETS:  # many batch sizes: forget the oldest set
                del self._buffers[next(iter(self._buffers))]
        return bufs

    def _run(
        self, feed: dict[str, np.ndarray], out: dict[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        with self.lock:
            return self._run_locked(feed, out)

    def _run_locked(
        self, feed: dict[str, np.ndarray], out: dict[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        if self._sess is None:
            raise_closed(self.info.file)
        bufs = self._own_buffers(feed)
        if out is not None:
            bufs = self._with_out(bufs, out)
        if self._plain:
            try:
                results = self._sess.run(self._out_names, feed)
            except Exception as e:
                raise _run_error(self.info.file, e) from None
            for buf, res in zip(bufs.values(), results, strict=True):
                np.copyto(buf, res)
            return bufs
        bound = self._bound
        for name, x in feed.items():
            ref = bound.get(name)
            # CPU: a bound array is read when the graph runs, so the same array (same shape) needs
            # no rebinding. CUDA/TensorRT providers copy a host input to the device when it is
            # *bound*, so there every run rebinds, or an array refilled in place would go stale.
            if ref is None or ref() is not x or self._copy_at_bind or x.shape != self._shapes[name]:
                self._bind_input(name, x)
        for name, buf in bufs.items():
            ref = bound.get(name)
            if ref is None or ref() is not buf:
                self._binding.bind_output(
                    name, "cpu", 0, buf.dtype.type, buf.shape, buf.ctypes.data
                )
                bound[name] = weakref.ref(buf)
        try:
            self._run_binding()  # type: ignore[misc]
        except (
            Exception
        ) as e:  # ORT's own error types; inputs passed our checks, so the graph refused them
            raise _run_error(self.info.file, e) from None
        return bufs

    def run_bound(self, feed: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
        """Run with every input and output bound to the caller's C-contiguous host arrays (no
        checks, no buffers of the backend's own): for graphs whose output shapes follow from
        input sizes in ways the declared symbols do not say, such as a KV cache's P + S.

        ``out`` must name every output, each of the shape this feed makes it.
        """
        with self.lock:
            if self._sess is None:
                raise_closed(self.info.file)
            b = self._binding
            for name, x in feed.items():
                b.bind_input(name, "cpu", 0, x.dtype.type, x.shape, x.ctypes.data)
            for name, x in out.items():
                b.bind_output(name, "cpu", 0, x.dtype.type, x.shape, x.ctypes.data)
            self._bound.clear()  # the next ``run`` binds its own arrays afresh
            try:
                self._run_binding()  # type: ignore[misc]
            except Exception as e:  # ORT's own error types
                raise _run_error(self.info.file, e) from None

    def rerun_bound(self) -> None:
        """``run_bound`` again on the arrays it bound last (their contents may have changed):
        a decode step that only rewrote its token id and position rebinds nothing."""
        # the lock's own methods: a ``with`` block's special-method lookups cost a few µs
        # per call after a run has pushed the interpreter out of the CPU caches
        self.lock.acquire()
        try:
            if self._sess is None:
                raise_closed(self.info.file)
            try:
                self._run_binding()  # type: ignore[misc]
            except Exception as e:  # ORT's own error types
                raise _run_error(self.info.file, e) from None
        finally:
            self.lock.release()

    def _bind_input(self, name: str, x: np.ndarray) -> None:
        c = np.ascontiguousarray(x)
        # host memory on every provider: ORT copies inputs to the device and results back
        self._binding.bind_input(name, "cpu", 0, c.dtype.type, c.shape, c.ctypes.data)
        self._shapes[name] = c.shape
        self._copies[name] = c if c is not x else None  # our copy stays alive while bound
        self._bound[name] = weakref.ref(x) if c is x else None  # None: rebind next run

    def _with_out(
        self, bufs: dict[str, np.ndarray], out: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        return merge_out(self, bufs, out, self._bound_last_run)

    def _bound_last_run(self, name: str, arr: np.ndarray, shape: tuple[int, ...]) -> bool:
        """Whether ``arr`` is the caller's buffer bound by the last run (checked then)."""
        ref = self._bound.get(name)
        return ref is not None and ref() is arr and arr.shape == shape

    def close(self) -> None:
        with self.lock:  # never under a run of another thread
            self._buffers.clear()
            self._bound.clear()
            self._copies.clear()
            self._binding = self._run_binding = None
            self._sess = None


def _binding_run(session: Any, binding: Any) -> Callable[[], None]:
    """``session.run_with_iobinding(binding)`` as one call. ``InferenceSession``'s Python method
    checks for WebGPU graph capture before it calls its pybind session (``_sess``) with the
    binding's own object (``_iobinding``); a decode loop that reruns one binding hundreds of
    times a second calls the pybind method directly (CPU, CUDA and TensorRT sessions capture
    no WebGPU graph). An ORT without those attributes gets its Python method."""
    inner, raw = getattr(session, "_sess", None), getattr(binding, "_iobinding", None)
    if raw is not None and callable(getattr(inner, "run_with_iobinding", None)):
        return functools.partial(inner.run_with_iobinding, raw, None)
    return lambda: session.run_with_iobinding(binding)


# ------------------------------------------------------------------ registry entries
def _available(provider: str) -> Callable[[], bool]:
    def available() -> bool:
        if importlib.util.find_spec("onnxruntime") is None:
            return False
        import onnxruntime

        return provider in onnxruntime.get_available_providers()

    return available


def ort_options(opts: Any, request: OpenRequest) -> OrtOptions:
    """``OrtOptions`` from a ``BackendOptions``; ort-trt's engine cache keyed by the file hash."""
    folder = trt_ep_cache_dir(request.sha256) if request.sha256 else None
    return OrtOptions(
        intra_op_threads=opts.threads,
        inter_op_threads=opts.inter_op_threads,
        spin=opts.spin,
        spin_between_runs=opts.spin_between_runs,
        spin_us=opts.spin_us,
        graph_optimization=opts.graph_optimization,
        device_id=opts.device_id,
        trt_cache_dir=None if folder is None else str(folder),
    )


def _opener(name: str) -> Callable[[Any, str, OpenRequest], Backend]:
    def open_ort(path: Any, precision: str, request: OpenRequest) -> Backend:
        if name != "ort-trt":
            request = dataclasses.replace(request, sha256=None)
        return OrtBackend.open(
            path,
            name=name,
            precision=precision,
            options=ort_options(request.options, request),
            check_inputs=request.options.check_inputs,
            int_ranges=request.int_ranges,
        )

    return open_ort


def _spec_of(name: str, **fields: Any) -> BackendSpec:
    return BackendSpec(
        name=name,
        open=_opener(name),
        options_type=OrtOptions,
        make_options=ort_options,
        available=_available(PROVIDERS[name][0]),
        **fields,
    )


ORT_CPU = _spec_of(
    "ort-cpu",
    precisions=("fp32", "fp16", "int8", "int4"),
    prefer=("int8",),
    reference=True,
    binds_buffers=True,
)
ORT_CUDA = _spec_of(
    "ort-cuda",
    precisions=("fp32", "fp16", "int8", "int4"),
    prefer=("fp16",),
    device="gpu",
    binds_buffers=True,
)
ORT_TRT = _spec_of(
    "ort-trt", precisions=("fp32", "fp16", "int8"), prefer=("fp16",), device="gpu", in_auto=False
)

"""Native TensorRT backend (TensorRT >= 8.5 named-tensor API) over cuda-python.

Importing this module imports neither tensorrt nor cuda-python: both are loaded inside
``probe_environment`` / ``TrtBackend.open``, and the TensorRT logger subclass is built
in a factory function. Before an engine file is deserialized, the manifest checks run:
its sha256 (``Manifest.path_of``), the TensorRT version and the GPU compute capability
against the engine record (mismatch: exit 3 naming both and the rebuild command), and
the opt-in for version-compatible engines, which carry host code (exit 4 without it).

Run path: input arrays -> pinned host buffers -> one stream: H2D copies,
``execute_async_v3``, D2H copies -> synchronize -> outputs copied into the caller's ``out=``
arrays, or into new arrays (never views of the pinned buffers, which the next run overwrites
and ``close()`` frees). Device and pinned buffers are sized
once for the profile's max batch; with ``cuda_graphs=True`` that sequence is captured
once per batch size, right after an eager run at that shape, and replayed (a failed
capture leaves that batch size eager, as trtexec does). On integrated GPUs (Jetson) host buffers are
allocated mapped and handed to TensorRT directly: no H2D/D2H copies.

TensorRT keeps one logger for the whole process (the first one a Builder or Runtime was
given), so there is one: ``trt_logger()``, shared with export's builder.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genedge.errors import (
    BadInputError,
    CorruptArtifactError,
    IncompatibleEnvironmentError,
    SecurityRefusal,
    printable,
    require,
)
from genedge.manifest import Artifact, EngineRecord, Manifest

from . import cuda
from .backend import (
    Backend,
    BackendInfo,
    BackendSpec,
    OpenRequest,
    TensorSpec,
    bind_symbols,
    check_out,
    raise_closed,
    resolve_shape,
)
from .cuda import TrtEnvironment, cuda_call, cuda_runtime, trt_logger
from .trt_compat import check_dla

log = logging.getLogger("genedge.runtime")
MIN_TRT = (8, 5)


# ---------------------------------------------------------------- pure checks (testable)


def parse_version(text: str) -> tuple[int, ...]:
    """ "10.3.0.26" -> (10, 3, 0, 26); non-numeric tails are ignored."""
    return tuple(int(p) for p in re.findall(r"\d+", str(text))[:4])


def rebuild_hint(bundle: str | Path) -> str:
    return f"Rebuild the engine on this machine: genedge export CKPT --out {bundle} --trt"


def check_engine_record(
    record: EngineRecord,
    env: TrtEnvironment,
    *,
    file: str,
    bundle: str | Path = "BUNDLE",
    allow_version_compatible: bool = False,
) -> None:
    """Refuse an engine built for another GPU or TensorRT (exit 3) or with unwanted host code (exit 4).

    Plain engines need the same compute capability and the same TensorRT version
    (major.minor.patch). Version-compatible engines run on the same or a newer TensorRT,
    a later major included (NVIDIA: TensorRT 10 version-compatible engines run on
    TensorRT 11), and only with ``allow_version_compatible=True``: they embed a lean
    runtime (host code) that TensorRT would execute. The record's fields were checked when
    the manifest was parsed.
    """
    if record.compute_capability != env.compute_capability:
        raise IncompatibleEnvironmentError(
            f"Engine '{file}' was built for compute capability {record.compute_capability} "
            f"({printable(record.device_name or 'unknown GPU')}); "
            f"this GPU is {env.compute_capability} ({env.device_name}).",
            hint=rebuild_hint(bundle),
        )
    built, have = parse_version(record.tensorrt_version), parse_version(env.tensorrt_version)
    vc = record.version_compatible
    ok = _three(have) >= _three(built) if vc else _three(have) == _three(built)
    if not ok:
        rule = "that version or newer" if vc else "exactly that version, up to the patch"
        raise IncompatibleEnvironmentError(
            f"Engine '{file}' was built with TensorRT {printable(record.tensorrt_version, 32)}; "
            "this machine has "
            f"TensorRT {env.tensorrt_version} (needs {rule}).",
            hint=rebuild_hint(bundle),
        )
    if vc and not allow_version_compatible:
        raise SecurityRefusal(
            f"Engine '{file}' is version-compatible: it carries host code that TensorRT would run.",
            hint="Pass allow_version_compatible=True if you trust this bundle, or rebuild it "
            f"without --version-compatible: genedge export CKPT --out {bundle} --trt",
        )


def _three(version: tuple[int, ...]) -> tuple[int, int, int]:
    """major.minor.patch, missing parts 0: a record of "10" means 10.0.0, never "any 10.x"."""
    return (tuple(version) + (0, 0, 0))[:3]  # type: ignore[return-value]


def _check_fits(
    record: EngineRecord, env: TrtEnvironment, file: str, bundle: Path, allow_vc: bool
) -> None:
    """The engine record matches this TensorRT and GPU, and the TensorRT is new enough."""
    check_engine_record(record, env, file=file, bundle=bundle, allow_version_compatible=allow_vc)
    _check_min_trt(env)
    check_dla(env.tensorrt_version, record.dla_core)


def _check_min_trt(env: TrtEnvironment) -> None:
    if parse_version(env.tensorrt_version)[:2] < MIN_TRT:
        raise IncompatibleEnvironmentError(
            f"TensorRT {env.tensorrt_version} is older than 8.5.",
            hint="Install TensorRT 10 or 11: pip install 'genedge[trt-cu12]' or 'genedge[trt-cu13]' "
            "(README: GPU and TensorRT).",
        )


def check_profile_batch(batch: int, profile: tuple[int, int, int], *, file: str = "engine") -> None:
    """A batch outside the engine's optimisation profile [min, max] is a user error (exit 2)."""
    lo, opt, hi = profile
    if not lo <= batch <= hi:
        raise BadInputError(
            f"Batch {batch} is outside the profile of '{file}': min {lo}, opt {opt}, max {hi}.",
            hint=f"Sample in chunks of at most {hi}, or re-export with --trt-profile {lo}:{opt}:{max(batch, hi)} --trt.",
        )


def plan_buffers(specs: tuple[TensorSpec, ...], max_batch: int) -> dict[str, int]:
    """Bytes per tensor at the profile's max batch (every symbolic dim is the batch)."""
    return {
        s.name: int(
            np.prod(
                resolve_shape(s.shape, {d: max_batch for d in s.shape if not isinstance(d, int)})
            )
        )
        * s.np_dtype.itemsize
        for s in specs
    }


def _host_array(ptr: int, nbytes: int) -> np.ndarray:
    """A uint8 numpy view over ``nbytes`` of host memory at ``ptr`` (pinned or mapped)."""
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))


class TrtBackend(Backend):
    """A deserialized TensorRT engine with buffers allocated once. Open with ``TrtBackend.open``."""

    def __init__(self) -> None:
        self._cudart: Any = None
        self._device_id = 0
        self._allocs: list[tuple[str, int]] = []  # ("device"|"host", ptr) to free
        self._graphs: dict[int, Any] = {}  # batch -> instantiated CUDA graph
        self._no_graph: set[int] = set()  # batch sizes whose capture failed: run eagerly
        self.lock = threading.RLock()
        self._stream: Any = None
        self._engine = self._context = None

    @classmethod
    def open(
        cls,
        manifest: Manifest,
        artifact: Artifact,
        env: TrtEnvironment,
        *,
        check_inputs: bool = True,
        int_ranges: dict[str, tuple[int, int]] | None = None,
        allow_version_compatible: bool = False,
        cuda_graphs: bool = False,
        device_id: int = 0,
    ) -> TrtBackend:
        """Check the record against ``env``, verify the hash, deserialize, allocate buffers."""
        record = artifact.engine
        if record is None:
            raise CorruptArtifactError(
                f"Engine '{printable(artifact.file)}' has no engine record in the manifest.",
                hint=rebuild_hint(manifest.root),
            )
        _check_fits(record, env, printable(artifact.file), manifest.root, allow_version_compatible)
        path = manifest.path_of(artifact)  # sha256 checked before anything deserializes it
        return cls._from_path(
            path,
            record,
            env,
            artifact.precision or "fp32",
            artifact.file,
            check_inputs=check_inputs,
            int_ranges=int_ranges,
            allow_version_compatible=allow_version_compatible,
            cuda_graphs=cuda_graphs,
            device_id=device_id,
        )

    @classmethod
    def open_file(
        cls,
        path: Path,
        record: EngineRecord,
        env: TrtEnvironment,
        *,
        precision: str = "fp32",
        check_inputs: bool = True,
        int_ranges: dict[str, tuple[int, int]] | None = None,
        allow_version_compatible: bool = False,
        cuda_graphs: bool = False,
        device_id: int = 0,
    ) -> TrtBackend:
        """``open`` for an engine file no manifest lists yet (one export has just built): the
        same record checks, without the hash only a manifest holds."""
        _check_fits(record, env, path.name, path.parent, allow_version_compatible)
        return cls._from_path(
            path,
            record,
            env,
            precision,
            path.name,
            check_inputs=check_inputs,
            int_ranges=int_ranges,
            allow_version_compatible=allow_version_compatible,
            cuda_graphs=cuda_graphs,
            device_id=device_id,
        )

    @classmethod
    def _from_path(
        cls,
        path: Path,
        record: EngineRecord,
        env: TrtEnvironment,
        precision: str,
        file: str,
        *,
        check_inputs: bool,
        int_ranges: dict[str, tuple[int, int]] | None,
        allow_version_compatible: bool,
        cuda_graphs: bool,
        device_id: int,
    ) -> TrtBackend:
        self = cls()
        self._device_id = int(device_id)
        self._file = printable(file)
        try:
            self._load(path, record, allow_version_compatible)
            self._allocate(env.integrated)
        except BaseException:
            self.close()
            raise
        self.info = BackendInfo(
            "tensorrt",
            f"TensorRT {env.tensorrt_version} (sm{env.compute_capability.replace('.', '')})",
            precision,
            printable(file),
        )
        self.check_inputs, self.int_ranges, self._use_graphs = check_inputs, int_ranges, cuda_graphs
        return self

    def _load(self, path: Path, record: EngineRecord, allow_vc: bool) -> None:
        trt = require("tensorrt", "trt", purpose="the native TensorRT backend")
        self._cudart = cudart = cuda_runtime()
        cuda_call(cudart.cudaSetDevice(self._device_id))  # the GPU probe_environment described
        self._runtime = trt.Runtime(trt_logger(trt))
        if allow_vc and record.version_compatible:
            self._runtime.engine_host_code_allowed = True
        if record.dla_core is not None:  # an engine built for DLA runs on the core it was built for
            self._runtime.DLA_core = record.dla_core
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise IncompatibleEnvironmentError(
                f"TensorRT could not deserialize '{path.name}'.", hint=rebuild_hint(path.parent)
            )
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise IncompatibleEnvironmentError(
                f"TensorRT could not create an execution context for '{path.name}' "
                "(out of GPU memory?)."
            )
        # non-blocking: work other threads put on the legacy default stream cannot break a capture
        self._stream = cuda_call(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking))
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_in = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        spec = {n: self._tensor_spec(trt, n) for n in names}
        self.inputs = tuple(spec[n] for n in names if is_in[n])
        self.outputs = tuple(spec[n] for n in names if not is_in[n])
        first = self.inputs[0].name
        self.profiles = [
            tuple(int(tuple(s)[0]) for s in self._engine.get_tensor_profile_shape(first, i))
            for i in range(self._engine.num_optimization_profiles)
        ]  # [(min, opt, max)]
        self._active = 0
        # the Sampler chunks batches to profile[2]; the widest profile bounds the buffers
        self.profile = (
            min(p[0] for p in self.profiles),
            self.profiles[0][1],
            max(p[2] for p in self.profiles),
        )

    def _tensor_spec(self, trt: Any, name: str) -> TensorSpec:
        dims = tuple(self._engine.get_tensor_shape(name))
        shape = tuple("B" if d == -1 else int(d) for d in dims)
        return TensorSpec(
            name, np.dtype(trt.nptype(self._engine.get_tensor_dtype(name))).name, shape
        )

    def _allocate(self, integrated: bool) -> None:
        cudart, self._mapped = self._cudart, integrated
        self._host: dict[str, np.ndarray] = {}
        self._device: dict[str, int] = {}
        for name, nbytes in plan_buffers(self.inputs + self.outputs, self.profile[2]).items():
            if integrated:  # Jetson: one mapped allocation, seen by CPU and GPU
                host = cuda_call(cudart.cudaHostAlloc(nbytes, cudart.cudaHostAllocMapped))
                dev = cuda_call(cudart.cudaHostGetDevicePointer(host, 0))
                self._allocs.append(("host", host))
            else:
                host = cuda_call(cudart.cudaMallocHost(nbytes))
                self._allocs.append(("host", host))
                dev = cuda_call(cudart.cudaMalloc(nbytes))
                self._allocs.append(("device", dev))
            self._host[name], self._device[name] = _host_array(int(host), nbytes), int(dev)
            if not self._context.set_tensor_address(name, int(dev)):
                raise IncompatibleEnvironmentError(
                    f"TensorRT refused the device buffer of tensor '{printable(name)}' of "
                    f"'{self._file}' (set_tensor_address returned False; see its log)."
                )

    def _view(self, spec: TensorSpec, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape)) * spec.np_dtype.itemsize
        return self._host[spec.name][:n].view(spec.np_dtype).reshape(shape)

    def _run(
        self, feed: dict[str, np.ndarray], out: dict[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        with self.lock:  # one run at a time: the pinned and device buffers are shared
            if self._context is None:
                raise_closed(getattr(self, "_file", "engine"))
            return self._run_locked(feed, out)

    def _run_locked(
        self, feed: dict[str, np.ndarray], out: dict[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        if (
            self._device_id
        ):  # the current device is per thread (the stream's worker is another thread)
            cuda_call(self._cudart.cudaSetDevice(self._device_id))
        B = next(iter(feed.values())).shape[0]
        lo, _, hi = self.profiles[self._active]
        if not lo <= B <= hi:
            self._switch_profile(B)
        for spec in self.inputs:
            x = feed[spec.name]
            np.copyto(self._view(spec, x.shape), x)
            if not self._context.set_input_shape(spec.name, x.shape):
                lo, opt, hi = self.profiles[self._active]
                raise BadInputError(
                    f"TensorRT refused shape {tuple(x.shape)} for input '{spec.name}' of "
                    f"'{self._file}' (profile min {lo}, opt {opt}, max {hi}).",
                    hint="Pass inputs of the shapes the bundle's manifest declares.",
                )
        graph = self._graphs.get(B)
        if graph is not None:
            cuda_call(self._cudart.cudaGraphLaunch(graph, self._stream))
            cuda_call(self._cudart.cudaStreamSynchronize(self._stream))
            return self._outputs(feed, out)
        # eager run: it gives this call's results, and it is the enqueue at exactly this shape
        # that TensorRT needs right before a capture (its lazy setup must not be captured)
        self._enqueue(feed)
        cuda_call(self._cudart.cudaStreamSynchronize(self._stream))
        if self._use_graphs and B not in self._no_graph:
            try:
                self._graphs[B] = self._capture(feed)
            except IncompatibleEnvironmentError as e:  # as trtexec does: stay eager for this batch
                self._no_graph.add(B)
                log.warning(
                    "CUDA graph capture failed for batch %d of '%s' (%s); running it eagerly",
                    B,
                    self._file,
                    e.message,
                )
        return self._outputs(feed, out)

    def _switch_profile(self, B: int) -> None:
        """Activate the first optimisation profile that admits batch ``B`` (or name them all)."""
        fits = [i for i, (lo, _, hi) in enumerate(self.profiles) if lo <= B <= hi]
        if not fits:
            if len(self.profiles) == 1:
                check_profile_batch(B, self.profiles[0], file=self._file)
            ranges = ", ".join(f"[{lo}, {hi}] (opt {opt})" for lo, opt, hi in self.profiles)
            raise BadInputError(
                f"Batch {B} fits none of the profiles of '{self._file}': {ranges}.",
                hint="Sample in a batch size inside one of them, or re-export with --trt-profile.",
            )
        if not self._context.set_optimization_profile_async(fits[0], int(self._stream)):
            raise IncompatibleEnvironmentError(
                f"TensorRT could not switch '{self._file}' to optimisation profile {fits[0]} "
                f"for batch {B} (set_optimization_profile_async returned False; see its log)."
            )
        self._active = fits[0]
        for g in self._graphs.values():  # captured graphs belong to the previous profile
            self._cudart.cudaGraphExecDestroy(g)
        self._graphs.clear()
        self._no_graph.clear()

    def _enqueue(self, feed: dict[str, np.ndarray]) -> None:
        cudart, shapes = self._cudart, self.output_shapes(feed)
        if not self._mapped:
            for spec in self.inputs:
                n = feed[spec.name].nbytes
                cuda_call(
                    cudart.cudaMemcpyAsync(
                        self._device[spec.name],
                        self._view(spec, feed[spec.name].shape).ctypes.data,
                        n,
                        cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                        self._stream,
                    )
                )
        if not self._context.execute_async_v3(int(self._stream)):
            raise IncompatibleEnvironmentError(f"TensorRT failed to execute '{self._file}'.")
        if not self._mapped:
            for spec in self.outputs:
                n = int(np.prod(shapes[spec.name])) * spec.np_dtype.itemsize
                cuda_call(
                    cudart.cudaMemcpyAsync(
                        self._host[spec.name].ctypes.data,
                        self._device[spec.name],
                        n,
                        cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                        self._stream,
                    )
                )

    def _capture(self, feed: dict[str, np.ndarray]) -> Any:
        """Record copies + execute_async_v3 as a CUDA graph (call right after an eager run at this shape)."""
        cudart = self._cudart
        cuda_call(
            cudart.cudaStreamBeginCapture(
                self._stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
            )
        )
        failure: BaseException | None = None
        try:
            self._enqueue(feed)
        except (
            BaseException
        ) as e:  # EndCapture must run whatever happened, and must not hide this error
            failure = e
        err, graph = cudart.cudaStreamEndCapture(self._stream)
        if failure is not None:
            if int(err) == 0 and graph is not None:
                cudart.cudaGraphDestroy(graph)
            raise failure
        if int(err) != 0:
            raise IncompatibleEnvironmentError(f"cudaStreamEndCapture failed: {err!r}.")
        try:
            return cuda_call(cudart.cudaGraphInstantiate(graph, 0))
        finally:
            cudart.cudaGraphDestroy(graph)

    def _outputs(
        self, feed: dict[str, np.ndarray], out: dict[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        symbols = bind_symbols(self.inputs, feed)
        res = {}
        for spec in self.outputs:
            view = self._view(spec, resolve_shape(spec.shape, symbols))
            if out is not None and spec.name in out:
                check_out(spec, out[spec.name], view.shape)
                np.copyto(out[spec.name], view)
                res[spec.name] = out[spec.name]
            else:  # our own array: the pinned buffer is reused by the next run, freed by close()
                res[spec.name] = view.copy()
        return res

    def close(self) -> None:
        with self.lock:  # never under a run of another thread
            self._close_locked()

    def _close_locked(self) -> None:
        cudart = self._cudart
        if cudart is not None:  # captured graphs reference the context's work: they go first
            for g in self._graphs.values():
                cudart.cudaGraphExecDestroy(g)
        self._graphs = {}
        self._context = self._engine = None  # TensorRT objects go before the memory they use
        if cudart is not None:
            for kind, ptr in reversed(self._allocs):
                (cudart.cudaFreeHost if kind == "host" else cudart.cudaFree)(ptr)
            if self._stream is not None:
                cudart.cudaStreamDestroy(self._stream)
        self._graphs, self._allocs, self._stream = {}, [], None


# ---------------------------------------------------------------- registry entry
@dataclass(frozen=True)
class TrtOptions:
    """What the native TensorRT backend takes besides the engine."""

    allow_version_compatible: bool = False  # engines carrying host code
    cuda_graphs: bool = False
    device_id: int = 0


def trt_options(opts: Any, request: OpenRequest) -> TrtOptions:
    return TrtOptions(opts.allow_version_compatible, opts.cuda_graphs, opts.device_id)


def trt_environment(device_id: int) -> TrtEnvironment:
    """This machine's TensorRT and GPU, or ``IncompatibleEnvironmentError`` (exit 3)."""
    env = cuda.probe_environment(device_id)
    if env is None:
        raise IncompatibleEnvironmentError(
            "Backend 'tensorrt' needs the tensorrt and cuda-python packages and an NVIDIA GPU.",
            hint="pip install 'genedge[trt]' on a CUDA machine, or pass --backend ort-cpu.",
        )
    return env


def _open(path: Any, precision: str, request: OpenRequest) -> Backend:
    if request.engine is None:
        raise BadInputError("Opening a TensorRT engine needs the engine's record.")
    o = trt_options(request.options, request)
    return TrtBackend.open_file(
        Path(path),
        request.engine,
        trt_environment(o.device_id),
        precision=precision,
        check_inputs=request.options.check_inputs,
        int_ranges=request.int_ranges,
        allow_version_compatible=o.allow_version_compatible,
        cuda_graphs=o.cuda_graphs,
        device_id=o.device_id,
    )


SPEC = BackendSpec(
    name="tensorrt",
    open=_open,
    options_type=TrtOptions,
    make_options=trt_options,
    available=lambda: importlib.util.find_spec("tensorrt") is not None,
    precisions=("fp32", "fp16", "int8"),
    prefer=("int8", "fp16"),
    artifact="engine",
    device="gpu",
)

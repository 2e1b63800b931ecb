"""OpenVINO backend: the bundle's own ONNX files (fp32, fp16, Q/DQ int8) on the CPU plugin.

openvino is imported inside ``OpenVinoBackend.open``, never at module import; the CPU
capability probe (``genedge.runtime.machine.bf16_support``) reads ``/proc/cpuinfo``.

Shapes: by default every input-shape signature (in practice, every batch size) gets its
own model reshaped to static shapes and compiled, kept in a bounded LRU
(``MAX_COMPILED``): OpenVINO's CPU plugin picks its kernels (Winograd convolutions,
blocked layouts) per static shape, and a dynamic model pays a shape-inference step per
run. ``static=False`` compiles one dynamic model for every batch size instead (one compile;
for callers that change the batch on every call).

Precision: the file decides it (fp32, fp16 weights, int8 Q/DQ), and the inference
precision hint is pinned to f32 for all three, because the CPU plugin otherwise runs an
fp32 graph in bf16 on CPUs that have it. ``precision="bf16"`` runs the fp32 file with the
``bf16`` hint and is refused (exit 3) on a CPU without AVX-512 BF16 or AMX.

Threads are not pinned to cores (``ENABLE_CPU_PINNING=NO``, OpenVINO pins by default on
Linux): on a machine shared with other work, pinned threads wait for their core.

Outputs go straight into preallocated numpy buffers (one set per batch size, or the
caller's ``out``) wrapped as OpenVINO tensors sharing their memory; inputs are shared the
same way, so a run copies nothing.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genedge.errors import (
    CorruptArtifactError,
    printable,
    require,
)
from genedge.interrupts import roomy_signal_stack

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
from .machine import bf16_support, require_bf16

log = logging.getLogger("genedge.runtime")

MAX_COMPILED = 8  # static compiled models kept, one per input-shape signature (LRU)
# precision of the artifact -> OpenVINO's INFERENCE_PRECISION_HINT
_HINTS = {"fp32": "f32", "fp16": "f32", "int8": "f32", "bf16": "bf16"}
_OV_DTYPES = {
    "f32": np.float32,
    "f16": np.float16,
    "f64": np.float64,
    "i64": np.int64,
    "i32": np.int32,
    "u8": np.uint8,
    "i8": np.int8,
    "boolean": np.bool_,
}


@dataclass(frozen=True)
class OpenVinoOptions:
    """OpenVINO compile options. ``threads``: ``INFERENCE_NUM_THREADS`` (None: the plugin's default)."""

    threads: int | None = None
    static: bool = True  # compile per batch size (see the module docstring)
    first_batch: int = 1  # the batch size compiled at open (static): the one expected first
    max_compiled: int = MAX_COMPILED


# ------------------------------------------------------------------ the backend
def _spec(port: Any, declared: TensorSpec | None) -> TensorSpec:
    """A graph tensor's spec; its dynamic dims take the manifest's names (OpenVINO drops them)."""
    name = port.get_any_name()
    et = port.get_element_type().get_type_name()
    if et not in _OV_DTYPES:
        raise CorruptArtifactError(f"Graph tensor '{printable(name)}' has unsupported type {et}.")
    dims = []
    for i, d in enumerate(port.get_partial_shape()):
        if d.is_static:
            dims.append(d.get_length())
        elif declared is not None and i < len(declared.shape):
            dims.append(declared.shape[i] if isinstance(declared.shape[i], str) else "?")
        else:
            dims.append("?")
    return TensorSpec(name, np.dtype(_OV_DTYPES[et]).name, tuple(dims))


def _config(precision: str, opts: OpenVinoOptions) -> dict[str, Any]:
    config: dict[str, Any] = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_PRECISION_HINT": _HINTS[precision],
        # unpinned, as ONNX Runtime's threads: a thread pinned to a core that another process
        # is using cannot move (measured on a busy 2-core VM, 28x28 GAN, batch 1, 2 threads:
        # 25 ms pinned vs 2.4 ms unpinned)
        "ENABLE_CPU_PINNING": "NO",
    }
    if opts.threads:
        config["INFERENCE_NUM_THREADS"] = str(opts.threads)
    return config


def _load_error(path: Path, e: Exception) -> CorruptArtifactError:
    first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
    return CorruptArtifactError(
        f"OpenVINO could not load '{printable(path.name)}': {first}",
        hint="Re-export the bundle with `genedge export`, or pass --backend ort-cpu.",
    )


class _Compiled:
    """One compiled model and its infer request, with the tensors bound to it last."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        # name -> (array the caller passed, array whose memory the request reads): a tensor
        # sharing memory must not outlive its array, and the same array needs no rebinding
        self.bound: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.own: dict[str, np.ndarray] = {}  # copies of inputs OpenVINO cannot share


class OpenVinoBackend(Backend):
    """One ONNX graph compiled by OpenVINO for the CPU. Open with ``OpenVinoBackend.open``."""

    def __init__(
        self,
        ov: Any,
        core: Any,
        model: Any,
        info: BackendInfo,
        opts: OpenVinoOptions,
        declared: dict[str, TensorSpec],
    ) -> None:
        self._ov, self._core, self._model = ov, core, model
        self.info = info
        self._opts = opts
        self._config = _config(info.precision, opts)
        self.inputs = tuple(_spec(p, declared.get(p.get_any_name())) for p in model.inputs)
        self.outputs = tuple(_spec(p, declared.get(p.get_any_name())) for p in model.outputs)
        self._out_names = [s.name for s in self.outputs]
        self._compiled: OrderedDict[tuple, _Compiled] = OrderedDict()
        self._buffers: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
        self.lock = threading.RLock()  # one run at a time: requests and buffers are shared
        self.compile_count = 0  # models compiled so far (static: one per batch size seen)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        precision: str = "fp32",
        options: OpenVinoOptions | None = None,
        check_inputs: bool = True,
        int_ranges: dict[str, tuple[int, int]] | None = None,
        declared: Sequence[TensorSpec] = (),
    ) -> OpenVinoBackend:
        """Read ``path`` (already hash-checked) and compile it for ``options.first_batch``
        (or one dynamic model with ``options.static=False``).

        ``precision`` is the artifact's ("fp32" | "fp16" | "int8"), or "bf16" for the fp32
        file run with OpenVINO's bf16 inference precision (exit 3 on a CPU without it).
        ``declared``: the manifest's tensors of this graph, whose symbolic dim names the
        backend's specs take. Raises ``MissingExtraError`` (exit 3) without openvino.
        """
        if precision not in _HINTS:
            raise CorruptArtifactError(f"precision {precision!r} is not one of {tuple(_HINTS)}.")
        if precision == "bf16":
            require_bf16()
        ov = require("openvino", "openvino", purpose="the OpenVINO backend")
        opts = options or OpenVinoOptions()
        path = Path(path)
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as e:  # OpenVINO raises RuntimeError/its own types for a bad file
            raise _load_error(path, e) from None
        info = BackendInfo(
            name="openvino",
            provider=f"OpenVINO {ov.get_version().split('-')[0]} CPU",
            precision=precision,
            file=printable(path.name),
        )
        backend = cls(ov, core, model, info, opts, {s.name: s for s in declared})
        backend.check_inputs = check_inputs
        backend.int_ranges = int_ranges
        backend._warm_up()
        log.debug("opened %s with %s (%s)", info.file, info.provider, precision)
        return backend

    def _warm_up(self) -> None:
        """Compile now what the first run needs (``first_batch``, or the dynamic model), so a graph
        the CPU plugin cannot compile is refused at open, not at the first sample."""
        if not self._opts.static:
            self._compiled_for(None)
            return
        n = self._opts.first_batch
        feed_shapes = {
            s.name: tuple(n if not isinstance(d, int) else d for d in s.shape) for s in self.inputs
        }
        self._compiled_for(tuple(feed_shapes.items()))

    def _compiled_for(self, key: tuple | None) -> _Compiled:
        """The compiled model for input shapes ``key`` ((name, shape) pairs; None: dynamic)."""
        c = self._compiled.get(key)
        if c is not None:
            self._compiled.move_to_end(key)
            return c
        model = self._model
        if key is not None:
            model = self._model.clone()
            model.reshape({name: self._ov.PartialShape(list(shape)) for name, shape in key})
        try:
            c = _Compiled(self._core.compile_model(model, "CPU", self._config))
        except Exception as e:
            raise _load_error(Path(self.info.file), e) from None
        roomy_signal_stack()  # the plugin's own signal stack is too small for Ctrl-C
        self.compile_count += 1
        self._compiled[key] = c
        if len(self._compiled) > max(1, self._opts.max_compiled):
            self._compiled.popitem(last=False)  # the least recently used shape
        return c

    def _own_buffers(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = next(iter(feed.values())).shape  # the batch is a dim of the first input
        bufs = self._buffers.get(key)
        if bufs is None:
            symbols = bind_symbols(self.inputs, feed)
            bufs = {
                s.name: np.empty(resolve_shape(s.shape, symbols), s.np_dtype) for s in self.outputs
            }
            self._buffers[key] = bufs
            if len(self._buffers) > max(1, self._opts.max_compiled):
                self._buffers.popitem(last=False)
        return bufs

    def _run(
        self, feed: dict[str, np.ndarray], out: dict[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        with self.lock:
            if self._model is None:
                raise_closed(self.info.file)
            bufs = self._own_buffers(feed)
            if out is not None:
                bufs = self._with_out(bufs, out)
            key = tuple((k, v.shape) for k, v in feed.items()) if self._opts.static else None
            c = self._compiled_for(key)
            for name, x in feed.items():
                self._bind(c, name, x)
            for name, buf in bufs.items():
                self._bind(c, name, buf)
            try:
                c.request.infer()
            except Exception as e:  # inputs passed our checks: the graph refused them
                first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
                raise CorruptArtifactError(
                    f"OpenVINO failed to run '{self.info.file}': {first}",
                    hint="Re-export the bundle with `genedge export`, or pass --backend ort-cpu.",
                ) from None
            return bufs

    def _bind(self, c: _Compiled, name: str, x: np.ndarray) -> None:
        """Share ``x``'s memory with the request unless the same array is bound already; read-only
        or strided arrays (the Sampler's cached latents) are copied into an array of our own."""
        last = c.bound.get(name)
        if last is not None and last[0] is x and last[1] is x:
            return  # the same array: same memory and shape, read at infer time
        if x.flags.c_contiguous and x.flags.writeable:
            a = x
        else:  # OpenVINO shares writeable C-contiguous memory only: copy into our own array
            a = c.own.get(name)
            if a is None or a.shape != x.shape or a.dtype != x.dtype:
                a = c.own[name] = np.empty(x.shape, x.dtype)
            np.copyto(a, x)
            if last is not None and last[1] is a:
                return  # our array is bound already; it now holds x
        c.request.set_tensor(name, self._ov.Tensor(a, shared_memory=True))
        c.bound[name] = (x, a)

    def _with_out(
        self, bufs: dict[str, np.ndarray], out: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        return merge_out(self, bufs, out)

    def close(self) -> None:
        with self.lock:  # never under a run of another thread
            self._compiled.clear()
            self._buffers.clear()
            self._model = None
            self._core = None


# ------------------------------------------------------------------ registry entry
def openvino_options(opts: Any, request: OpenRequest) -> OpenVinoOptions:
    """``OpenVinoOptions`` from a ``BackendOptions``."""
    return OpenVinoOptions(
        threads=opts.threads, static=opts.static_shapes, first_batch=opts.batch or 1
    )


def _open(path: Any, precision: str, request: OpenRequest) -> Backend:
    return OpenVinoBackend.open(
        path,
        precision=precision,
        options=openvino_options(request.options, request),
        check_inputs=request.options.check_inputs,
        int_ranges=request.int_ranges,
        declared=request.declared,
    )


def _supports(precision: str) -> tuple[bool, str]:
    return bf16_support() if precision == "bf16" else (True, "")


SPEC = BackendSpec(
    name="openvino",
    open=_open,
    options_type=OpenVinoOptions,
    make_options=openvino_options,
    available=lambda: importlib.util.find_spec("openvino") is not None,
    precisions=("fp32", "fp16", "bf16", "int8"),
    prefer=("int8", "bf16"),
    supports=_supports,
    in_auto=False,
)

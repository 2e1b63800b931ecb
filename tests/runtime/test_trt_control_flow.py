"""The native TensorRT backend's run sequencing, against a recording stand-in for CUDA and TensorRT.

This checks *our* control flow only (when an eager enqueue happens, when a CUDA graph is
captured or replayed, that EndCapture always runs, what a batch between profiles says).
It is not a GPU test: the real API calls are exercised by the ``gpu`` tests
(tests/runtime/test_gpu_backends.py), which skip without a GPU.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from genedge.errors import BadInputError, IncompatibleEnvironmentError, SecurityRefusal
from genedge.manifest import EngineRecord, engine_record_from
from genedge.runtime import cuda, trt_backend
from genedge.runtime.backend import TensorSpec
from genedge.runtime.trt_backend import TrtBackend, TrtEnvironment, check_engine_record


class FakeCudart:
    """cuda-python's (err, value) convention; records the calls that matter for ordering."""

    class cudaMemcpyKind:  # noqa: N801 (mirrors cuda-python's names)
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost = 1, 2

    class cudaStreamCaptureMode:  # noqa: N801
        cudaStreamCaptureModeThreadLocal = 1

    def __init__(self, log: list) -> None:
        self.log, self.capturing, self.graphs = log, False, 0

    def cudaMemcpyAsync(self, *a):  # noqa: N802
        return (0,)

    def cudaStreamSynchronize(self, s):  # noqa: N802
        self.log.append("sync")
        return (0,)

    def cudaStreamBeginCapture(self, s, mode):  # noqa: N802
        self.capturing = True
        self.log.append("begin")
        return (0,)

    def cudaStreamEndCapture(self, s):  # noqa: N802
        self.capturing = False
        self.log.append("end")
        self.graphs += 1
        return (0, f"graph{self.graphs}")

    def cudaGraphInstantiate(self, g, flags):  # noqa: N802
        return (0, f"exec-{g}")

    def cudaGraphDestroy(self, g):  # noqa: N802
        return (0,)

    def cudaGraphExecDestroy(self, g):  # noqa: N802
        return (0,)

    def cudaGraphLaunch(self, g, s):  # noqa: N802
        self.log.append(("launch", g))
        return (0,)


class FakeContext:
    def __init__(self, log: list, cudart: FakeCudart, fail_in_capture: bool = False) -> None:
        self.log, self.cudart, self.fail_in_capture, self.shape = log, cudart, fail_in_capture, None

    def set_input_shape(self, name, shape):
        self.shape = tuple(shape)
        return True  # TensorRT's bool: False for a shape outside the active profile

    def execute_async_v3(self, stream):
        self.log.append(
            ("enqueue", self.shape[0], "captured" if self.cudart.capturing else "eager")
        )
        return not (self.fail_in_capture and self.cudart.capturing)

    def set_optimization_profile_async(self, i, stream):
        self.log.append(("profile", i))
        return True


def fake_backend(profiles=((1, 4, 8),), fail_in_capture=False) -> tuple[TrtBackend, list]:
    log: list = []
    b = TrtBackend()
    b._cudart = FakeCudart(log)
    b._context = FakeContext(log, b._cudart, fail_in_capture)
    b.inputs = (TensorSpec("z", np.dtype(np.float32), ("B", 4)),)
    b.outputs = (TensorSpec("image", np.dtype(np.uint8), ("B", 2, 2, 1)),)
    b.profiles, b._active = list(profiles), 0
    b.profile = (min(p[0] for p in profiles), profiles[0][1], max(p[2] for p in profiles))
    hi = b.profile[2]
    b._host = {"z": np.zeros(hi * 16, np.uint8), "image": np.zeros(hi * 4, np.uint8)}
    b._device, b._mapped, b._stream = {"z": 1, "image": 2}, False, 0
    b._use_graphs, b._file, b.check_inputs, b.int_ranges = True, "model.engine", True, None
    return b, log


def run(b: TrtBackend, n: int) -> None:
    b.run({"z": np.zeros((n, 4), np.float32)})


def test_a_graph_is_captured_right_after_an_eager_run_at_the_same_shape() -> None:
    b, log = fake_backend()
    run(b, 4)
    run(b, 8)
    log.clear()
    run(b, 4)  # 4 was captured after an eager run at 4, not after the run at 8
    assert log == [("launch", "exec-graph1"), "sync"]
    b2, log2 = fake_backend()
    run(b2, 4)
    assert log2 == [("enqueue", 4, "eager"), "sync", "begin", ("enqueue", 4, "captured"), "end"]


def test_a_failed_capture_leaves_that_batch_eager_and_always_ends_the_capture(caplog) -> None:
    b, log = fake_backend(fail_in_capture=True)
    with caplog.at_level(logging.WARNING, logger="genedge.runtime"):
        run(b, 2)
    assert "begin" in log and "end" in log and 2 in b._no_graph and not b._graphs
    assert "CUDA graph capture failed" in caplog.text
    log.clear()
    run(b, 2)
    assert log == [("enqueue", 2, "eager"), "sync"]  # no second capture attempt


def test_a_batch_between_two_profiles_names_them_all() -> None:
    b, _ = fake_backend(profiles=((1, 2, 4), (8, 12, 16)))
    run(b, 12)  # switches to the second profile
    with pytest.raises(
        BadInputError, match=r"Batch 6 fits none of the profiles.*\[1, 4\].*\[8, 16\]"
    ):
        run(b, 6)


def test_a_closed_engine_refuses_to_run() -> None:
    b, _ = fake_backend()
    b._context = None
    with pytest.raises(BadInputError, match="closed"):
        run(b, 1)


# ------------------------------------------------------------------ results, checked returns


def test_results_without_out_are_our_own_arrays() -> None:
    """Never views of the pinned buffers: the next run overwrites those and close() frees them."""
    b, _ = fake_backend()
    b._use_graphs = False
    first = b.run({"z": np.zeros((2, 4), np.float32)})["image"]
    assert not np.shares_memory(first, b._host["image"])
    b._host["image"][:] = 7  # what a later D2H copy would leave there
    assert (first == 0).all()
    out = {"image": np.empty((2, 2, 2, 1), np.uint8)}
    assert b.run({"z": np.zeros((2, 4), np.float32)}, out=out)["image"] is out["image"]


def test_a_refused_input_shape_is_an_error_not_a_stale_run() -> None:
    b, log = fake_backend()
    b._context.set_input_shape = lambda name, shape: False
    with pytest.raises(BadInputError, match=r"refused shape \(3, 4\) for input 'z'"):
        run(b, 3)
    assert not any(isinstance(e, tuple) and e[0] == "enqueue" for e in log)


def test_a_failed_profile_switch_keeps_the_old_profile() -> None:
    b, _ = fake_backend(profiles=((1, 2, 4), (8, 12, 16)))
    b._context.set_optimization_profile_async = lambda i, stream: False
    with pytest.raises(IncompatibleEnvironmentError, match="optimisation profile 1"):
        run(b, 12)
    assert b._active == 0


class AllocCudart(FakeCudart):
    """Host allocations are real (numpy) memory; device pointers are just numbers."""

    def __init__(self, log: list) -> None:
        super().__init__(log)
        self.keep: list[np.ndarray] = []

    def cudaMallocHost(self, n):  # noqa: N802
        self.keep.append(np.zeros(n, np.uint8))
        return (0, self.keep[-1].ctypes.data)

    def cudaMalloc(self, n):  # noqa: N802
        return (0, 4096 * (len(self.keep) + 1))


def test_a_refused_tensor_address_fails_the_open() -> None:
    b, log = fake_backend()
    b._cudart = AllocCudart(log)
    b._context.set_tensor_address = lambda name, ptr: name != "image"
    with pytest.raises(IncompatibleEnvironmentError, match="device buffer of tensor 'image'"):
        b._allocate(False)


# ------------------------------------------------------------------ version rules, logger


def _record(version: str, vc: bool = False) -> EngineRecord:
    return engine_record_from(
        {
            "tensorrt_version": version,
            "device_name": "GPU",
            "compute_capability": "8.9",
            "profiles": [[1, 4, 8]],
            "version_compatible": vc,
            "dla_core": None,
            "built_from": "model.onnx",
            "path": "strongly-typed",
        },
        "test",
    )


def test_version_compatible_tensorrt_10_engines_run_on_tensorrt_11() -> None:
    env = TrtEnvironment("11.4.0", "8.9", "GPU")
    check_engine_record(_record("10.3.0", vc=True), env, file="e", allow_version_compatible=True)
    with pytest.raises(SecurityRefusal):  # still only with the opt-in
        check_engine_record(_record("10.3.0", vc=True), env, file="e")
    with pytest.raises(IncompatibleEnvironmentError, match="or newer"):
        check_engine_record(
            _record("11.4.1", vc=True), env, file="e", allow_version_compatible=True
        )
    with pytest.raises(IncompatibleEnvironmentError, match="up to the patch"):
        check_engine_record(_record("11.4.1"), env, file="e")


def test_one_tensorrt_logger_per_process(monkeypatch) -> None:
    import types

    class ILogger:
        class Severity:
            INTERNAL_ERROR, ERROR, WARNING, INFO = range(4)

        def __init__(self) -> None:
            pass

    trt = types.SimpleNamespace(ILogger=ILogger)
    monkeypatch.setattr(cuda, "_LOGGER", None)
    first = cuda.trt_logger(trt)
    assert isinstance(first, ILogger) and cuda.trt_logger(trt) is first


# ------------------------------------------------------------------ loading, on stand-ins


def fake_load_modules(monkeypatch) -> tuple[object, list]:
    """Stand-in tensorrt + cuda-python for ``TrtBackend._load``; returns (trt, runtimes made)."""
    import sys
    import types

    runtimes: list = []

    class ILogger:
        class Severity:
            INTERNAL_ERROR, ERROR, WARNING, INFO = range(4)

        def __init__(self) -> None:
            pass

    class Engine:
        num_io_tensors, num_optimization_profiles = 2, 1

        def get_tensor_name(self, i):
            return ("z", "image")[i]

        def get_tensor_mode(self, name):
            return "in" if name == "z" else "out"

        def get_tensor_shape(self, name):
            return (-1, 4) if name == "z" else (-1, 2, 2, 1)

        def get_tensor_dtype(self, name):
            return np.float32 if name == "z" else np.uint8

        def get_tensor_profile_shape(self, name, i):
            return [(1, 4), (4, 4), (8, 4)]

        def create_execution_context(self):
            return object()

    class Runtime:
        def __init__(self, logger) -> None:
            self.logger, self.DLA_core, self.engine_host_code_allowed = logger, -1, False
            runtimes.append(self)

        def deserialize_cuda_engine(self, data):
            return Engine()

    trt = types.SimpleNamespace(
        ILogger=ILogger,
        Runtime=Runtime,
        TensorIOMode=types.SimpleNamespace(INPUT="in"),
        nptype=lambda t: t,
    )
    cudart = types.SimpleNamespace(
        cudaSetDevice=lambda d: (0,),
        cudaStreamNonBlocking=1,
        cudaStreamCreateWithFlags=lambda f: (0, 77),
    )
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_backend, "cuda_runtime", lambda: cudart)
    monkeypatch.setattr(cuda, "_LOGGER", None)
    return trt, runtimes


def _engine_record(*, vc: bool = False, dla: int | None = None) -> EngineRecord:
    rec = _record("10.3.0", vc=vc)
    return engine_record_from(dict(rec.to_dict(), dla_core=dla), "test")


def test_load_runs_a_dla_engine_on_its_core_and_allows_host_code_only_when_trusted(
    monkeypatch, tmp_path
) -> None:
    """Export verifies through this same load: a DLA engine is checked on its DLA core."""
    trt, runtimes = fake_load_modules(monkeypatch)
    plan = tmp_path / "e.engine"
    plan.write_bytes(b"plan")
    for record, allow, dla, host_code in (
        (_engine_record(dla=1), False, 1, False),
        (_engine_record(vc=True), True, -1, True),
        (_engine_record(vc=True), False, -1, False),
        (_engine_record(), True, -1, False),  # a plain engine never gets host code allowed
    ):
        b = TrtBackend()
        b._load(plan, record, allow)
        rt = runtimes[-1]
        assert (rt.DLA_core, rt.engine_host_code_allowed) == (dla, host_code)
        assert b.profiles == [(1, 4, 8)] and [s.name for s in b.inputs] == ["z"]
    assert len({id(rt.logger) for rt in runtimes}) == 1  # one logger for every runtime

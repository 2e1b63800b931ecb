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

from genedge.errors import BadInputError
from genedge.runtime.backend import TensorSpec
from genedge.runtime.trt_backend import TrtBackend


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

    def execute_async_v3(self, stream):
        self.log.append(
            ("enqueue", self.shape[0], "captured" if self.cudart.capturing else "eager")
        )
        return not (self.fail_in_capture and self.cudart.capturing)

    def set_optimization_profile_async(self, i, stream):
        self.log.append(("profile", i))


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

"""Export runs what it built through ``genedge.runtime``: the backends users sample with."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from genedge.errors import BadInputError, CorruptArtifactError
from genedge.export.checks.parity import onnx_runner
from genedge.export.routes.wrappers import GraphSpec, TensorSpec
from genedge.runtime.ort_backend import MissingKernelError, OrtBackend


def _double(path) -> None:
    """y[B, 4] = 2 * x[B, 4], float32."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


SPEC = GraphSpec(
    "generator",
    "model",
    (TensorSpec("x", "float32", ("B", 4)),),
    (TensorSpec("y", "float32", ("B", 4)),),
)


def test_onnx_runs_on_the_runtime_backend_and_results_are_kept(tmp_path, monkeypatch):
    import genedge.runtime.select as select

    opened = []

    def open_file(*args, **kwargs):
        opened.append(select_open_file(*args, **kwargs))
        return opened[-1]

    select_open_file = select.open_file
    monkeypatch.setattr(select, "open_file", open_file)
    _double(tmp_path / "g.onnx")
    runner = onnx_runner(tmp_path / "g.onnx", SPEC)
    assert runner.backend == "onnxruntime-cpu" and [type(b) for b in opened] == [OrtBackend]
    first = runner.run({"x": np.ones((2, 4), np.float32)})["y"]
    runner.run({"x": np.full((2, 4), 5.0, np.float32)})  # same batch: the backend reuses buffers
    np.testing.assert_array_equal(first, np.full((2, 4), 2.0, np.float32))


def test_a_file_unlike_its_spec_is_refused(tmp_path):
    _double(tmp_path / "g.onnx")
    wrong = GraphSpec("generator", "model", SPEC.inputs, (TensorSpec("y", "uint8", ("B", 4)),))
    with pytest.raises(CorruptArtifactError, match="'y' is uint8"):
        onnx_runner(tmp_path / "g.onnx", wrong)


def test_a_graph_ort_cpu_has_no_kernel_for_runs_on_the_reference_evaluator(tmp_path, monkeypatch):
    import genedge.runtime.select as select

    def no_kernel(*args, **kwargs):
        raise MissingKernelError("NOT_IMPLEMENTED: no fp16 kernel")

    _double(tmp_path / "g.onnx")
    monkeypatch.setattr(select, "open_file", no_kernel)
    runner = onnx_runner(tmp_path / "g.onnx", SPEC)
    assert runner.backend == "onnx-reference"
    np.testing.assert_array_equal(runner.run({"x": np.ones((1, 4), np.float32)})["y"], 2.0)


def test_ort_missing_kernel_is_its_own_corrupt_artifact_error(tmp_path, monkeypatch):
    import onnxruntime

    def refuse(*args, **kwargs):
        raise RuntimeError(
            "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation"
        )

    _double(tmp_path / "g.onnx")
    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    with pytest.raises(MissingKernelError, match="NOT_IMPLEMENTED") as e:
        OrtBackend.open(tmp_path / "g.onnx")
    assert isinstance(e.value, CorruptArtifactError) and e.value.exit_code == 2


def test_open_file_needs_a_named_backend(tmp_path):
    from genedge.runtime.select import open_file

    _double(tmp_path / "g.onnx")
    with pytest.raises(BadInputError, match="name its backend"):
        open_file(tmp_path / "g.onnx", "auto")

"""``open_file``: one ONNX file or engine that no manifest lists yet, on the runtime's backends."""

from __future__ import annotations

import numpy as np
import pytest

import genedge.runtime.cuda as cuda
from genedge.errors import CorruptArtifactError, IncompatibleEnvironmentError, SecurityRefusal
from genedge.runtime.backend import TensorSpec
from genedge.runtime.select import open_file
from genedge.runtime.trt_backend import TrtBackend, TrtEnvironment

ENV = TrtEnvironment("10.3.0", "8.9", "L4")
RECORD = {"tensorrt_version": "10.3.0", "compute_capability": "8.9", "version_compatible": False}
Z = TensorSpec("z", np.dtype(np.float32), ("B", 4))
IMAGE = TensorSpec("image", np.dtype(np.uint8), ("B", 8, 8, 1))


@pytest.fixture
def loads(monkeypatch) -> list:
    """TrtBackend with deserialization and CUDA buffers replaced: records what it would load."""
    calls: list = []

    def load(self, path, record, allow_vc):
        calls.append((path.name, allow_vc))
        self.inputs, self.outputs = (Z,), (IMAGE,)

    monkeypatch.setattr(TrtBackend, "_load", load)
    monkeypatch.setattr(TrtBackend, "_allocate", lambda self, integrated: None)
    monkeypatch.setattr(cuda, "probe_environment", lambda device=0: ENV)
    return calls


def test_an_engine_file_opens_without_a_manifest(tmp_path, loads) -> None:
    path = tmp_path / "model.fp16.sm89.trt10.3.engine"
    b = open_file(path, "tensorrt", "fp16", inputs=[Z], outputs=[IMAGE], engine=RECORD)
    assert isinstance(b, TrtBackend) and loads == [(path.name, False)]
    assert (b.info.name, b.info.precision, b.info.file) == ("tensorrt", "fp16", path.name)
    b.close()


def test_an_engine_record_for_another_machine_is_refused_before_loading(tmp_path, loads) -> None:
    path = tmp_path / "model.engine"
    with pytest.raises(IncompatibleEnvironmentError, match="compute capability 8.7"):
        open_file(path, "tensorrt", engine=dict(RECORD, compute_capability="8.7"))
    with pytest.raises(SecurityRefusal, match="host code"):
        open_file(path, "tensorrt", engine=dict(RECORD, version_compatible=True))
    assert loads == []


def test_an_engine_unlike_the_expected_tensors_is_refused(tmp_path, loads) -> None:
    other = TensorSpec("image", np.dtype(np.float32), ("B", 1, 8, 8))
    with pytest.raises(CorruptArtifactError, match="'image' is float32"):
        open_file(tmp_path / "model.engine", "tensorrt", outputs=[other], engine=RECORD)

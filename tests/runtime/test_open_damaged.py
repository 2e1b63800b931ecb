"""Opening damaged bundles (runtime/select.py): tampered graphs, contradicting manifests."""

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genedge.errors import BadInputError, CorruptArtifactError, IntegrityError
from genedge.runtime import Sampler

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs torch for bundles"
)


def _edit_manifest(bundle: Path, edit) -> None:
    path = bundle / "manifest.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


def _second_graph(bundle: Path) -> None:
    """Give the bundle a second ONNX artifact (an fp16-labelled copy) that auto would not pick on CPU."""
    shutil.copy(bundle / "model.onnx", bundle / "model.fp16.onnx")

    def add(raw: dict) -> None:
        rec = dict(next(a for a in raw["artifacts"] if a["file"] == "model.onnx"))
        rec.update(file="model.fp16.onnx", precision="fp16")
        raw["artifacts"].append(rec)

    _edit_manifest(bundle, add)


def test_a_tampered_graph_is_refused_even_when_another_would_run(gan_bundle, bundle_copy) -> None:
    b = bundle_copy(gan_bundle)
    _second_graph(b)
    with Sampler.open(b, precision="fp32") as s:  # intact: opens
        assert s.info.file == "model.onnx"
    data = bytearray((b / "model.fp16.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "model.fp16.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.fp16.onnx") as e:
        Sampler.open(b, precision="fp32")
    assert e.value.exit_code == 4


def test_the_manifest_file_itself_is_accepted_as_the_bundle(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path / "manifest.json") as s, Sampler.open(gan_bundle.path) as t:
        assert np.array_equal(s.sample(2), t.sample(2))


def test_a_manifest_that_contradicts_its_graph_is_corrupt(cgan_bundle, bundle_copy) -> None:
    b = bundle_copy(cgan_bundle)
    _edit_manifest(b, lambda raw: raw["model"].__setitem__("num_classes", 0))
    with pytest.raises(CorruptArtifactError, match="label") as e:
        Sampler.open(b)
    assert e.value.exit_code == 2


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda g: g["inputs"][0].__setitem__("name", "latent"), "inputs"),
        (lambda g: g["outputs"][0].__setitem__("shape", ["B", 99, 99, 3]), "'image' is uint8"),
        (lambda g: g["inputs"][0].__setitem__("dtype", "float16"), "'z' is float16"),
    ],
)
def test_an_io_spec_that_contradicts_the_graph_is_corrupt(
    cgan_bundle, bundle_copy, edit, match
) -> None:
    """C/C++ hosts size their buffers from the manifest's I/O spec: it must describe the graph."""
    b = bundle_copy(cgan_bundle)
    _edit_manifest(b, lambda raw: edit(raw["graphs"]["generator"]))
    with pytest.raises(CorruptArtifactError, match=match) as e:
        Sampler.open(b)
    assert e.value.exit_code == 2 and "re-export" in str(e.value)


def test_tensorrt_never_swaps_the_precision_asked_for(monkeypatch, gan_bundle) -> None:
    """Only an fp16 engine: asking for int8 names what exists instead of running the fp16 one."""
    from genedge.manifest import Artifact, read_manifest
    from genedge.runtime import cuda, registry, trt_backend
    from genedge.runtime.engines import engine_artifact
    from genedge.runtime.options import BackendOptions

    env = trt_backend.TrtEnvironment("10.3.0", "8.7", "Orin")
    monkeypatch.setattr(cuda, "probe_environment", lambda device=0: env)
    m = read_manifest(gan_bundle.path)
    eng = Artifact(
        file="model.fp16.sm87.trt10.3.engine",
        graph="generator",
        format="engine",
        sha256=hashlib.sha256(b"").hexdigest(),
        size=0,
        precision="fp16",
        verification={"verdict": "pass"},
        engine={"tensorrt_version": "10.3.0", "compute_capability": "8.7", "device_name": "Orin"},
    )
    m = type(m)(**{**m.__dict__, "artifacts": (*m.artifacts, eng)})
    trt = registry.spec("tensorrt")
    with pytest.raises(BadInputError, match=r"no int8 TensorRT engine.*model\.fp16\.sm87"):
        engine_artifact(m, "generator", trt, "int8", BackendOptions())
    assert engine_artifact(m, "generator", trt, "fp16", BackendOptions()).file == eng.file

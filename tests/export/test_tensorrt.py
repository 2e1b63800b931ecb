"""TensorRT: pure planning functions on CPU; real engine builds only with a GPU (marked ``gpu``)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from genedge.errors import BadInputError, IncompatibleEnvironmentError
from genedge.export.options import parse_profiles
from genedge.export.stages.tensorrt import (
    LEGACY,
    STRONGLY_TYPED,
    calibration_cache_key,
    choose_build_path,
    engine_file_name,
    engine_record,
    profile_shapes,
    rebatch,
    reusable_calibration_cache,
    source_onnx_for,
)


def test_importing_the_module_does_not_import_tensorrt():
    """In a fresh interpreter: importing the module (and the TRT stage) loads no TensorRT or CUDA."""
    probe = (
        "import sys, genedge.export.stages.tensorrt, genedge.export.stages.trt_stage\n"
        "print(sorted(m for m in ('tensorrt', 'cuda', 'pycuda') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout


def test_parse_profiles():
    assert parse_profiles("1:8:32") == ((1, 8, 32),)
    assert parse_profiles("1:1:1, 16:16:64") == ((1, 1, 1), (16, 16, 64))
    assert parse_profiles("4") == ((4, 4, 4),)
    for bad, msg in (
        ("32:8:1", "MIN 32 is larger than MAX 1"),
        ("1:64:32", "OPT 64"),
        ("0:1:1", "MIN must be"),
        ("1:2", "MIN:OPT:MAX"),
        ("x", "MIN:OPT:MAX"),
        ("", "empty"),
    ):
        with pytest.raises(BadInputError, match=msg):
            parse_profiles(bad)


def test_version_switch():
    assert choose_build_path("11.0.0") == STRONGLY_TYPED
    assert choose_build_path("11.4.1", precision="int8", dla_core=0) == STRONGLY_TYPED
    with pytest.raises(IncompatibleEnvironmentError, match="removed the legacy"):
        choose_build_path("11.0.0", requested=LEGACY)
    assert choose_build_path("10.3.0.30") == STRONGLY_TYPED
    assert choose_build_path("10.3.0", precision="int8", dla_core=0) == LEGACY  # JetPack 6 DLA INT8
    assert choose_build_path("10.3.0", precision="fp32", dla_core=0) == STRONGLY_TYPED
    assert choose_build_path("10.8.0", requested=LEGACY) == LEGACY
    with pytest.raises(IncompatibleEnvironmentError, match="too old"):
        choose_build_path("8.6.1")
    assert source_onnx_for("int8", STRONGLY_TYPED) == "model.int8.onnx"
    assert source_onnx_for("fp16", STRONGLY_TYPED) == "model.fp16.onnx"
    assert source_onnx_for("int8", LEGACY) == "model.onnx"


def test_engine_file_name():
    assert engine_file_name("int8", (8, 7), "10.3.0.30") == "model.int8.sm87.trt10.3.engine"
    assert engine_file_name("fp16", (9, 0), "11.0.1") == "model.fp16.sm90.trt11.0.engine"


def test_profile_shapes():
    inputs = [
        {"name": "z", "shape": ["B", 64]},
        {"name": "label", "shape": ["B"]},
        {"name": "h", "shape": [2, "B", 16]},
    ]
    shapes = profile_shapes(inputs, (1, 8, 32))
    assert shapes["z"] == ((1, 64), (8, 64), (32, 64)) and shapes["label"] == ((1,), (8,), (32,))
    assert shapes["h"] == ((2, 1, 16), (2, 8, 16), (2, 32, 16))


def test_calibration_cache_key_and_staleness():
    calib = {"method": "entropy", "source": "prior", "samples": 512, "seed": 0, "truncation": 1.0}
    key = calibration_cache_key("a" * 64, calib, "10.3.0")
    assert key == calibration_cache_key("a" * 64, dict(calib), "10.3.0.30")  # same major.minor
    assert key != calibration_cache_key("b" * 64, calib, "10.3.0")  # another ONNX
    assert key != calibration_cache_key("a" * 64, dict(calib, samples=256), "10.3.0")
    assert key != calibration_cache_key("a" * 64, calib, "10.4.0")
    prev = {"calibration": {"cache_key": key}}
    assert reusable_calibration_cache(prev, key, b"cache") == b"cache"
    assert reusable_calibration_cache(prev, "other", b"cache") is None  # stale: rebuilt
    assert reusable_calibration_cache(None, key, b"cache") is None


def test_engine_record_matches_the_bundle_contract():
    from genedge.manifest import Artifact

    rec = engine_record(
        trt_version="10.3.0",
        device_name="Orin",
        compute_capability=(8, 7),
        profiles=((1, 8, 32),),
        version_compatible=False,
        dla_core=0,
        built_from="model.onnx",
        path=LEGACY,
        gpu_fallback=True,
    )
    assert rec == {
        "tensorrt_version": "10.3.0",
        "device_name": "Orin",
        "compute_capability": "8.7",
        "profiles": [[1, 8, 32]],
        "version_compatible": False,
        "dla_core": 0,
        "built_from": "model.onnx",
        "path": "legacy",
        "gpu_fallback": True,
    }
    a = Artifact(
        file="model.int8.sm87.trt10.3.engine",
        graph="generator",
        format="engine",
        sha256="0" * 64,
        size=1,
        precision="int8",
        engine=rec,
    )
    assert a.engine.compute_capability == "8.7" and a.engine.dla_core == 0
    assert a.engine.extra == {"gpu_fallback": True} and a.to_dict()["engine"] == rec


def test_rebatch_to_calibration_batch():
    feeds = [{"z": np.zeros((5, 2), np.float32)}, {"z": np.ones((7, 2), np.float32)}]
    out = rebatch(feeds, 4)
    assert [f["z"].shape for f in out] == [(4, 2)] * 3


@pytest.mark.gpu
def test_engine_builds_and_matches_ort(ckpts, tmp_path):
    pytest.importorskip("tensorrt")
    from export_helpers import fast_options

    from genedge.export.bundle import export_bundle
    from genedge.manifest import read_manifest

    out = export_bundle(fast_options(ckpts["gan"], tmp_path / "b", trt=True, profiles=((1, 4, 8),)))
    m = read_manifest(out)
    engines = m.find(format="engine")
    assert {a.precision for a in engines} == {"fp32", "fp16", "int8"}
    for a in engines:
        import tensorrt as trt

        plan = m.path_of(a).read_bytes()  # a raw plan: TensorRT deserializes the file as is
        assert trt.Runtime(trt.Logger()).deserialize_cuda_engine(plan) is not None
        assert a.verification.verdict == "pass", a.verification
        assert a.engine.profiles == ((1, 4, 8),) and a.file.endswith(".engine")
    assert m.find(format="cache")[0].file == "timing.cache"

"""TensorRT engine builds on CPU: option refusals that need no GPU, and ``engine_from_onnx``'s
control flow against a stand-in ``tensorrt`` module.

The stand-in mirrors the documented Python API's shapes (``create_timing_cache``,
``set_timing_cache`` returning False for a cache from another GPU, ``get_timing_cache``
returning the attached cache). It checks our decisions, not TensorRT's behaviour; real
builds are the ``gpu`` tests in test_tensorrt.py.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from genedge.errors import BadInputError, IncompatibleEnvironmentError
from genedge.export.options import ExportOptions, validate_export_options
from genedge.export.stages.tensorrt import (
    STRONGLY_TYPED,
    EngineRequest,
    choose_build_path,
    engine_from_onnx,
    rebatch,
)
from genedge.runtime import cuda


def _opts(tmp_path: Path, **kw) -> ExportOptions:
    return ExportOptions(source=tmp_path / "c.safetensors", out=tmp_path / "b", **kw)


def test_dla_needs_static_profiles(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="DLA runs static shapes") as e:
        validate_export_options(_opts(tmp_path, trt=True, dla_core=0))  # default 1:8:32
    assert e.value.exit_code == 2
    assert "1:8:32" in e.value.message and "--trt-profile 8:8:8" in (e.value.hint or "")
    with pytest.raises(BadInputError, match="MIN = OPT = MAX"):
        validate_export_options(
            _opts(tmp_path, trt=True, dla_core=1, profiles=((4, 4, 4), (1, 2, 8)))
        )
    ok = validate_export_options(_opts(tmp_path, trt=True, dla_core=0, profiles=((8, 8, 8),)))
    assert ok.dla_core == 0
    validate_export_options(_opts(tmp_path, trt=True, profiles=((1, 8, 32),)))  # GPU: dynamic ok


def test_cli_refuses_dla_with_a_dynamic_profile_before_any_probe(ckpts, tmp_path, capsys) -> None:
    """No TensorRT here: a probe first would answer exit 3 (missing extra), not this exit 2."""
    from genedge.cli import main

    code = main(
        ["export", str(ckpts["gan"]), "--out", str(tmp_path / "b"), "--trt", "--dla-core", "0"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "DLA" in err and "--trt-profile 8:8:8" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_dla_core_on_tensorrt_11_before_11_4_1_is_refused() -> None:
    for version in ("11.0.0", "11.3.0.99", "11.4.0.106"):
        with pytest.raises(IncompatibleEnvironmentError, match="no DLA support") as e:
            choose_build_path(version, precision="fp16", dla_core=0)
        assert version in e.value.message and e.value.exit_code == 3
    assert choose_build_path("11.4.1", precision="fp16", dla_core=0) == STRONGLY_TYPED
    assert choose_build_path("11.0.0", precision="fp16") == STRONGLY_TYPED  # GPU build: fine


def test_rebatch_with_fewer_rows_than_one_batch() -> None:
    feeds = [{"z": np.arange(6, dtype=np.float32).reshape(3, 2)}]
    out = rebatch(feeds, 8)
    assert len(out) == 1 and out[0]["z"].shape == (8, 2)
    assert set(map(tuple, out[0]["z"])) == set(map(tuple, feeds[0]["z"]))  # the same rows, repeated
    with pytest.raises(BadInputError, match="no calibration samples"):
        rebatch([{"z": np.zeros((0, 2), np.float32)}], 8)


# ------------------------------------------------------------------ stand-in tensorrt


class _TimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)

    def serialize(self) -> bytes:
        return self.data


class _Config:
    """BuilderConfig: refuses timing caches whose bytes it does not know (another GPU)."""

    def __init__(self, known: set[bytes]) -> None:
        self.known, self.cache, self.flags = known, None, set()

    def set_memory_pool_limit(self, pool, size) -> None:
        pass

    def create_timing_cache(self, data) -> _TimingCache:
        return _TimingCache(data)

    def set_timing_cache(self, cache, ignore_mismatch) -> bool:
        if cache.data not in self.known:
            return False
        self.cache = cache
        return True

    def get_timing_cache(self):
        return self.cache  # None when nothing was attached

    def add_optimization_profile(self, profile) -> int:
        return 0

    def set_flag(self, flag) -> None:
        self.flags.add(flag)


def fake_tensorrt(known_caches: set[bytes], loggers: list) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")

    class ILogger:
        class Severity:
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self) -> None:
            pass

    class Network:
        pass

    class Profile:
        def set_shape(self, name, lo, opt, hi) -> None:
            pass

    class Builder:
        def __init__(self, logger) -> None:
            loggers.append(logger)

        def create_network(self, flags):
            return Network()

        def create_builder_config(self):
            return _Config(known_caches)

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            return b"plan"

    class OnnxParser:
        def __init__(self, network, logger) -> None:
            loggers.append(logger)

        def parse_from_file(self, path) -> bool:
            return True

    trt.ILogger, trt.Builder, trt.OnnxParser = ILogger, Builder, OnnxParser
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=0)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)
    trt.BuilderFlag = types.SimpleNamespace(VERSION_COMPATIBLE=1, GPU_FALLBACK=2, FP16=3, INT8=4)
    trt.__version__ = "10.3.0"
    return trt


@pytest.fixture
def trt_module(monkeypatch):
    loggers: list = []
    trt = fake_tensorrt({b"", b"this-gpu"}, loggers)
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", trt)
    monkeypatch.setattr(cuda, "_LOGGER", None)
    return trt, loggers


def _request(tmp_path: Path) -> EngineRequest:
    return EngineRequest(
        tmp_path / "model.onnx",
        "fp32",
        STRONGLY_TYPED,
        ({"name": "z", "shape": ["B", 4]},),
        ((1, 4, 8),),
    )


def test_a_timing_cache_from_another_gpu_falls_back_to_a_fresh_one(trt_module, tmp_path) -> None:
    logs: list[str] = []
    build = engine_from_onnx(_request(tmp_path), timing_cache=b"other-gpu", log=logs.append)
    assert build.plan == b"plan" and build.timing_cache == b""  # fresh cache, then serialized
    assert any("timing.cache" in m and "fresh" in m for m in logs), logs
    same = engine_from_onnx(_request(tmp_path), timing_cache=b"this-gpu", log=logs.append)
    assert same.timing_cache == b"this-gpu"


def test_builds_and_runtimes_share_one_tensorrt_logger(trt_module, tmp_path) -> None:
    trt, loggers = trt_module
    engine_from_onnx(_request(tmp_path))
    engine_from_onnx(_request(tmp_path))
    assert len(loggers) == 4 and all(lg is loggers[0] for lg in loggers)
    assert cuda.trt_logger(trt) is loggers[0]  # what TrtBackend hands trt.Runtime
    assert isinstance(loggers[0], trt.ILogger)

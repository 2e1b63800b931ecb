"""The trtexec baseline runs an engine only after the runtime's checks, with the engine's flags.

A stand-in ``trtexec`` script on PATH prints the banner of a chosen TensorRT version and
records every invocation, so the tests see whether a refused engine was ever run.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from genedge.bench.trtexec import banner_version, run_trtexec, trtexec_command
from genedge.manifest import engine_record_from
from genedge.runtime.trt_backend import TrtEnvironment

ENV = TrtEnvironment("10.3.0", "8.7", "Orin")
SHAPES = {"z": [1, 16]}


def _record(version: str = "10.3.0", *, vc: bool = False, dla: int | None = None):
    return engine_record_from(
        {
            "tensorrt_version": version,
            "device_name": "Orin",
            "compute_capability": "8.7",
            "profiles": [[1, 1, 1]],
            "version_compatible": vc,
            "dla_core": dla,
            "built_from": "model.onnx",
            "path": "strongly-typed",
        },
        "test",
    )


@pytest.fixture
def trtexec(tmp_path, monkeypatch) -> Path:
    """A fake trtexec (TensorRT 10.3.0 banner) that appends its arguments to calls.txt."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    exe = bin_dir / "trtexec"
    exe.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{calls}"\n'
        'echo "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec $@"\n'
        'echo "[I] GPU Compute Time: min = 0.1 ms, max = 0.3 ms, mean = 0.2 ms, median = 0.2 ms"\n'
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def _runs(calls: Path) -> list[str]:
    lines = calls.read_text().splitlines() if calls.exists() else []
    return [line for line in lines if line != "--help"]


def test_banner_version() -> None:
    assert banner_version("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec") == "10.3.0"
    assert banner_version("[TensorRT v110401]") == "11.4.1"
    assert banner_version("[TensorRT v8601]") == "8.6.1"
    assert banner_version("no banner") is None


def test_command_carries_dla_and_version_compatible_flags(tmp_path) -> None:
    cmd = trtexec_command(
        tmp_path / "e.engine",
        SHAPES,
        seconds=1,
        warmup_ms=10,
        cuda_graph=False,
        dla_core=1,
        version_compatible=True,
    )
    assert "--useDLACore=1" in cmd and "--versionCompatible" in cmd
    plain = trtexec_command(tmp_path / "e.engine", SHAPES, seconds=1, warmup_ms=10, cuda_graph=True)
    assert not any(a.startswith(("--useDLACore", "--versionCompatible")) for a in plain)


def test_an_engine_for_another_tensorrt_is_not_run(trtexec, tmp_path) -> None:
    res = run_trtexec(tmp_path / "e.engine", SHAPES, record=_record("10.4.0"), env=ENV)
    assert res["error"].startswith("not run:") and "10.4.0" in res["error"]
    assert _runs(trtexec) == []


def test_version_compatible_engines_need_the_opt_in(trtexec, tmp_path) -> None:
    rec = _record("10.2.0", vc=True)
    refused = run_trtexec(tmp_path / "e.engine", SHAPES, record=rec, env=ENV)
    assert "host code" in refused["error"] and _runs(trtexec) == []
    ok = run_trtexec(
        tmp_path / "e.engine", SHAPES, record=rec, env=ENV, allow_version_compatible=True
    )
    assert "error" not in ok, ok
    assert "--versionCompatible" in ok["command"] and len(_runs(trtexec)) == 1


def test_a_dla_engine_runs_on_its_core(trtexec, tmp_path) -> None:
    res = run_trtexec(tmp_path / "e.engine", SHAPES, record=_record(dla=0), env=ENV)
    assert "error" not in res, res
    assert "--useDLACore=0" in res["command"] and "gpu_compute" in res

"""Backend/precision choice from a manifest (pure: no files are opened)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genedge.errors import BadInputError
from genedge.manifest import Artifact, Manifest
from genedge.runtime.select import check_names, matching_engines, onnx_artifact
from genedge.runtime.trt_backend import TrtEnvironment

ENV = TrtEnvironment("10.3.0", "8.9", "L4")


def art(
    file, fmt="onnx", precision="fp32", approved=False, verdict="pass", engine=None
) -> Artifact:
    return Artifact(
        file=file,
        graph="generator",
        format=fmt,
        sha256="0" * 64,
        size=1,
        precision=precision,
        verification={"verdict": verdict},
        quality_approved=approved,
        engine=engine,
    )


def manifest(*artifacts: Artifact) -> Manifest:
    return Manifest(
        root=Path("/b"),
        kind="gan",
        model={},
        graphs={},
        artifacts=artifacts,
        producer={},
        source={},
    )


def engine(precision, cc="8.9", version="10.3.0", approved=True) -> Artifact:
    return art(
        f"model.{precision}.sm{cc.replace('.', '')}.trt10.3.engine",
        "engine",
        precision,
        approved,
        engine={"tensorrt_version": version, "compute_capability": cc, "device_name": "L4"},
    )


def test_cpu_picks_int8_only_when_approved() -> None:
    m = manifest(
        art("model.onnx"),
        art("model.fp16.onnx", precision="fp16"),
        art("model.int8.onnx", precision="int8", approved=True),
    )
    assert onnx_artifact(m, "generator", "ort-cpu", None).file == "model.int8.onnx"
    assert onnx_artifact(m, "generator", "ort-cuda", None).file == "model.fp16.onnx"
    m2 = manifest(art("model.onnx"), art("model.int8.onnx", precision="int8", approved=False))
    assert onnx_artifact(m2, "generator", "ort-cpu", None).file == "model.onnx"
    assert (
        onnx_artifact(m2, "generator", "ort-cpu", "int8").file == "model.int8.onnx"
    )  # asked for by name
    with pytest.raises(BadInputError, match="no fp16 ONNX graph"):
        onnx_artifact(m2, "generator", "ort-cpu", "fp16")


def test_engines_ranked_and_filtered() -> None:
    m = manifest(
        engine("fp32"),
        engine("fp16"),
        engine("int8"),
        engine("fp16", cc="8.7"),
        engine("int8", approved=False),
        engine("fp32", version="10.1.0"),
    )
    got = [
        (a.precision, a.file)
        for a in matching_engines(m, "generator", ENV, allow_version_compatible=False)
    ]
    assert [p for p, _ in got] == ["int8", "fp16", "fp32"]
    assert all("sm89" in f for _, f in got)


def test_names() -> None:
    check_names("tensorrt", "int8")
    with pytest.raises(BadInputError, match="Unknown backend"):
        check_names("trt", None)
    with pytest.raises(BadInputError, match="Unknown precision"):
        check_names("auto", "int3")

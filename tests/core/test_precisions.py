"""The precision table: what each precision is, as export, runtime and bench read it."""

from __future__ import annotations

import pytest

from genedge import manifest, precisions


def test_files_follow_the_bundle_contract():
    assert precisions.onnx_file("fp32") == "model.onnx"
    assert precisions.onnx_file("int8") == "model.int8.onnx"
    assert precisions.onnx_file("int4") == "model.int4.onnx"
    suffixes = [p.suffix for p in precisions.TABLE if p.suffix is not None]
    assert len(suffixes) == len(set(suffixes))
    with pytest.raises(KeyError):
        precisions.onnx_file("bf16")  # a way of running the fp32 file, not a file


def test_legacy_tensorrt_int8_also_allows_fp16_kernels():
    assert precisions.trt_flags("int8") == ("FP16", "INT8")
    assert precisions.trt_flags("fp16") == ("FP16",)
    assert precisions.trt_flags("fp32") == ()


def test_kinds_and_approval():
    assert "int4" in precisions.choices("ar") and "int4" not in precisions.choices("gan")
    assert "bf16" in precisions.choices("gan") and "bf16" not in precisions.choices("ar")
    assert precisions.image_precisions() == ("fp32", "fp16", "bf16", "int8")
    approved = {p.name for p in precisions.TABLE if p.needs_approval}
    assert approved == {"bf16", "int8", "int4"}
    assert not precisions.precision("fp16").cpu_compute  # stored, not computed, on a CPU


def test_the_manifest_reads_the_same_table():
    assert manifest.RUN_PRECISIONS is precisions.RUN_PRECISIONS
    assert manifest.INFERENCE_PRECISIONS is precisions.INFERENCE_PRECISIONS
    assert manifest.ARTIFACT_PRECISIONS == ("fp32", "fp16", "int8", "int4")
    assert precisions.RUN_PRECISIONS == ("fp32", "fp16", "bf16", "int8", "int4")

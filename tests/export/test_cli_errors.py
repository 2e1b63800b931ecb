"""Bad inputs through ``genedge.cli.main``: one clear message, the right exit code, no bundle left."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from export_helpers import GAN_CFG

from genedge.cli import main
from genedge.train.checkpoint import save_checkpoint
from genedge.train.gan import Generator


def _run(capsys, *argv) -> tuple[int, str]:
    code = main(["export", *map(str, argv)])
    return code, capsys.readouterr().err


def test_not_a_checkpoint(tmp_path, capsys):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1}        ')
    code, err = _run(capsys, junk, "--out", tmp_path / "b")
    assert code == 2 and "junk.safetensors" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_truncated_checkpoint(ckpts, tmp_path, capsys):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(ckpts["gan"].read_bytes()[:500])
    code, err = _run(capsys, cut, "--out", tmp_path / "b")
    assert code == 2 and "cut.safetensors" in err
    assert not (tmp_path / "b").exists()


def test_nan_weights_are_named(tmp_path, capsys):
    g = Generator(GAN_CFG)
    with torch.no_grad():
        g.to_img.weight[0, 0, 0, 0] = float("nan")
        g.fc.bias[1] = float("inf")
    ckpt = save_checkpoint(tmp_path / "nan.safetensors", g, GAN_CFG, kind="gan")
    code, err = _run(capsys, ckpt, "--out", tmp_path / "b")
    assert code == 2 and "to_img.weight" in err and "fc.bias" in err and "NaN/Inf" in err
    assert not (tmp_path / "b").exists()


def test_unknown_precision(ckpts, tmp_path, capsys):
    code, err = _run(capsys, ckpts["gan"], "--out", tmp_path / "b", "--precision", "fp32,int3")
    assert code == 2 and "'int3'" in err and "fp32, fp16, bf16, int8" in err
    assert not (tmp_path / "b").exists()


def test_int4_is_for_language_models_only(ckpts, tmp_path, capsys):
    code, err = _run(capsys, ckpts["gan"], "--out", tmp_path / "b", "--precision", "fp32,int4")
    assert code == 2 and "transformer language models only" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("batch", ["32:8:1", "8:1:4", "a:b:c", "0:1:2"])
def test_bad_batch_range(ckpts, tmp_path, capsys, batch):
    code, err = _run(capsys, ckpts["gan"], "--out", tmp_path / "b", "--trt-profile", batch)
    assert code == 2 and "--trt-profile" in err
    assert not (tmp_path / "b").exists()


def test_min_larger_than_max_names_both(ckpts, tmp_path, capsys):
    _, err = _run(capsys, ckpts["gan"], "--out", tmp_path / "b", "--trt-profile", "1:8:32,32:8:1")
    assert "MIN 32 is larger than MAX 1" in err


def test_old_batch_spelling_still_works_and_says_deprecated(ckpts, tmp_path, capsys):
    code, err = _run(capsys, ckpts["gan"], "--out", tmp_path / "b", "--batch", "32:8:1")
    assert code == 2 and "--batch is deprecated here; use --trt-profile" in err
    assert "--trt-profile 32:8:1: MIN 32 is larger than MAX 1" in err


def test_dla_core_without_trt(ckpts, tmp_path, capsys):
    code, err = _run(capsys, ckpts["gan"], "--out", tmp_path / "b", "--dla-core", "0")
    assert code == 2 and "--dla-core" in err and "--trt" in err


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed"
)
def test_trt_without_tensorrt(ckpts, tmp_path, capsys):
    code, err = _run(capsys, ckpts["gan"], "--out", tmp_path / "b", "--trt")
    assert code == 3 and "genedge[trt]" in err and "tensorrt" in err
    assert not (tmp_path / "b").exists()


def test_missing_checkpoint(tmp_path, capsys):
    code, err = _run(capsys, tmp_path / "nope.safetensors", "--out", tmp_path / "b")
    assert code == 2 and "does not exist" in err


def test_cli_export_prints_summary(ckpts, tmp_path, capsys):
    code = main(
        [
            "export",
            str(ckpts["gan"]),
            "--out",
            str(tmp_path / "b"),
            "--precision",
            "fp32",
            "--calib-samples",
            "16",
            "--triton",
            str(tmp_path / "triton"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "model.onnx" in out and "pass" in out
    assert (tmp_path / "triton" / "b_generator" / "config.pbtxt").is_file()
    assert (tmp_path / "triton" / "b_generator" / "1" / "model.onnx").is_file()


def test_the_summary_escapes_a_hostile_source_name(ckpts, tmp_path, capsys):
    import shutil

    evil = tmp_path / "odd \x1b[31mname [bold].safetensors"
    shutil.copy(ckpts["gan"], evil)
    argv = ["export", str(evil), "--out", str(tmp_path / "b"), "--precision", "fp32"]
    assert main([*argv, "--calib-samples", "16"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[31m" not in out and "\\x1b[31mname" in out.replace("\n", "")


def test_a_missing_module_file_is_called_missing(tmp_path, capsys):
    args = ("--module", tmp_path / "none.py:G", "--weights", "none", "--latent-dim", "8")
    code, err = _run(capsys, *args, "--out", tmp_path / "b")
    assert code == 2 and "none.py' does not exist" in err and "not a Python file" not in err
    (tmp_path / "notes.txt").write_text("x")
    code, err = _run(
        capsys,
        "--module",
        f"{tmp_path / 'notes.txt'}:G",
        "--weights",
        "none",
        "--latent-dim",
        "8",
        "--out",
        tmp_path / "b",
    )
    assert code == 2 and "is not a Python file" in err

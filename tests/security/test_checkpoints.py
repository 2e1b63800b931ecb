"""Checkpoints that could hurt: pickles that run code, truncated/garbage files, hostile headers."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from genedge.errors import CorruptArtifactError, SecurityRefusal  # noqa: E402
from genedge.train import load_checkpoint, read_checkpoint_info, save_checkpoint  # noqa: E402
from genedge.train.checkpoint import torch_load_weights_only  # noqa: E402
from genedge.train.gan import GanConfig, Generator  # noqa: E402

UNSAFE_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "0"}
REPO = Path(__file__).resolve().parents[2]


class _Touch:
    """Unpickling this creates ``path`` (what an attacker would replace by anything)."""

    def __init__(self, path: Path, how: str) -> None:
        self.path, self.how = str(path), how

    def __reduce__(self):
        if self.how == "system":
            return (os.system, (f"touch '{self.path}'",))
        return (open, (self.path, "w"))


def _plant(folder: Path, how: str = "system", fmt: str = "zip") -> tuple[Path, Path]:
    """A .pt that looks like a genedge generator and whose pickle creates a sentinel file."""
    sentinel = folder / f"PWNED-{how}-{fmt}"
    payload = {
        "format": "genedge.checkpoint",
        "kind": "gan",
        "config": "{}",
        "state_dict": {"x": torch.zeros(1)},
        "evil": _Touch(sentinel, how),
    }
    path = folder / f"evil-{how}-{fmt}.pt"
    if fmt == "zip":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    return path, sentinel


@pytest.fixture
def good_ckpt(tmp_path: Path) -> Path:
    cfg = GanConfig(latent_dim=8, g_width=16, image_size=8)
    return save_checkpoint(tmp_path / "generator.safetensors", Generator(cfg), cfg, kind="gan")


@pytest.mark.parametrize("how", ["system", "open"])
def test_the_planted_pickle_really_runs_code_when_loaded_unsafely(tmp_path, how):
    """The payload is live: torch.load(weights_only=False) creates the sentinel."""
    path, sentinel = _plant(tmp_path, how)
    torch.load(path, weights_only=False)
    assert sentinel.exists()


@pytest.mark.parametrize("how", ["system", "open"])
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("env", [{}, UNSAFE_ENV], ids=["plain-env", "unsafe-env"])
def test_a_code_running_pickle_is_refused(tmp_path, monkeypatch, how, fmt, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    path, sentinel = _plant(tmp_path, how, fmt)
    for load in (load_checkpoint, read_checkpoint_info, torch_load_weights_only):
        with pytest.raises(SecurityRefusal) as info:
            load(path)
        assert info.value.exit_code == 4 and str(path) in str(info.value)
        assert "weights_only=False" not in str(info.value)  # never advise unsafe loading
    assert not sentinel.exists()


def test_a_pickle_named_safetensors_is_refused_by_the_safetensors_parser(tmp_path):
    path, sentinel = _plant(tmp_path)
    renamed = path.rename(tmp_path / "generator.safetensors")
    with pytest.raises(CorruptArtifactError) as info:
        load_checkpoint(renamed)
    assert info.value.exit_code == 2 and not sentinel.exists()


def _cli_args(command: str, path: Path, tmp_path: Path) -> list[str]:
    module = {"eval": "genedge.train.commands", "export": "genedge.export.commands"}[command]
    pytest.importorskip(module)
    return [command, str(path)] + (
        ["--out", str(tmp_path / "bundle")] if command == "export" else []
    )


@pytest.mark.parametrize("command", ["eval", "export"])
def test_the_cli_refuses_the_planted_pickle_with_unsafe_env(tmp_path, monkeypatch, capsys, command):
    from genedge.cli import main

    for k, v in UNSAFE_ENV.items():
        monkeypatch.setenv(k, v)
    path, sentinel = _plant(tmp_path)
    assert main(_cli_args(command, path, tmp_path)) == 4
    err = capsys.readouterr().err
    assert "Refusing" in err and "Traceback" not in err
    assert not sentinel.exists()
    assert not (tmp_path / "bundle" / "manifest.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["eval", "export"])
def test_the_cli_subprocess_refuses_the_planted_pickle_with_unsafe_env(tmp_path, command):
    path, sentinel = _plant(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "genedge", *_cli_args(command, path, tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **UNSAFE_ENV, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not sentinel.exists()


@pytest.mark.parametrize("command", ["eval", "export"])
@pytest.mark.parametrize("payload", [b"", b"\x00garbage" * 10])
def test_the_cli_calls_a_garbage_checkpoint_corrupt(tmp_path, capsys, command, payload):
    from genedge.cli import main

    path = tmp_path / "generator.safetensors"
    path.write_bytes(payload)
    assert main(_cli_args(command, path, tmp_path)) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


# ---- truncated, empty and garbage files: exit 2, file named, no raw trace ------------------


def _corrupt(path: Path) -> CorruptArtifactError:
    with pytest.raises(CorruptArtifactError) as info:
        load_checkpoint(path)
    e = info.value
    assert e.exit_code == 2 and str(path) in str(e)
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)
    return e


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_empty_checkpoints_are_corrupt(tmp_path, suffix):
    path = tmp_path / f"generator{suffix}"
    path.write_bytes(b"")
    _corrupt(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
@pytest.mark.parametrize(
    "garbage", [b"\x00" * 100, b"hello world, not a model\n" * 20, os.urandom(512)]
)
def test_garbage_checkpoints_are_corrupt(tmp_path, suffix, garbage):
    path = tmp_path / f"generator{suffix}"
    path.write_bytes(garbage)
    _corrupt(path)


def test_truncated_safetensors_are_corrupt_at_every_cut(good_ckpt):
    data = good_ckpt.read_bytes()
    for cut in (1, 7, 8, 9, 20, len(data) // 3, len(data) // 2, len(data) - 1):
        good_ckpt.write_bytes(data[:cut])
        _corrupt(good_ckpt)


def test_truncated_pt_is_corrupt(tmp_path):
    cfg = GanConfig(latent_dim=8, g_width=16, image_size=8)
    path = tmp_path / "generator.pt"
    torch.save(
        {
            "format": "genedge.checkpoint",
            "kind": "gan",
            "config": json.dumps(cfg.__dict__),
            "state_dict": Generator(cfg).state_dict(),
        },
        path,
    )
    assert load_checkpoint(path)[1] == cfg  # the intact file loads
    data = path.read_bytes()
    for cut in (3, 30, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        _corrupt(path)


# ---- adversarial safetensors headers, refused by the official parser ------------------------

META = {
    "format": "genedge.checkpoint",
    "version": "1",
    "kind": "gan",
    "config": json.dumps({"latent_dim": 8, "g_width": 16, "image_size": 8}),
}


def _safetensors(
    path: Path, header: dict | bytes, data: bytes, declared: int | None = None
) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if declared is None else declared
    path.write_bytes(struct.pack("<Q", n) + raw + data)
    return path


@pytest.mark.parametrize(
    "case",
    [
        "overlap",
        "gap",
        "past-end",
        "size-mismatch",
        "unknown-dtype",
        "not-json",
        "huge-header",
        "header-past-file",
        "metadata-not-strings",
        "negative-offset",
        "non-list-shape",
    ],
)
def test_adversarial_safetensors_headers_are_corrupt(tmp_path, case):
    t = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
    header: dict | bytes = {"__metadata__": META, "a": t, "b": {**t, "data_offsets": [16, 32]}}
    data, declared = b"\0" * 32, None
    if case == "overlap":
        header["b"]["data_offsets"] = [8, 24]
    elif case == "gap":
        header["b"]["data_offsets"] = [20, 36]
        data = b"\0" * 36
    elif case == "past-end":
        header["b"]["data_offsets"] = [16, 4096]
    elif case == "size-mismatch":
        header["a"]["shape"] = [400]
    elif case == "unknown-dtype":
        header["a"]["dtype"] = "F99"
    elif case == "not-json":
        header = b"{this is not json"
    elif case == "huge-header":
        declared = 2**62
    elif case == "header-past-file":
        declared = 10_000
    elif case == "metadata-not-strings":
        header["__metadata__"] = {**META, "step": 3}
    elif case == "negative-offset":
        header["a"]["data_offsets"] = [-16, 16]
    elif case == "non-list-shape":
        header["a"]["shape"] = "4"
    path = _safetensors(tmp_path / "generator.safetensors", header, data, declared)
    _corrupt(path)


def test_a_config_that_would_allocate_terabytes_is_refused_before_allocating(tmp_path, good_ckpt):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(good_ckpt), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        meta = dict(f.metadata())
    meta["config"] = json.dumps({"latent_dim": 10**9, "g_width": 10**6, "image_size": 8})
    save_file(tensors, str(tmp_path / "huge.safetensors"), metadata=meta)
    e = _corrupt(tmp_path / "huge.safetensors")
    assert "does not match its own config" in str(e)


@pytest.mark.parametrize(
    "config",
    [
        "[1, 2]",
        '{"image_size": 0}',
        '{"latent_dim": "x"}',
        "{",
        '{"image_size": -8}',
        '{"num_classes": -3}',
    ],
)
def test_unbuildable_configs_are_corrupt(tmp_path, good_ckpt, config):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(good_ckpt), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        meta = {**f.metadata(), "config": config}
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    _corrupt(tmp_path / "bad.safetensors")


def test_a_non_numeric_step_is_corrupt(tmp_path, good_ckpt):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(good_ckpt), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        meta = {**f.metadata(), "step": "many"}
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    _corrupt(tmp_path / "bad.safetensors")


def test_the_intact_checkpoint_still_loads(good_ckpt):
    model, cfg = load_checkpoint(good_ckpt)
    assert cfg.latent_dim == 8 and model(torch.zeros(2, 8), None).shape == (2, 1, 8, 8)

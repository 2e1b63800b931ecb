"""Training options that make no sense are one-line errors before any training starts."""

from __future__ import annotations

import dataclasses

import pytest

from genedge.errors import BadInputError
from genedge.limits import max_threads
from genedge.train.options import TrainOptions, validate_options

BASE = TrainOptions(kind="gan", data="digits", out="run")


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", float("nan")),
        ("lr", float("inf")),
        ("lr", -1e-3),
        ("lr", 0.0),
        ("minutes", float("nan")),
        ("minutes", float("inf")),
        ("threads", 10**6),
        ("threads", max_threads() + 1),
        ("batch_size", 10**9),
        ("image_size", 10**6),
        ("latent_dim", 10**9),
        ("eval_samples", 0),
        ("eval_samples", 10**9),
        ("log_every", 0),
        ("device", "cudax"),
        ("device", "cuda:"),
        ("device", "gpu"),
        ("data", ""),
        ("data", "  "),
        ("seed", -1),
        ("seed", 2**64),
        ("seed", 1.5),
    ],
)
def test_nonsense_options_are_refused(field, value):
    with pytest.raises(BadInputError) as info:
        validate_options(dataclasses.replace(BASE, **{field: value}))
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


def test_sensible_options_pass():
    validate_options(dataclasses.replace(BASE, lr=1e-3, threads=1, device="cuda:0"))


def _run(tmp_path, capsys, *extra: str) -> tuple[int, str]:
    from genedge.cli import main

    out = tmp_path / "run"
    code = main(["train", "vae", "--data", "digits", "--out", str(out), "--steps", "1", *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("lr", ["nan", "inf", "-1", "-inf"])
def test_train_cli_refuses_a_nonsense_learning_rate(tmp_path, capsys, lr):
    code, err = _run(tmp_path, capsys, f"--lr={lr}")
    assert code == 2, err
    assert "--lr" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_train_cli_on_a_cpu_only_torch_refuses_cuda_with_exit_3(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this torch has a CUDA GPU")
    code, err = _run(tmp_path, capsys, "--device", "cuda")
    assert code == 3, err
    assert "CUDA" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("n", ["0", "-5", "1000000000"])
def test_eval_refuses_a_sample_count_past_the_limit_before_reading(tmp_path, capsys, n):
    from genedge.cli import main

    ckpt = tmp_path / "g.safetensors"
    ckpt.write_bytes(b"not read: the count is checked first")
    code = main(["eval", str(ckpt), "-n", n])
    err = capsys.readouterr().err
    assert code == 2 and "eval -n" in err and "Traceback" not in err, err

"""`genedge bench` user errors: one line, no traceback, exit 2."""

from __future__ import annotations

import pytest

from genedge.bench.options import BenchOptions, validate_options
from genedge.cli import main
from genedge.errors import BadInputError


def test_missing_bundle_exits_2(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "genedge bench: error:" in err and "Traceback" not in err


def test_folder_without_manifest_exits_2(tmp_path, capsys):
    assert main(["bench", str(tmp_path)]) == 2
    assert "manifest.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags",
    [
        ["--batch", "0"],
        ["--backend", "cuda"],
        ["--precision", "fp8"],
        ["--iters", "0"],
        ["--baselines", "tflite"],
        ["--fps", "-1"],
    ],
)
def test_bad_flags_exit_2(tmp_path, capsys, flags):
    assert main(["bench", str(tmp_path), *flags]) == 2
    assert "bench option" in capsys.readouterr().err


def test_validate_names_the_option():
    with pytest.raises(BadInputError, match="--warmup"):
        validate_options(BenchOptions(bundle=".", warmup=-1))


def test_make_reference_script_parses_and_names_an_unknown_model(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[2] / "bench" / "results" / "make_reference.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    env = {**os.environ, "MODELS": "mnist32", "OUT": str(tmp_path / "out")}
    env["PYTHON"] = sys.executable
    res = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "unknown model 'mnist32'" in res.stderr

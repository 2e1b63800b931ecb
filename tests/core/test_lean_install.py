"""A lean runtime install (`pip install 'genedge[cpu]'`: numpy and onnxruntime) on its own.

One fresh interpreter runs each command: the runtime's commands work on a bundle and an ONNX
file, and every other command exits 3 with one line naming the extra to install. The bundles
are exported beforehand, in this process, from tiny checkpoints.

By default that interpreter is this one with every package of the other extras made
unimportable. With ``GENEDGE_LEAN_PYTHON`` set (``make lean-check``, which CI runs) it is the
Python of a separate virtual environment where only ``genedge[cpu]`` is installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

EXPORT_TESTS = Path(__file__).parents[1] / "export"
# the import names of the train, export, openvino and trt extras' packages (pyproject.toml)
NOT_IN_CPU = (
    "torch",
    "torchvision",
    "sklearn",
    "cv2",
    "safetensors",
    "rich",
    "matplotlib",
    "onnx",
    "onnxslim",
    "onnxconverter_common",
    "openvino",
    "tensorrt",
)
LEAN_PYTHON = os.environ.get("GENEDGE_LEAN_PYTHON")
DRIVER = """
import contextlib, io, json, sys
for name in {blocked!r}:
    sys.modules[name] = None
from genedge.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    results.append({{"argv": argv, "rc": rc, "err": err.getvalue()}})
json.dump(results, open(sys.argv[2], "w"))
"""


@pytest.fixture(scope="module")
def lean_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXPORT_TESTS))
        from export_helpers import GAN_CFG, GRU_CFG, fast_options, make_checkpoint

    from genedge.export.bundle import export_bundle

    root = tmp_path_factory.mktemp("lean")
    gan = make_checkpoint(root / "gan.safetensors", "gan", GAN_CFG)
    export_bundle(fast_options(gan, root / "gan", precisions=("fp32",)))
    ar = make_checkpoint(root / "ar.safetensors", "ar", GRU_CFG)
    export_bundle(fast_options(ar, root / "ar", precisions=("fp32",)))
    commands = {
        "sample": ["sample", f"{root}/gan", "-n", "4", "--out", f"{root}/grid.png"],
        "live": ["live", f"{root}/gan", "--seconds", "0.2", "--realtime-priority", "0"],
        "generate": ["generate", f"{root}/ar", "--prompt", "ab", "--max-new-tokens", "5"],
        "bench": [
            *("bench", f"{root}/gan", "--batch", "1", "--iters", "3", "--warmup", "1"),
            *("--rounds", "2", "--cold-runs", "0", "--baselines", "torch,ort"),
        ],
        "tune": ["tune", f"{root}/gan", "--batch", "1", "--seconds", "0.3"],
        "inspect bundle": ["inspect", f"{root}/gan"],
        "inspect onnx": ["inspect", f"{root}/gan/model.onnx"],
        "inspect checkpoint": ["inspect", str(gan)],
        "train": ["train", "gan", "--data", "digits", "--out", f"{root}/run"],
        "eval checkpoint": ["eval", str(gan)],
        "eval bundle": ["eval", f"{root}/gan"],
        "export": ["export", str(gan), "--out", f"{root}/b2"],
        "demo": ["demo", "--quick", "--out", f"{root}/demo"],
    }
    out = root / "results.json"
    proc = subprocess.run(
        [
            LEAN_PYTHON or sys.executable,
            "-c",
            DRIVER.format(blocked=() if LEAN_PYTHON else NOT_IN_CPU),
            json.dumps(list(commands.values())),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GENEDGE_CACHE": str(root / "cache")},  # tune's cache
    )
    assert proc.returncode == 0, proc.stderr
    return dict(zip(commands, json.loads(out.read_text()), strict=True)), root


@pytest.mark.parametrize(
    "command",
    [
        "sample",
        "live",
        "generate",
        "bench",
        "tune",
        "inspect bundle",
        "inspect onnx",
        "eval bundle",
    ],
)
def test_the_runtime_commands_work_with_the_cpu_extra_alone(lean_run, command):
    results, _ = lean_run
    assert results[command]["rc"] == 0, results[command]["err"]


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("inspect checkpoint", "train"),
        ("train", "train"),
        ("eval checkpoint", "train"),
        ("export", None),
        ("demo", "train"),
    ],
)
def test_every_other_command_names_its_extra(lean_run, command, extra):
    results, root = lean_run
    r = results[command]
    assert r["rc"] == 3, r["err"]
    assert r["err"].count("\n") == 1 and "Traceback" not in r["err"], r["err"]
    assert "is not installed" in r["err"] and "pip install 'genedge[" in r["err"]
    if extra:
        assert f"pip install 'genedge[{extra}]'" in r["err"], r["err"]
    assert not (root / "b2").exists() and not (root / "run").exists()


@pytest.mark.skipif(not LEAN_PYTHON, reason="GENEDGE_LEAN_PYTHON not set (make lean-check sets it)")
def test_the_lean_environment_really_lacks_the_other_extras():
    probe = "import importlib.util as u, json; print(json.dumps([n for n in %r if u.find_spec(n)]))"
    proc = subprocess.run(
        [LEAN_PYTHON, "-c", probe % (NOT_IN_CPU,)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [], proc.stdout

"""`genedge demo --quick`: the README's first command end to end, in a few seconds of training.

The full demo (`make demo`, ~8 minutes) is what a new user runs; this smoke version runs the
same plan with a few steps per stage so a broken stage fails the default test run.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

needs = [
    m
    for m in ("torch", "onnx", "onnxruntime", "cv2", "sklearn")
    if importlib.util.find_spec(m) is None
]
pytestmark = pytest.mark.skipif(bool(needs), reason=f"the demo needs {needs}")


def test_quick_demo_writes_every_artifact(tmp_path) -> None:
    out = tmp_path / "demo-out"
    r = subprocess.run(
        [sys.executable, "-m", "genedge", "demo", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    for rel in (
        "samples.png",
        "walk.mp4",
        "live.json",
        "bench.json",
        "bench.md",
        "bench.png",
        "gan-bundle/manifest.json",
        "vae-bundle/manifest.json",
        "ar-bundle/manifest.json",
    ):
        assert (out / rel).is_file() and (out / rel).stat().st_size > 0, rel
    live = json.loads((out / "live.json").read_text())
    assert live["frames"] > 0 and live["tile"] == 10 and live["frames"] + live["dropped"] == 60
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Demo finished" in r.stdout and "missed deadlines" in r.stdout


def test_a_killed_demos_leftovers_do_not_block_a_rerun(tmp_path):
    from genedge.demo import check_demo_out
    from genedge.errors import BadInputError

    out = tmp_path / "demo-out"
    (out / "gan").mkdir(parents=True)
    (out / ".genedge-tmp-99999-abcd-gan-bundle").mkdir()
    (out / ".genedge.lock").write_bytes(b"")
    check_demo_out(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="notes.txt"):
        check_demo_out(out)

"""``genedge train`` answers a bad flag before it imports torch or reads any data."""

from __future__ import annotations

import subprocess
import sys


def test_a_bad_flag_is_refused_before_torch_loads(tmp_path):
    code = (
        "import sys; from genedge.cli import main; "
        f"rc = main(['train', 'gan', '--data', 'digits', '--steps', '0', '--out', '{tmp_path}/r']); "
        "print(rc, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "False"], out.stderr
    assert "--steps: received 0" in out.stderr and not (tmp_path / "r").exists()


def test_the_package_still_offers_its_entry_points():
    import genedge.train as train

    assert callable(train.load_checkpoint) and callable(train.train_run)
    assert train.TrainOptions.__name__ == "TrainOptions"

"""`genedge sample` and `genedge live` (runtime/commands.py): one-line errors and exit codes."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs torch for bundles"
)


def test_cli_bad_seed_and_out_folder_are_one_line_exit_2(gan_bundle, tmp_path, capsys) -> None:
    from genedge.cli import main

    assert (
        main(
            [
                "sample",
                str(gan_bundle.path),
                "-n",
                "2",
                "--seed",
                "-1",
                "--out",
                str(tmp_path / "a.png"),
            ]
        )
        == 2
    )
    assert main(["sample", str(gan_bundle.path), "-n", "2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "seed -1" in err and "is a folder" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_window_without_a_display_is_exit_3(gan_bundle, monkeypatch, capsys) -> None:
    pytest.importorskip("cv2")
    from genedge.cli import main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["live", str(gan_bundle.path), "--seconds", "0.2", "--window"]) == 3
    assert "--video" in capsys.readouterr().err

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


@pytest.mark.parametrize(
    ("argv", "batch"),
    [
        (["sample", "-n", "16"], 16),
        (["live", "--tile", "4", "--seconds", "0.2", "--realtime-priority", "0"], 4),
    ],
)
def test_the_cli_tells_auto_the_batch_it_will_run(gan_bundle, tmp_path, monkeypatch, argv, batch):
    """A tuned ``auto`` picks per batch size: sample's -n and live's --tile are that size."""
    from genedge.cli import main
    from genedge.runtime.sampler import Sampler

    seen = []
    real = Sampler.open.__func__

    def spy(cls, bundle, **kw):
        seen.append(kw.get("batch"))
        return real(cls, bundle, **kw)

    monkeypatch.setattr(Sampler, "open", classmethod(spy))
    out = ["--out", str(tmp_path / "g.png")] if argv[0] == "sample" else []
    assert main([argv[0], str(gan_bundle.path), *argv[1:], *out]) == 0
    assert seen == [batch]

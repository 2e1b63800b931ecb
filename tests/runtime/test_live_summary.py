"""`genedge live`'s summary: printed on Ctrl-C too, and its misses read beside its jitter."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")

from genedge.cli import main  # noqa: E402
from genedge.runtime import Sampler  # noqa: E402
from genedge.runtime.commands import summary_table  # noqa: E402


class _InterruptedAfter:
    """A stream that the user stops with Ctrl-C after ``n`` frames."""

    def __init__(self, stream, n: int) -> None:
        self._stream, self._n, self.stats = stream, n, stream.stats

    def __enter__(self):
        self._stream.__enter__()
        return self

    def __exit__(self, *exc):
        return self._stream.__exit__(*exc)

    def close(self) -> None:
        self._stream.close()

    def __iter__(self):
        for i, frame in enumerate(self._stream):
            if i == self._n:
                raise KeyboardInterrupt
            yield frame


def test_ctrl_c_still_prints_the_summary_of_the_frames_run(gan_bundle, monkeypatch, capsys):
    real = Sampler.stream
    monkeypatch.setattr(Sampler, "stream", lambda s, **kw: _InterruptedAfter(real(s, **kw), 3))
    argv = ["live", str(gan_bundle.path), "--fps", "30", "--seconds", "5"]
    assert main([*argv, "--realtime-priority", "0"]) == 130
    out, err = capsys.readouterr()
    assert "frames" in out and "missed deadlines" in out and "interrupted" in err
    frames = next(ln for ln in out.splitlines() if ln.startswith("frames "))
    assert int(frames.split()[-1]) in (3, 4)  # the frames before Ctrl-C, not the 150 asked for


def test_misses_say_whether_frames_came_late_or_were_dropped():
    class Stats:
        frames, missed_deadlines, dropped, late_delivered, fps = 29, 1, 1, 0, 29.0
        jitter_p50_s = jitter_p99_s = jitter_max_s = 0.0
        latency_p50_s = latency_p99_s = 0.001
        scheduling = "normal"

    text = summary_table(Stats(), 30.0)
    assert "missed deadlines                 1 (0 shown late, 1 dropped)" in text
    assert "0.000 / 0.000 / 0.000 ms (between frames shown)" in text


@pytest.mark.parametrize("flag", ["--tile", "--batch"])
def test_tile_tiles_frames_and_the_old_spelling_says_deprecated(gan_bundle, tmp_path, capsys, flag):
    out = tmp_path / "live.json"
    argv = ["live", str(gan_bundle.path), "--fps", "20", "--seconds", "0.3", flag, "4"]
    assert main([*argv, "--realtime-priority", "0", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["tile"] == 4
    err = capsys.readouterr().err
    assert ("--batch is deprecated here; use --tile" in err) == (flag == "--batch")

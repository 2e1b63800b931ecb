"""Real-time and text summaries on synthetic timestamps; the fps bisection on a fake stream."""

from __future__ import annotations

import pytest

from genedge.bench.realtime import highest_fps, runtime_missed, summarize_stream
from genedge.bench.text import summarize_text, time_stream


def test_stream_summary_counts_late_intervals():
    ms = 1_000_000
    arrivals = [0, 10 * ms, 20 * ms, 45 * ms, 55 * ms]  # one 25 ms gap at 100 fps
    s = summarize_stream(arrivals, 100.0, 0.05, {})
    assert s["late_intervals"] == 1 and s["missed_deadlines"] == 1
    assert s["missed_source"].startswith("intervals")
    assert s["interval"]["max"] == pytest.approx(25.0)
    assert s["jitter"]["max"] == pytest.approx(15.0)
    assert s["achieved_fps"] == pytest.approx(4 / 0.055)


def test_stream_summary_prefers_the_runtime_counter():
    s = summarize_stream([0, 10_000_000], 100.0, 0.02, {"missed_deadlines": 3, "frames": 2})
    assert s["missed_deadlines"] == 3 and s["missed_source"] == "runtime"
    assert runtime_missed({"missed": 0}) == 0 and runtime_missed({"frames": 4}) is None


def test_highest_fps_bisection_finds_the_limit():
    tried = []

    def holds(fps: float) -> bool:
        tried.append(fps)
        return fps <= 137.0

    fps, capped = highest_fps(holds, 1000.0, steps=8)
    assert not capped and 137.0 * 0.95 <= fps <= 137.0
    assert highest_fps(lambda f: True, 500.0) == (500.0, True)
    assert highest_fps(lambda f: False, 500.0) == (0.0, False)


def test_text_summary():
    ms = 1_000_000
    runs = [[5 * ms, 6 * ms, 7 * ms], [4 * ms, 5 * ms, 6 * ms]]
    s = summarize_text(runs)
    assert s["runs"] == 2 and s["tokens"] == 6
    assert s["time_to_first_token"]["p50"] == pytest.approx(4.5)
    assert s["per_token"]["p50"] == pytest.approx(1.0)
    assert s["tokens_per_s"] == pytest.approx(6 / 0.013)
    assert s["decode_tokens_per_s"] == pytest.approx(1000.0)
    assert len(time_stream(lambda: iter("abc"))) == 3

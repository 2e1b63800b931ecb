"""Stream arguments that are non-finite or mistyped, and the drop policy under slow inference."""

import importlib.util
import time

import pytest

from genedge.errors import BadInputError
from genedge.runtime import Sampler

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs torch for bundles"
)


@pytest.mark.parametrize(
    "kw",
    [
        {"fps": float("inf")},
        {"fps": float("nan")},
        {"seconds": float("inf")},
        {"batch": 1.5},
        {"ring": "3"},
        {"period_s": float("inf")},
        {"period_s": -1},
        {"period_s": "abc"},
        {"late_tolerance_s": -1},
        {"spin_s": float("nan")},
        {"fps": 1e300, "seconds": 1e300},
    ],
)
def test_non_finite_or_mistyped_stream_arguments(gan_bundle, kw) -> None:
    with Sampler.open(gan_bundle.path) as s, pytest.raises(BadInputError, match="stream"):
        s.stream(**{"fps": 30, **kw})


def test_achieved_fps_counts_intervals_not_frames(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        stream = s.stream(fps=30, seconds=1.0, late="block")
        n = sum(1 for _ in stream)
    assert n == 30 and 29.0 < stream.stats.fps < 30.6, stream.stats  # 30 frames over 29 intervals


def test_a_very_slow_stream_starts_promptly(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        t = time.perf_counter()
        frames = list(s.stream(fps=1e-7, seconds=1.0))
    assert len(frames) == 1 and time.perf_counter() - t < 5  # not a period (115 days) later


def test_a_stream_is_iterated_once_and_keeps_its_stats(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        stream = s.stream(fps=60, seconds=0.2)
        first = sum(1 for _ in stream)
        stats = stream.stats.to_dict()
        assert first >= 1 and sum(1 for _ in stream) == 0
        assert (
            stream.stats.frames == stats["frames"]
            and stream.stats.elapsed_s == stats["elapsed_s"] > 0
        )


def test_drop_policy_keeps_delivering_when_inference_is_slower_than_a_frame(gan_bundle) -> None:
    """25 ms frames at 100 fps: the worker aims at the slot it can make, so ~40 frames/s arrive on time
    (aiming at the slot due *now* made every frame late, and drop delivered almost none)."""
    with Sampler.open(gan_bundle.path) as s:
        run = s.backend._run

        def slow_run(feed, out):
            time.sleep(0.025)
            return run(feed, out)

        s.backend._run = slow_run
        stream = s.stream(fps=100, seconds=1.5, late="drop", realtime_priority=10)
        frames = list(stream)
        st = stream.stats
    assert len(frames) >= 25, st  # ~60 possible; before the fix: about 7
    assert st.late_delivered <= 3, st
    assert st.frames + st.dropped >= 140, st  # every slot is accounted for

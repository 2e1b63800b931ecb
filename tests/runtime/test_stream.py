"""Real-time stream: cadence bookkeeping, ring buffers, policies, shutdown.

The default tests assert only what holds on a busy shared machine (monotonic times,
consistent counters, no leaked thread). The strict real-time checks are ``slow``.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time

import numpy as np
import pytest

from genedge.errors import BadInputError
from genedge.runtime import Sampler
from genedge.runtime.realtime import RealtimeWait, wait_until
from genedge.runtime.stream import NonFiniteOutputError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs torch for bundles"
)


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "genedge-stream"]


def test_30fps_for_1s_is_consistent(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path, threads=1) as s:
        stream = s.stream(fps=30, seconds=1.0, walk="circle")
        frames = []
        for f in stream:
            frames.append((f.index, f.t_due, f.t_ready, f.t_delivered, f.image.copy()))
            assert f.image.shape == (16, 16, 1) and f.image.dtype == np.uint8
        st = stream.stats
    idx = [f[0] for f in frames]
    assert idx == sorted(set(idx)) and idx[-1] <= 29
    assert all(b[1] > a[1] and b[3] > a[3] for a, b in zip(frames, frames[1:], strict=False))
    assert all(f[3] >= f[1] - 1e-4 for f in frames)  # never delivered early
    assert st.frames == len(frames) and st.frames + st.dropped == 30
    assert st.missed_deadlines >= st.dropped
    assert 0.8 < st.elapsed_s < 3.0
    assert st.latency_p50_s > 0 and st.jitter_p99_s >= st.jitter_p50_s
    assert not stream_threads()


def test_frames_follow_the_walk(gan_bundle) -> None:
    """With late='block' every slot is delivered, and frame i shows the walk's latent i."""
    from genedge.runtime.latents import LatentPath

    with Sampler.open(gan_bundle.path) as s:
        stream = s.stream(fps=20, seconds=0.5, walk="slerp", late="block", period_s=0.2)
        got = [(f.index, f.image.copy()) for f in stream]
        path = LatentPath("slerp", 1, 16, seed=0, period=4)
        z = np.empty((1, 16), np.float32)
        assert [i for i, _ in got] == list(range(10))
        for i, img in got:
            assert np.array_equal(img, s.sample_latents(path.at(i, z))[0])


def test_ring_slot_stays_valid_until_next(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        stream = s.stream(fps=50, seconds=0.4, late="block")
        for f in stream:
            snap = f.image.copy()
            time.sleep(0.005)  # the worker runs ahead meanwhile, into other slots
            assert np.array_equal(f.image, snap)


def test_break_early_stops_the_worker(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        stream = s.stream(fps=60)  # endless
        for i, _ in enumerate(stream):
            if i == 5:
                break
        deadline = time.time() + 5
        while stream_threads() and time.time() < deadline:
            time.sleep(0.01)
        assert not stream_threads()
        assert stream.stats.frames == 6


def test_batch_frames_and_labels(cgan_bundle) -> None:
    with (
        Sampler.open(cgan_bundle.path) as s,
        s.stream(fps=30, seconds=0.2, batch=4, labels=[0, 1, 2, 3]) as st,
    ):
        f = st.next_frame()
        assert f.image.shape == (4, 16, 16, 1)


def test_slow_consumer_counts_misses(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        for late in ("drop", "block"):
            stream = s.stream(fps=100, seconds=0.3, late=late)
            for _ in stream:
                time.sleep(0.025)  # 2.5 frame periods per frame
            st = stream.stats
            assert st.missed_deadlines > 0
            if late == "drop":
                assert st.dropped > 0 and st.frames + st.dropped == 30
            else:
                assert st.late_delivered > 0 and st.dropped == 0 and st.frames == 30


def test_slots_skipped_at_the_end_are_counted(gan_bundle) -> None:
    """A consumer that stalls past the whole schedule: the worker skips the remaining slots
    and ends; every one of the stream's slots is a frame shown or a frame dropped."""
    with Sampler.open(gan_bundle.path) as s:
        stream = s.stream(fps=100, seconds=0.1, late="drop")
        for i, _ in enumerate(stream):
            if i == 0:
                time.sleep(0.2)  # past the last of the 10 slots
        st = stream.stats
        assert st.frames + st.dropped == 10 and st.dropped > 0
        # a busy machine may also wake the consumer late for a frame it shows: missed, not dropped
        assert st.missed_deadlines == st.dropped + st.late_delivered


def test_nonfinite_policy_on_float_graphs(float_gan_bundle) -> None:
    with Sampler.open(float_gan_bundle.path) as s:
        real = s.backend._run

        def poisoned(feed, out):
            res = real(feed, out)
            res["image"][...] = np.nan
            return res

        s.backend._run = poisoned
        with pytest.raises(NonFiniteOutputError):
            for _ in s.stream(fps=30, seconds=0.2, nonfinite="raise"):
                pass
        st = s.stream(fps=30, seconds=0.2, nonfinite="count")
        n = sum(1 for _ in st)
        assert st.stats.nonfinite >= n > 0
        st = s.stream(fps=30, seconds=0.2, nonfinite="drop")
        assert sum(1 for _ in st) == 0 and st.stats.nonfinite > 0
    assert not stream_threads()


@pytest.mark.parametrize(
    "kw",
    [
        {"fps": 0},
        {"walk": "zigzag"},
        {"late": "skip"},
        {"ring": 2},
        {"batch": 0},
        {"nonfinite": "ignore"},
    ],
)
def test_bad_stream_arguments(gan_bundle, kw) -> None:
    with Sampler.open(gan_bundle.path) as s, pytest.raises(BadInputError, match="stream"):
        s.stream(**{"fps": 30, **kw})


def test_wait_until_is_not_early() -> None:
    t = time.perf_counter() + 0.01
    assert wait_until(t) >= t


def test_realtime_wait_holds_the_consumer_until_released() -> None:
    w = RealtimeWait()
    before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)
    t = time.perf_counter() + 0.002
    assert w.wait(t) >= t  # the kernel is asked on the first wait
    if not w.active:
        pytest.skip(f"SCHED_FIFO is not available here: {w.describe()}")
    policy = os.sched_getscheduler(0)
    assert policy & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO  # held between frames too
    assert policy & os.SCHED_RESET_ON_FORK  # threads started meanwhile do not inherit it
    seen = []
    t = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
    t.start()
    t.join()
    assert seen == [os.SCHED_OTHER]
    w.wait(time.perf_counter() + 0.001)
    w.release()
    w.release()
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before
    assert w.describe().startswith("SCHED_FIFO")


def test_a_stream_dropped_without_close_is_collected_and_puts_the_consumer_back(gan_bundle) -> None:
    import gc

    before = os.sched_getscheduler(0)
    with Sampler.open(gan_bundle.path) as s:
        st = s.stream(fps=60, seconds=5, realtime_priority=10)
        assert st.next_frame() is not None
        del st
        gc.collect()
        assert os.sched_getscheduler(0) == before
        deadline = time.time() + 5
        while stream_threads() and time.time() < deadline:
            time.sleep(0.01)
        assert not stream_threads()


def test_a_stream_puts_the_consumer_back_when_it_ends_or_is_closed(gan_bundle) -> None:
    before = os.sched_getscheduler(0)
    with Sampler.open(gan_bundle.path) as s:
        ended = s.stream(fps=60, seconds=0.1, realtime_priority=10)
        while ended.next_frame() is not None:  # the caller's own loop, never closed
            pass
        assert os.sched_getscheduler(0) == before
        broken = s.stream(fps=60, realtime_priority=10)
        for _ in broken:
            break  # the for loop closes the stream
        assert os.sched_getscheduler(0) == before


def test_realtime_refusal_falls_back_once_and_says_so(monkeypatch, caplog) -> None:
    if not hasattr(os, "sched_setscheduler"):
        pytest.skip("no sched_setscheduler on this platform")
    calls = []

    def refuse(*args: object) -> None:
        calls.append(args)
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    w = RealtimeWait(priority=10)
    with caplog.at_level("INFO", logger="genedge.runtime"):
        for _ in range(3):
            t = time.perf_counter() + 0.002
            assert w.wait(t) >= t
    assert len(calls) == 1 and not w.active  # asked once, then normal priority
    assert "refused" in w.describe() and "Operation not permitted" in w.describe()
    assert "SCHED_FIFO" in caplog.text and "CAP_SYS_NICE" in caplog.text


def test_realtime_off_never_touches_the_scheduler(monkeypatch) -> None:
    if hasattr(os, "sched_setscheduler"):
        monkeypatch.setattr(os, "sched_setscheduler", lambda *a: pytest.fail("scheduler touched"))
    w = RealtimeWait(priority=None)
    t = time.perf_counter() + 0.002
    assert w.wait(t) >= t and w.describe() == "normal"


def test_the_library_leaves_the_callers_scheduling_alone_by_default(
    gan_bundle, monkeypatch
) -> None:
    if hasattr(os, "sched_setscheduler"):
        monkeypatch.setattr(os, "sched_setscheduler", lambda *a: pytest.fail("scheduler touched"))
    with Sampler.open(gan_bundle.path) as s:
        stream = s.stream(fps=60, seconds=0.1)
        assert sum(1 for _ in stream) >= 1 and stream.stats.scheduling == "normal"


def test_stream_reports_its_scheduling(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        off = s.stream(fps=60, seconds=0.1, realtime_priority=None)
        assert sum(1 for _ in off) >= 1 and off.stats.scheduling == "normal"
        assert off.stats.to_dict()["scheduling"] == "normal" and "scheduling='normal'" in repr(
            off.stats
        )
        on = s.stream(fps=60, seconds=0.1, realtime_priority=10)
        list(on)
        assert (
            on.stats.scheduling == on._waiter.describe() != "normal"
        )  # FIFO, or why it was refused


def test_a_real_time_caller_is_left_alone() -> None:
    if not hasattr(os, "SCHED_RR"):
        pytest.skip("no SCHED_RR here")
    before = (os.sched_getscheduler(0), os.sched_getparam(0))
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(20))
    except OSError as e:
        pytest.skip(f"cannot set SCHED_RR here: {e}")
    try:
        w = RealtimeWait(priority=10)
        t = time.perf_counter() + 0.002
        assert w.wait(t) >= t
        assert os.sched_getscheduler(0) == os.SCHED_RR and os.sched_getparam(0).sched_priority == 20
    finally:
        os.sched_setscheduler(0, before[0], before[1])


@pytest.mark.parametrize("priority", [0, 100, -3, 2.5, "10", True])
def test_bad_realtime_priorities_are_refused(gan_bundle, priority) -> None:
    with (
        Sampler.open(gan_bundle.path) as s,
        pytest.raises(BadInputError, match="realtime_priority"),
    ):
        s.stream(fps=30, realtime_priority=priority)


def test_live_cli_summary(gan_bundle, capsys) -> None:
    from genedge.cli import main

    assert main(["live", str(gan_bundle.path), "--fps", "30", "--seconds", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "missed deadlines" in out and "jitter p50 / p99" in out
    assert "SCHED_FIFO 10 (genedge live's default" in out  # on unless --realtime-priority 0
    assert main(["live", str(gan_bundle.path), "--seconds", "0.2", "--realtime-priority", "0"]) == 0
    out = capsys.readouterr().out
    assert "normal scheduling (--realtime-priority 0)" in out


def test_live_help_says_real_time_priority_is_on(capsys) -> None:
    from genedge.cli import main

    with pytest.raises(SystemExit):
        main(["live", "--help"])
    assert "on by default here" in " ".join(capsys.readouterr().out.split())


def test_live_cli_json_summary(gan_bundle, tmp_path) -> None:
    import json

    from genedge.cli import main

    out = tmp_path / "live.json"
    assert (
        main(["live", str(gan_bundle.path), "--fps", "30", "--seconds", "0.5", "--json", str(out)])
        == 0
    )
    rec = json.loads(out.read_text())
    assert (
        rec["target_fps"] == 30
        and rec["frames"] + rec["dropped"] == 15
        and rec["backend"] == "ort-cpu"
    )
    assert {"missed_deadlines", "jitter_p99_s", "latency_p50_s", "scheduling"} <= set(rec)


def test_live_cli_video(gan_bundle, tmp_path) -> None:
    pytest.importorskip("cv2")
    from genedge.cli import main

    video = tmp_path / "walk.avi"
    assert (
        main(
            ["live", str(gan_bundle.path), "--fps", "20", "--seconds", "0.5", "--video", str(video)]
        )
        == 0
    )
    assert video.stat().st_size > 1000


def _rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


@pytest.mark.slow
def test_60fps_for_60s_misses_nothing(digits_gan_bundle) -> None:
    """The issue's must-hold: the digits generator at 60 fps for 60 s on two CPU cores (default
    threads and stream settings, at real-time priority as ``genedge live`` runs it), no missed
    deadline, p99 frame-interval jitter < 1 ms."""
    with Sampler.open(digits_gan_bundle.path) as s:
        stream = s.stream(fps=60, seconds=60, realtime_priority=10)
        for _ in stream:
            pass
        st = stream.stats
    if (
        not stream._waiter.active
    ):  # the claim is made with real-time waits; say why it cannot be checked
        pytest.skip(f"real-time waits unavailable here ({st.scheduling}); stats were {st}")
    assert st.frames == 3600 and st.missed_deadlines == 0, st
    assert st.jitter_p99_s < 1e-3, st


@pytest.mark.slow
def test_soak_memory_is_flat(gan_bundle) -> None:
    """Endless stream for 3 minutes: RSS after warm-up does not grow."""
    with Sampler.open(gan_bundle.path, threads=1) as s:
        stream = s.stream(fps=120)
        t_end, rss = time.time() + 180, []
        for i, _ in enumerate(stream):
            if i % 600 == 0:
                rss.append(_rss_kb())
            if time.time() > t_end:
                break
    warm = rss[2:]
    assert max(warm) - warm[0] < 2048, rss  # < 2 MiB over the soak

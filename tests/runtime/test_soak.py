"""Soaks: the stream loop and TextGenerator run long with flat memory, a stable p99 latency,
and no threads or file handles left behind. Short versions run by default; long ones are `slow`."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from genedge.runtime import Sampler, TextGenerator


def _rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def _open_fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


def _stream_soak(bundle, seconds: float) -> tuple[list[int], list[float]]:
    """Stream at 120 fps for ``seconds``; RSS every 0.5 s and per-frame latency."""
    rss, lat = [], []
    with Sampler.open(bundle.path, threads=1) as s:
        stream = s.stream(fps=120, seconds=seconds)
        t_next = time.perf_counter()
        for frame in stream:
            lat.append(frame.latency_s)
            if time.perf_counter() >= t_next:
                rss.append(_rss_kb())
                t_next += 0.5
    return rss, lat


def _text_soak(bundle, rounds: int) -> tuple[list[int], list[float]]:
    rss, per_token = [], []
    with TextGenerator.open(bundle.path) as tg:
        for r in range(rounds):
            g = tg.start("abc", max_new_tokens=200, temperature=1.0, top_k=5, seed=r)
            while not g.done:
                t0 = time.perf_counter()
                g.step()
                per_token.append(time.perf_counter() - t0)
            rss.append(_rss_kb())
    return rss, per_token


def _p99(x: list[float]) -> float:
    return float(np.percentile(np.asarray(x), 99))


def _check(rss: list[int], lat: list[float], grow_kb: int) -> None:
    warm = rss[len(rss) // 4 :]  # after warm-up
    assert max(warm) - warm[0] < grow_kb, rss
    half = len(lat) // 2
    # p99 of the second half stays in the first half's league (machines are noisy: a wide bound)
    assert _p99(lat[half:]) < 5 * _p99(lat[:half]) + 5e-3, (_p99(lat[:half]), _p99(lat[half:]))


def test_stream_soak_short(gan_bundle) -> None:
    threads, fds = threading.active_count(), _open_fds()
    rss, lat = _stream_soak(gan_bundle, seconds=4)
    assert len(lat) > 200
    _check(rss, lat, grow_kb=4096)
    assert threading.active_count() == threads and _open_fds() <= fds


def test_text_soak_short(ar_bundle) -> None:
    threads, fds = threading.active_count(), _open_fds()
    rss, per_token = _text_soak(ar_bundle, rounds=20)
    assert len(per_token) == 20 * 200
    _check(rss, per_token, grow_kb=4096)
    assert threading.active_count() == threads and _open_fds() <= fds


@pytest.mark.slow
def test_stream_soak_long(gan_bundle) -> None:
    rss, lat = _stream_soak(gan_bundle, seconds=120)
    _check(rss, lat, grow_kb=2048)


@pytest.mark.slow
def test_text_soak_long(ar_bundle) -> None:
    rss, per_token = _text_soak(ar_bundle, rounds=600)
    _check(rss, per_token, grow_kb=2048)

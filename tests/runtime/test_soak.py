"""Soaks: the stream loop and TextGenerator run long with flat memory, a stable p99 latency,
and no threads or file handles left behind. Short versions run by default; long ones are `slow`."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time

import numpy as np
import pytest

from genedge.runtime import Sampler, TextGenerator


def _rss_kb() -> int:
    """Resident memory, after handing glibc's free-but-kept heap pages back (``malloc_trim``), so
    allocator retention does not read as growth. The soaks keep their own samples in arrays
    allocated up front: a Python list of 120k latencies alone is ~3.8 MB of "growth"."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open(f"/proc/{os.getpid()}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def _open_fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


def _stream_soak(bundle, seconds: float) -> tuple[list[int], np.ndarray]:
    """Stream at 120 fps for ``seconds``; RSS every 0.5 s and per-frame latency."""
    rss = [0] * (int(seconds * 2) + 8)  # preallocated: the measurement must not grow either
    lat = np.zeros(int(seconds * 120) + 8)
    n = k = 0
    with Sampler.open(bundle.path, threads=1) as s:
        stream = s.stream(fps=120, seconds=seconds, realtime_priority=10)
        t_next = time.perf_counter()
        for frame in stream:
            lat[n] = frame.latency_s
            n += 1
            if time.perf_counter() >= t_next and k < len(rss):
                rss[k] = _rss_kb()
                k += 1
                t_next += 0.5
    return rss[:k], lat[:n]


def _text_soak(bundle, rounds: int) -> tuple[list[int], np.ndarray]:
    rss = [0] * rounds
    per_token = np.zeros(rounds * 200)
    i = 0
    clock = time.perf_counter
    with TextGenerator.open(bundle.path) as tg:
        for r in range(rounds):
            g = tg.start("abc", max_new_tokens=200, temperature=1.0, top_k=5, seed=r)
            while not g.done:
                t0 = clock()
                g.step()
                per_token[i] = clock() - t0
                i += 1
            rss[r] = _rss_kb()
    return rss, per_token[:i]


def _p99(x) -> float:
    return float(np.percentile(np.asarray(x), 99))


def _check(rss: list[int], lat: np.ndarray, grow_kb: int) -> None:
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

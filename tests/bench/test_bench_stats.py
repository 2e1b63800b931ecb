"""Statistics on known timings, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genedge.bench.stats import (
    jitter,
    latency_stats,
    percentile,
    ratio,
    throughput,
    timing_summary,
)


def test_percentile_linear_interpolation_by_hand():
    xs = [1.0, 2.0, 3.0, 4.0]
    # h = (n-1) q/100: p50 -> h=1.5 -> 2.5; p90 -> h=2.7 -> 3.7; p0 -> 1; p100 -> 4
    assert percentile(xs, 50) == pytest.approx(2.5)
    assert percentile(xs, 90) == pytest.approx(3.7)
    assert percentile(xs, 0) == 1.0
    assert percentile(xs, 100) == 4.0
    assert percentile([7.0], 99.9) == 7.0


def test_every_field_on_1_to_1000():
    times = list(range(1000, 0, -1))  # 1..1000 ns, unsorted on purpose
    s = latency_stats(times)
    # h = 999 q/100 on values x[i] = i + 1
    assert s.n == 1000
    assert s.p50 == pytest.approx(500.5)  # h = 499.5
    assert s.p90 == pytest.approx(900.1)  # h = 899.1
    assert s.p99 == pytest.approx(990.01)  # h = 989.01
    assert s.p999 == pytest.approx(999.001)  # h = 998.001
    assert s.min == 1 and s.max == 1000
    assert s.mean == pytest.approx(500.5)
    assert s.std == pytest.approx(math.sqrt((1000**2 - 1) / 12))  # population std of 1..n
    assert s.total == 500500
    assert s.p999_reliable


@pytest.mark.parametrize("q", [0, 12.5, 50, 90, 99, 99.9, 100])
def test_matches_numpy_linear(q):
    rng = np.random.default_rng(0)
    xs = rng.exponential(1e6, size=257)
    assert percentile(sorted(xs), q) == pytest.approx(np.percentile(xs, q, method="linear"))


def test_outlier_moves_max_not_median():
    s = latency_stats([100] * 99 + [10_000])
    assert s.p50 == 100 and s.max == 10_000
    assert s.p99 == pytest.approx(100 + 0.01 * 9_900)  # h = 98.01
    assert not s.p999_reliable


def test_ms_and_dict_units():
    s = latency_stats([2_000_000, 4_000_000])
    assert s.ms("p50") == pytest.approx(3.0)
    d = s.to_dict()
    assert d["unit"] == "ms" and d["p50"] == pytest.approx(3.0) and d["n"] == 2


def test_throughput_counts_samples_per_second():
    s = latency_stats([1_000_000] * 10)  # 10 calls of 1 ms
    assert throughput(s, 8) == pytest.approx(8000.0)


def test_jitter_of_frame_timestamps():
    period = 1e9 / 50  # 20 ms
    ts = [0, 20e6, 41e6, 60e6, 80e6]  # intervals 20, 21, 19, 20 ms
    j = jitter(ts, 50)
    assert j.period == pytest.approx(period)
    assert j.interval.max == pytest.approx(21e6)
    assert j.deviation.max == pytest.approx(1e6)
    assert j.deviation.p50 == pytest.approx(0.5e6)  # deviations 0, 1, 1, 0 ms


def test_ratio_and_errors():
    assert ratio(3.0, 1.5) == 2.0
    assert math.isnan(ratio(1.0, 0.0))
    with pytest.raises(ValueError):
        latency_stats([])
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_timing_summary_keeps_round_medians_and_the_cdf_in_ms():
    times = [1e6, 3e6, 2e6, 10e6, 20e6, 30e6, 4e6]  # rounds of 3, 0 and 4 calls
    s = timing_summary(times, [3, 0, 4])
    assert s["rounds"] == {"sizes": [3, 0, 4], "p50_ms": [2.0, None, 15.0]}
    cdf = dict(zip(s["cdf_ms"]["q"], s["cdf_ms"]["ms"], strict=True))
    assert cdf[0.0] == 1.0 and cdf[100.0] == 30.0 and cdf[50.0] == 4.0
    assert cdf[90.0] == pytest.approx(float(np.percentile(times, 90)) / 1e6)
    assert s["cdf_ms"]["ms"] == sorted(s["cdf_ms"]["ms"])


def test_matmul_probe_reports_a_rate_at_the_thread_count():
    from genedge.bench.machine import matmul_probe

    probe = matmul_probe(1, n=32, seconds=0.01)
    assert probe["n"] == 32 and probe["threads"] == 1 and probe["calls"] >= 5
    assert probe["gflops"] >= probe["gflops_median"] > 0  # the best call, then the median

"""The one measuring loop: turns interleaved per round, feeds from tensor specs, ratios."""

from __future__ import annotations

import numpy as np
import pytest

from genedge.manifest import TensorSpec
from genedge.runtime.measure import (
    feed_for,
    interleave,
    median,
    relative_to_fastest,
    round_medians,
    round_ratios,
    spread,
    time_runs,
)


def test_rounds_change_order_so_nobody_always_follows_the_same_one():
    order = []
    times = interleave(3, lambda i, r: order.append((r, i)) or [float(i)], rounds=4)
    assert [i for r, i in order] == [0, 1, 2, 1, 2, 0, 2, 0, 1, 2, 1, 0]
    assert times == [[[0.0]] * 4, [[1.0]] * 4, [[2.0]] * 4]  # by candidate, then round


@pytest.mark.parametrize("count", [2, 3, 4, 5, 6, 7])
def test_over_a_period_every_candidate_follows_every_other_equally_often(count):
    from collections import Counter

    from genedge.runtime.measure import balance_period, round_order

    follows: Counter = Counter()
    for r in range(balance_period(count)):
        row = round_order(count, r)
        assert sorted(row) == list(range(count))  # one turn each
        follows.update(zip(row, row[1:], strict=False))
    assert len(follows) == count * (count - 1)  # every ordered pair ...
    assert len(set(follows.values())) == 1  # ... equally often
    rotation = Counter()  # what a plain rotation would have done: mostly one predecessor
    for r in range(balance_period(count)):
        row = [(j + r) % count for j in range(count)]
        rotation.update(zip(row, row[1:], strict=False))
    assert count == 2 or len(rotation) < count * (count - 1)


def test_a_fixed_order_and_a_progress_call_per_round():
    order, done = [], []
    interleave(
        2, lambda i, r: order.append(i) or [], rounds=2, rotate=False, after_round=done.append
    )
    assert order == [0, 1, 0, 1] and done == [1, 2]


def test_a_time_budget_keeps_its_minimum_and_maximum_rounds():
    assert len(interleave(1, lambda i, r: [], seconds=0.0, min_rounds=4)[0]) == 4
    assert len(interleave(1, lambda i, r: [], seconds=60.0, min_rounds=1, max_rounds=5)[0]) == 5
    with pytest.raises(ValueError):
        interleave(1, lambda i, r: [], seconds=1.0, rounds=2)


def test_each_round_is_measured_for_load():
    class Load:
        calls: list[str] = []

        def start(self):
            self.calls.append("start")

        def stop(self):
            self.calls.append("stop")

    load = Load()
    interleave(2, lambda i, r: [], rounds=2, load=load)
    assert load.calls == ["start", "stop", "start", "stop"]


def test_feeds_follow_the_declared_tensors():
    specs = (TensorSpec("z", "float32", ("B", 4)), TensorSpec("label", "int64", ("B",)))
    feed = feed_for(specs, 5, {"label": (2, 4)})
    assert feed["z"].shape == (5, 4) and feed["z"].dtype == np.float32
    assert feed["label"].tolist() == [2, 3, 4, 2, 3]
    assert np.array_equal(feed_for(specs, 5)["z"], feed["z"])  # seeded


def test_medians_ratios_and_their_spread():
    a = [[1.0, 3.0], [2.0, 2.0, 2.0]]
    assert median(a) == 2.0 and round_medians(a) == [2.0, 2.0]
    assert round_ratios([2.0, 4.0, 0.0], [1.0, 1.0, 1.0]) == [2.0, 4.0]
    assert spread([1, 2, 3, 4, 5], 25, 75) == (2.0, 4.0)
    # a spike in round 2 slows both alike: b stays 2x a
    rel = relative_to_fastest({"a": [1.0, 10.0, 1.0], "b": [2.0, 20.0, 2.0]})
    assert rel == {"a": 1.0, "b": 2.0}


def test_time_runs_keeps_its_minimum():
    calls = []
    assert len(time_runs(lambda: calls.append(1), runs=3)) == 3 == len(calls)

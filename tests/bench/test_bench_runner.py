"""The interleaved runner on fake targets: only robust timing assertions."""

from __future__ import annotations

import numpy as np
import pytest
from bench_fakes import SleepTarget

from genedge.bench.cases import Inputs
from genedge.bench.runner import REWARM_CALLS, rounds_of, run_cases, split_budget
from genedge.bench.timer import Budget, measure, time_calls


def _inputs(*batches: int) -> list[Inputs]:
    return [Inputs(np.zeros((b, 4), np.float32), None) for b in batches]


def test_warmup_and_first_call_are_not_measured():
    t = SleepTarget("a", 0.0005)
    budget = Budget(iters=12, warmup=7)
    [r] = run_cases([t], _inputs(1), budget, rounds=3)
    assert r.stats.n == 12 == len(r.times_ns)
    assert t.calls == 1 + 7 + 3 * REWARM_CALLS + 12  # first call + warm-up + re-warms + measured
    assert t.closed


def test_sleep_is_a_lower_bound_and_load_is_excluded():
    t = SleepTarget("a", 0.002)
    [r] = run_cases([t], _inputs(1), Budget(iters=10, warmup=1), rounds=2)
    assert r.stats.min >= 2e6  # every call slept 2 ms
    assert r.stats.p50 >= 2e6
    assert r.load_ms >= 10  # open() slept 10 ms ...
    assert r.stats.p50 < 10e6 or r.stats.min < 10e6  # ... and that is not in the steady state


def test_rounds_interleave_cases():
    log: list[str] = []
    targets = [SleepTarget(n, 0.0, log=log) for n in "ABC"]
    run_cases(targets, _inputs(1), Budget(iters=4, warmup=0), rounds=2)
    measured = log[3:]  # after the three first calls
    # two rounds, each: A (1 re-warm + 2 timed), B (...), C (...)
    assert "".join(measured) == ("AAABBBCCC") * 2


def test_every_batch_is_a_case_and_throughput_uses_batch():
    t = SleepTarget("a", 0.001)
    results = run_cases([t], _inputs(1, 4), Budget(iters=5, warmup=0), rounds=1)
    assert [r.batch for r in results] == [1, 4]
    r4 = results[1]
    assert r4.throughput == pytest.approx(4 * r4.stats.n * 1e9 / r4.stats.total)


def test_skipped_target_becomes_a_note():
    notes: list[str] = []
    results = run_cases(
        [SleepTarget("ok", 0.0), SleepTarget("gone", 0.0, skip="no GPU here")],
        _inputs(1),
        Budget(iters=2, warmup=0),
        rounds=1,
        notes=notes,
    )
    assert [r.label for r in results] == ["ok"]
    assert notes == ["gone: skipped (no GPU here)"]


def test_seconds_budget_split_across_rounds():
    assert split_budget(Budget(iters=10, warmup=0), 3) == [4, 3, 3]
    assert split_budget(Budget(iters=2, warmup=0), 10) == [1, 1]
    assert split_budget(Budget(seconds=1.0), 4) == [0.25] * 4
    t = SleepTarget("a", 0.001)
    [r] = run_cases([t], _inputs(1), Budget(seconds=0.05, warmup=0), rounds=2)
    assert r.stats.n >= 2 and r.stats.total >= 0.04e9


def test_timer_measure_discards_warmup_and_syncs():
    calls, syncs = [], []
    times = measure(
        lambda: calls.append(1), Budget(iters=5, warmup=3), sync=lambda: syncs.append(1)
    )
    assert len(times) == 5 and len(calls) == 8 and len(syncs) == 8
    assert all(t >= 0 for t in time_calls(lambda: None, 3))


def test_budget_validation():
    with pytest.raises(ValueError):
        Budget()
    with pytest.raises(ValueError):
        Budget(iters=1, seconds=1.0)


def test_round_sizes_split_the_timings_and_give_a_ratio_iqr():
    from genedge.bench.ratios import round_iqr

    fast, slow = SleepTarget("fast", 0.001), SleepTarget("slow", 0.004)
    steps = []
    rf, rs = run_cases(
        [fast, slow], _inputs(1), Budget(iters=9, warmup=0), rounds=3, step=lambda: steps.append(1)
    )
    assert rf.round_sizes == (3, 3, 3) and len(rf.round_p50s()) == 3
    (lo, hi), rounds = round_iqr(rs, rf)
    assert 1.0 < lo <= hi and rounds == 3  # the slow case is slower in every round
    assert len(steps) == 2 * 3  # the progress step: once per case and round
    assert rounds_of(Budget(iters=2, warmup=0), 10) == 2


def test_auto_is_opened_per_batch_and_each_case_names_its_choice(monkeypatch, tmp_path):
    """A tuned auto may choose another backend per batch size: each batch gets its own
    Sampler opened for it, and each result names what ran at that batch."""
    from types import SimpleNamespace

    from genedge.bench.cases import RuntimeTarget
    from genedge.runtime import Sampler

    opened: list[int | None] = []

    class FakeSampler:
        def __init__(self, batch):
            backend = "openvino" if batch and batch >= 8 else "ort-cpu"
            self.info = SimpleNamespace(backend=backend, precision="int8", file="model.int8.onnx")
            self.closed = False

        def sample_latents(self, z, labels, out=None):
            return np.zeros((len(z), 2, 2, 1), np.uint8) if out is None else out

        def close(self):
            self.closed = True

    def fake_open(bundle, batch=None, **kw):
        opened.append(batch)
        return FakeSampler(batch)

    monkeypatch.setattr(Sampler, "open", staticmethod(fake_open))
    t = RuntimeTarget(tmp_path, "auto", "int8", 1)
    results = run_cases([t], _inputs(1, 16), Budget(iters=3, warmup=0), rounds=1)
    assert opened == [None, 1, 16]
    by_batch = {r.batch: r for r in results}
    assert by_batch[1].label == "runtime auto:ort-cpu int8" and by_batch[1].backend == "ort-cpu"
    assert by_batch[16].label == "runtime auto:openvino int8"
    assert by_batch[16].backend == "openvino" and not t.per_batch

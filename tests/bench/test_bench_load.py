"""Bench numbers under load: the headline is the table's ratio, and doubt is said first."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from bench_fakes import fake_result

from genedge.bench.ratios import compute_ratios, rounds_disagree
from genedge.bench.report import BenchReport, markdown
from genedge.bench.suite import busy_machine_notes, disagreeing_ratios_notes
from genedge.bench.summary import image_summary
from genedge.bench.table import print_report
from genedge.cpu_load import BUSY_SHARE, BUSY_WAIT, RoundLoad, runqueue_wait_ns


def _noisy_results(seed: int):
    """Runtime and torch rounds with a hog's bursts: the rounds' p50s jump about."""
    rng = np.random.default_rng(seed)
    rt_ms = list(0.4 * rng.choice([1.0, 1.1, 6.0], size=8))
    torch_ms = list(6.4 * rng.choice([1.0, 1.3, 30.0], size=8))
    return [
        fake_result("runtime ort-cpu fp32", "runtime", "ort-cpu", "fp32", 1, 0, round_ms=rt_ms),
        fake_result("torch eager", "torch", "torch-cpu", "fp32", 1, 0, round_ms=torch_ms),
    ]


@pytest.mark.parametrize("seed", range(20))
def test_headline_never_contradicts_the_table(seed):
    results = _noisy_results(seed)
    rt, torch = results
    table_ratio = torch.stats.p50 / rt.stats.p50
    [line] = [s for s in image_summary(results, ["torch"]) if s.label == rt.label]
    [ratio] = [r for r in compute_ratios(results) if r.name == "speedup vs torch eager"]
    assert line.speedup == pytest.approx(table_ratio) and ratio.value == pytest.approx(table_ratio)
    if ratio.iqr and not ratio.iqr[0] * 0.95 <= ratio.value <= ratio.iqr[1] * 1.05:
        assert ratio.mark.startswith("rounds disagree") and "[rounds disagree]" in line.text


def test_rounds_disagree_reads_overheads_as_ratios():
    assert not rounds_disagree(3.0, (2.9, 3.1))
    assert rounds_disagree(3.0, (2.0, 3.5))  # a middle half 50% wide
    assert rounds_disagree(0.75, (3.0, 3.0))  # the ratio of p50s outside its rounds
    assert not rounds_disagree(0.02, (0.01, 0.03), percent=True)  # +2% within +1%..+3%
    assert rounds_disagree(0.02, (-0.2, 0.3), percent=True)
    assert not rounds_disagree(float("nan"), (1.0, 2.0)) and not rounds_disagree(2.0, None)


def test_round_load_measures_waiting_per_round():
    load = RoundLoad()
    for _ in range(3):
        load.start()
        end = time.perf_counter() + 0.02
        while time.perf_counter() < end:
            pass
        load.stop()
    rec = load.record()
    if runqueue_wait_ns() is None:  # no schedstat: nothing measured, nothing claimed
        assert rec["rounds"] == 0
        return
    assert rec["rounds"] == 3 and all(w >= 0 for w in rec["wait_fraction"])
    assert rec["busy_rounds"] == sum(w > BUSY_WAIT for w in load.waits)
    assert 0.0 <= rec["others_share"] <= 1.0
    assert rec["busy"] == (rec["others_share"] > BUSY_SHARE)


def test_other_processes_cpu_time_makes_the_machine_busy():
    quiet = {"usable_cpus": 2, "load_average": [0.5, 0.5, 0.5], "load_average_end": [0.6, 1, 1]}
    assert busy_machine_notes(quiet, 2) == []
    rounds = {"wait_fraction": [0.0, 0.4, 0.5], "busy_rounds": 2, "rounds": 3}
    assert busy_machine_notes({**quiet, "round_load": rounds}, 2) == []  # own threads waiting
    rounds.update(others_share=0.8, busy=True)
    [note] = busy_machine_notes({**quiet, "round_load": rounds}, 2)
    assert "other processes took 80% of the CPU time" in note and "'busy machine'" in note
    assert "waited for a CPU in 2 of 3 rounds" in note


def _report(results, read_first):
    ratios = compute_ratios(results, busy=bool(read_first))
    env = {"cpu_model": "Test CPU", "read_first": read_first + disagreeing_ratios_notes(ratios)}
    return BenchReport(
        kind="gan",
        options={"threads": 2, "baselines": ["torch"]},
        environment=env,
        results=tuple(results),
        ratios=tuple(ratios),
    )


def test_doubt_is_said_before_any_number():
    busy = ["the machine was busy: 1-minute load average up to 6.2 on 2 usable CPUs."]
    report = _report(_noisy_results(3), busy)
    md = markdown(report)
    assert md.index("## Read this first") < md.index("## Summary") < md.index("## Ratios")
    assert "busy machine" in md.split("## Ratios")[1]  # every ratio is marked
    out = io.StringIO()
    print_report(report, out)
    text = out.getvalue()
    assert text.startswith("READ FIRST: the machine was busy")
    quiet = _report(
        [
            fake_result(
                "runtime ort-cpu fp32", "runtime", "ort-cpu", "fp32", 1, 0, round_ms=[1.0] * 4
            ),
            fake_result("torch eager", "torch", "torch-cpu", "fp32", 1, 0, round_ms=[3.0] * 4),
        ],
        [],
    )
    assert "Read this first" not in markdown(quiet)


def test_tick_rounding_of_short_rounds_cancels_out(monkeypatch):
    """/proc/stat and os.times() both tick in 1/CLK_TCK steps: over many short rounds a quiet
    machine reads a tick too many as often as a tick too few, and must not add up to busy."""
    import genedge.cpu_load as cpu_load

    readings = iter([(0.00, 0.00), (0.01, 0.00), (0.01, 0.00), (0.01, 0.01)] * 100)
    monkeypatch.setattr(cpu_load, "cpu_seconds", lambda: next(readings))
    monkeypatch.setattr(cpu_load, "runqueue_wait_ns", lambda: None)
    load = RoundLoad()
    for _ in range(100):  # rounds reading others +0.01 s, then -0.01 s: net zero
        load.start()
        time.sleep(0.0005)
        load.stop()
        load.start()
        time.sleep(0.0005)
        load.stop()
    assert load.others_share is not None and load.others_share < BUSY_SHARE
    assert load.record()["busy"] is False

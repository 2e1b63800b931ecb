"""The user's report: summary lines, IQR over rounds, grouping by backend and precision,
the expected duration and the progress bar (off when stderr is not a terminal)."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from bench_fakes import SleepTarget, fake_result

from genedge.bench.progress import progress_bar
from genedge.bench.ratios import Ratio, compute_ratios, round_iqr
from genedge.bench.report import BenchReport, markdown
from genedge.bench.runner import CaseResult
from genedge.bench.stats import iqr, latency_stats, throughput
from genedge.bench.summary import (
    image_summary,
    ordered,
    reference_case,
    sig3,
    text_summary,
)
from genedge.bench.table import print_report


def case(label, kind, backend, precision, batch, round_ms) -> CaseResult:
    """A result of len(round_ms) rounds of 3 calls each, round k taking round_ms[k] ms."""
    return fake_result(label, kind, backend, precision, batch, 0.0, round_ms=round_ms)


def test_iqr_is_the_middle_half():
    assert iqr([5, 1, 4, 2, 3]) == (2.0, 4.0)
    assert iqr([1, 2, 3, 4]) == (1.75, 3.25)  # linear interpolation, as every percentile here
    assert iqr([1, 2, 3, 1000]) == (1.75, 252.25)  # one outlier moves the top quartile only
    with pytest.raises(ValueError):
        iqr([])


def test_ratio_iqr_over_rounds_ignores_one_bad_round():
    # torch is 3x slower in every round but one, where the machine stalled it (30x)
    rt = case("runtime ort-cpu fp32", "runtime", "ort-cpu", "fp32", 1, [1, 1, 1, 1, 1])
    torch = case("torch eager", "torch", "torch-cpu", "fp32", 1, [3, 3, 3, 3, 30])
    (lo, hi), rounds = round_iqr(torch, rt)
    assert (lo, hi) == pytest.approx((3.0, 3.0)) and rounds == 5
    [r] = [r for r in compute_ratios([rt, torch]) if r.name == "speedup vs torch eager"]
    assert r.iqr == pytest.approx((3.0, 3.0)) and r.rounds == 5
    assert r.text_with_iqr == "3.00x (IQR 3.00-3.00x)"
    d = r.to_dict()
    assert d["iqr"] == pytest.approx([3.0, 3.0]) and "spread" not in d


def test_ratio_texts():
    r = Ratio("speedup vs torch eager", "a", "b", 1, 3.65, iqr=(3.5, 3.8), rounds=10)
    assert r.text_with_iqr == "3.65x (IQR 3.50-3.80x)"
    o = Ratio("overhead vs bare ORT", "a", "b", 1, 0.02, iqr=(-0.01, 0.03), rounds=10)
    assert o.text_with_iqr == "+2.0% (IQR -1.0% to +3.0%)"
    assert Ratio("x", "a", "b", 1, 2.0).text_with_iqr == "2.00x"  # one round: no interval


def _mixed():
    """Precisions and kinds interleaved, as a run produces them batch by batch."""
    return [
        case("runtime ort-cpu fp32", "runtime", "ort-cpu", "fp32", 1, [1.0] * 4),
        case("runtime ort-cpu int8", "runtime", "ort-cpu", "int8", 1, [0.5] * 4),
        case("torch eager", "torch", "torch-cpu", "fp32", 1, [4.0] * 4),
        case("runtime ort-cpu fp32", "runtime", "ort-cpu", "fp32", 16, [8.0] * 4),
        case("bare-ort ort-cpu int8", "ort", "ort-cpu", "int8", 1, [0.5] * 4),
        case("runtime ort-cpu int8", "runtime", "ort-cpu", "int8", 16, [4.0] * 4),
        case("bare-ort ort-cpu fp32", "ort", "ort-cpu", "fp32", 1, [0.9] * 4),
        case("torch.compile", "torch-compile", "torch-cpu", "fp32", 1, [2.0] * 4),
        case("torch eager", "torch", "torch-cpu", "fp32", 16, [64.0] * 4),
    ]


def test_grouped_by_backend_then_precision_runtime_first():
    groups = ordered(_mixed())
    keys = [{(r.backend, r.precision) for r in g} for g in groups]
    assert keys == [{("ort-cpu", "fp32")}, {("ort-cpu", "int8")}, {("torch-cpu", "fp32")}]
    assert [(r.label, r.batch) for r in groups[0]] == [
        ("runtime ort-cpu fp32", 1),
        ("runtime ort-cpu fp32", 16),
        ("bare-ort ort-cpu fp32", 1),
    ]
    assert [r.label for r in groups[2]] == ["torch eager", "torch eager", "torch.compile"]


def test_reference_is_the_first_measured_baseline():
    rs = _mixed()
    assert reference_case(rs, ("torch", "ort"), 1).label == "torch eager"
    assert reference_case(rs, ("torch-compile", "torch"), 1).label == "torch.compile"
    assert reference_case(rs, ("torch-compile", "torch"), 16).label == "torch eager"
    assert reference_case(rs, ("ort",), 1).label == "bare-ort ort-cpu fp32"  # its fp32 case
    assert reference_case(rs, ("openvino",), 1) is None


def test_summary_line_has_percentiles_throughput_gflops_and_speedup():
    lines = image_summary(_mixed(), ("torch", "ort"), "gan", flops={1: 2e6, 16: 32e6})
    by = {(s.label, s.batch): s for s in lines}
    rt = by[("runtime ort-cpu fp32", 1)]
    assert rt.text == (
        "runtime ort-cpu fp32, batch 1: p50/p90/p99 1.00/1.00/1.00 ms | 1000 images/s | "
        "2.0 GFLOP/s | 4.00x (IQR 4.00-4.00x) vs torch eager"
    )
    assert by[("runtime ort-cpu int8", 16)].text.endswith(
        "16.00x (IQR 16.00-16.00x) vs torch eager"
    )
    assert by[("torch eager", 1)].text.endswith("| the baseline")
    assert [(s.label, s.batch) for s in lines][:3] == [
        ("runtime ort-cpu fp32", 1),
        ("runtime ort-cpu fp32", 16),
        ("bare-ort ort-cpu fp32", 1),
    ]
    no_base = image_summary(_mixed(), (), "gan")
    assert all(" vs " not in s.text and "GFLOP/s" not in s.text for s in no_base)


def test_text_summary_counts_tokens():
    text = {
        "configurations": [
            {
                "backend": "ort-cpu",
                "precision": "fp32",
                "time_to_first_token": {"p50": 5.0, "p90": 6.0, "p99": 7.0},
                "per_token": {"p50": 0.5, "p90": 0.6, "p99": 0.9},
                "tokens_per_s": 1500.0,
            }
        ]
    }
    [line] = text_summary(text)
    assert (
        line.text
        == "runtime ort-cpu fp32, batch 1: p50/p90/p99 0.500/0.600/0.900 ms | 1500 tokens/s"
    )


def test_sig3():
    assert [sig3(x) for x in (0.5523, 30.301, 195.4, 1950.2, 1.0)] == [
        "0.552",
        "30.3",
        "195",
        "1950",
        "1.00",
    ]


def _report(**kw):
    results = _mixed()
    return BenchReport(
        kind="gan",
        options={"threads": 2, "baselines": ["torch", "torch-compile", "ort"]},
        environment={
            "cpu_model": "Test CPU",
            "matmul": {"n": 512, "threads": 2, "blas": "openblas", "gflops": 100.0},
        },
        results=tuple(results),
        ratios=tuple(compute_ratios(results)),
        flops={1: 2e6, 16: 32e6},
        **kw,
    )


def test_terminal_latency_table_groups_precisions_and_fits_100_columns():
    buf = io.StringIO()
    print_report(_report(), file=buf)
    out = buf.getvalue()
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Latency"))
    end = next(i for i, ln in enumerate(lines) if i > start and ln.startswith("└"))
    table = lines[start + 1 : end + 1]
    assert max(len(ln) for ln in table) < 100 and "GFLOP/s" in table[1]
    labels = [ln.split("│")[1].strip() for ln in table if ln.startswith("│")]
    precisions = [lab.split()[-1] for lab in labels if lab.startswith(("runtime", "bare-ort"))]
    assert precisions == ["fp32"] * 3 + ["int8"] * 3  # each precision in one block
    assert sum(ln.startswith("├") for ln in table) == 2  # a rule between the three groups
    ratios = lines[next(i for i, ln in enumerate(lines) if ln.startswith("Ratios")) :]
    ratio_table = ratios[: next(i for i, ln in enumerate(ratios) if ln.startswith("└")) + 1]
    assert max(len(ln) for ln in ratio_table) < 100 and "IQR over rounds" in out
    assert ".." not in "".join(ratio_table)  # no min..max spreads any more
    summary = lines.index(
        "Summary (speed-up: ratio of the p50s in the latency table, with the IQR of per-round ratios):"
    )
    assert lines[summary + 1].startswith("runtime ort-cpu fp32, batch 1: p50/p90/p99")
    assert "matrix multiply (numpy float32 512x512, 2 threads, openblas): 100.0 GFLOP/s" in out
    assert "2.00 MFLOP" in out


def test_markdown_and_json_carry_the_summary_and_iqr(tmp_path):
    rep = _report()
    text = markdown(rep)
    assert "## Summary" in text and "| IQR over rounds |" in text and "(IQR 4.00-4.00x)" in text
    assert "| runtime ort-cpu fp32 | 1 | 1.000 | 2.0 | 2% |" in text  # GFLOP/s and % of GEMM
    data = json.loads(json.dumps(rep.to_dict()))
    assert data["schema"] == "genedge.bench/3"
    assert data["summary"][0]["text"].startswith("runtime ort-cpu fp32, batch 1:")
    assert data["summary"][0]["speedup"] == pytest.approx(4.0)
    assert data["flops"]["per_call"] == {"1": 2e6, "16": 32e6}
    first = data["results"][0]
    assert first["effective_gflops"] == pytest.approx(2.0)
    assert first["fraction_of_matmul"] == pytest.approx(0.02)
    assert all("spread" not in r and "iqr" in r for r in data["ratios"])


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_is_silent_when_not_a_terminal():
    stream = io.StringIO()
    with progress_bar(5, "bench", stream) as step:
        for _ in range(5):
            step()
    assert stream.getvalue() == ""


def test_progress_bar_draws_on_a_terminal():
    pytest.importorskip("rich")
    stream = _Tty()
    with progress_bar(3, "bench", stream) as step:
        for _ in range(3):
            step()
    assert "bench" in stream.getvalue()


def test_cli_says_the_duration_first_and_draws_no_bar_into_a_pipe(monkeypatch, capsys):
    """bench_command on a non-terminal stderr: the duration line, then no progress bar."""
    import genedge.bench.commands as commands
    import genedge.bench.suite as suite
    from genedge.bench.options import BenchOptions

    drawn = []

    def fake_run(opts, announce=None, progress=False):
        o = dataclasses.replace(opts, seconds=1.0)
        announce(suite.expected_duration(o, cases=4, configurations=1))
        with progress_bar(4 if progress else 0, "bench") as step:
            drawn.append(step)
            step()
        return _report()

    monkeypatch.setattr(commands, "run_bench", fake_run)
    monkeypatch.setattr(commands, "validate_options", lambda o: None)
    args = type("A", (), {})()
    for f in dataclasses.fields(BenchOptions):
        setattr(args, f.name, f.default if f.default is not dataclasses.MISSING else None)
    args.bundle, args.backend, args.batch, args.baselines = "b", ["auto"], [1], ["torch"]
    args.json_out = args.plot = args.markdown = args.precision = None
    assert commands.bench_command(args) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("bench: 4 timed cases x 1 s, 1 cold start: about")
    assert "━" not in err and len(err.splitlines()) == 1


def test_steps_advance_once_per_case_and_round():
    import numpy as np

    from genedge.bench.cases import Inputs
    from genedge.bench.runner import run_cases
    from genedge.bench.timer import Budget

    steps = []
    inputs = [Inputs(np.zeros((b, 2), np.float32), None) for b in (1, 2)]
    run_cases(
        [SleepTarget("a", 0.0), SleepTarget("b", 0.0)],
        inputs,
        Budget(iters=4, warmup=0),
        rounds=2,
        step=lambda: steps.append(1),
    )
    assert len(steps) == 2 * 2 * 2  # targets x batches x rounds


def test_runtime_against_the_fastest_standalone_openvino_of_its_quality_class():
    rs = [
        case("runtime ort-cpu fp32", "runtime", "ort-cpu", "fp32", 16, [6.0] * 4),
        case("runtime ort-cpu int8", "runtime", "ort-cpu", "int8", 16, [3.0] * 4),
        case("openvino fp32 (standalone)", "openvino", "openvino", "fp32", 16, [4.0] * 4),
        case("openvino bf16 (standalone)", "openvino", "openvino", "bf16", 16, [3.0] * 4),
        case("openvino int8 (standalone)", "openvino", "openvino", "int8", 16, [1.5] * 4),
    ]
    got = {
        (r.subject, r.reference): r.value
        for r in compute_ratios(rs)
        if r.name == "speedup vs OpenVINO"
    }
    assert got == {
        ("runtime ort-cpu fp32", "openvino bf16 (standalone)"): pytest.approx(0.5),
        ("runtime ort-cpu int8", "openvino int8 (standalone)"): pytest.approx(0.5),
    }


def test_auto_stays_visible_in_the_label_once_resolved(tmp_path):
    from genedge.bench.cases import RuntimeTarget

    t = RuntimeTarget(tmp_path, "auto", "fp32", 2)
    assert t.label == "runtime auto fp32"
    t.backend = "openvino"  # what open() does with the backend the runtime chose
    assert t.label == "runtime auto:openvino fp32" and t.requested == "auto"
    assert RuntimeTarget(tmp_path, "ort-cpu", "int8", 2, call="sample").label == (
        "runtime ort-cpu int8 sample()"
    )


def test_headline_ratio_is_the_tables_and_is_marked_when_its_rounds_disagree():
    """Round by round torch is 3x slower; a slow last round in which the runtime made many
    calls drags the runtime's pooled p50 up (a pooled ratio of 0.75x). The headline is the
    table's ratio, never a number the table contradicts, and it is marked as doubtful."""

    def rounds(label, kind, backend, spec):
        times = [int(ms * 1e6) for ms, n in spec for _ in range(n)]
        stats = latency_stats(times)
        return CaseResult(
            label,
            kind,
            backend,
            "fp32",
            1,
            stats,
            throughput(stats, 1),
            1.0,
            1.0,
            None,
            tuple(times),
            round_sizes=tuple(n for _, n in spec),
        )

    rt = rounds("runtime ort-cpu fp32", "runtime", "ort-cpu", [(1, 2), (1, 2), (1, 2), (4, 20)])
    torch = rounds("torch eager", "torch", "torch-cpu", [(3, 2), (3, 2), (3, 2), (12, 2)])
    assert torch.stats.p50 / rt.stats.p50 == pytest.approx(0.75)
    [r] = [r for r in compute_ratios([rt, torch]) if r.name == "speedup vs torch eager"]
    assert r.value == pytest.approx(torch.stats.p50 / rt.stats.p50)
    assert r.iqr == pytest.approx((3.0, 3.0)) and r.mark == "rounds disagree"
    assert "[rounds disagree]" in r.text_with_iqr and "rounds disagree" in r.iqr_cell
    [busy] = [r for r in compute_ratios([rt, torch], busy=True) if "eager" in r.name]
    assert busy.mark == "rounds disagree, busy machine"

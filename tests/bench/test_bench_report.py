"""Ratios, JSON, Markdown, the terminal table and the PNG from a hand-made report."""

from __future__ import annotations

import dataclasses
import io
import json
import math

import pytest
from bench_fakes import fake_result

from genedge.bench.ratios import compute_ratios
from genedge.bench.report import BenchReport, markdown, write_json, write_markdown
from genedge.bench.table import print_report
from genedge.bench.trtexec import parse_trtexec, shapes_arg


def _results():
    return [
        fake_result("runtime ort-cpu fp32", "runtime", "ort-cpu", "fp32", 1, 1.0),
        fake_result("bare-ort ort-cpu fp32", "ort", "ort-cpu", "fp32", 1, 0.98),
        fake_result("torch eager", "torch", "torch-cpu", "fp32", 1, 3.0),
        fake_result("torch.compile", "torch-compile", "torch-cpu", "fp32", 1, 1.5),
        fake_result("runtime ort-cpu fp32", "runtime", "ort-cpu", "fp32", 16, 8.0),
        fake_result("runtime ort-cpu int8", "runtime", "ort-cpu", "int8", 16, 4.0),
        fake_result("bare-ort ort-cpu int8", "ort", "ort-cpu", "int8", 16, 3.6),
    ]


def _by(ratios, name, batch, subject=None):
    return next(
        r for r in ratios if r.name == name and r.batch == batch and subject in (None, r.subject)
    )


def test_ratios_and_targets():
    ratios = compute_ratios(_results())
    eager = _by(ratios, "speedup vs torch eager", 1)
    assert eager.value == pytest.approx(3.0) and eager.target == ">= 2.5x" and eager.holds is True
    comp = _by(ratios, "speedup vs torch.compile", 1)
    assert comp.value == pytest.approx(1.5) and comp.holds is True
    over = _by(ratios, "overhead vs bare ORT", 1)
    assert (
        over.value == pytest.approx(1.0 / 0.98 - 1) and over.holds is True and over.text == "+2.0%"
    )
    over8 = _by(ratios, "overhead vs bare ORT", 16, "runtime ort-cpu int8")
    assert over8.value == pytest.approx(4.0 / 3.6 - 1) and over8.holds is False
    int8 = _by(ratios, "int8 speedup vs fp32", 16)
    assert int8.value == pytest.approx(2.0) and int8.target == ">= 1.5x" and int8.holds is True


def _report():
    results = _results()
    return BenchReport(
        kind="gan",
        options={"threads": 2},
        environment={"cpu_model": "Test CPU", "command": "genedge bench b"},
        results=tuple(results),
        ratios=tuple(compute_ratios(results)),
        quality=(
            {
                "file": "model.int8.onnx",
                "format": "onnx",
                "precision": "int8",
                "psnr_vs_fp32": 38.5,
                "max_abs_err_vs_torch": None,
                "max_abs_err_vs_fp32": 3.0,
                "ssim_vs_fp32": 0.99,
                "metrics": {"accuracy": 0.91},
                "verdict": "pass",
                "quality_approved": True,
            },
        ),
        cold_start=(
            {"backend": "ort-cpu", "precision": "fp32", "open_ms": 12.0, "peak_rss_mib": 80.0},
        ),
        notes=("torch.compile: example note",),
    )


def test_json_roundtrip_has_environment_ratios_and_timing_summaries(tmp_path):
    path = write_json(_report(), tmp_path / "out" / "bench.json")
    data = json.loads(path.read_text())
    assert data["schema"] == "genedge.bench/3"
    assert data["environment"]["cpu_model"] == "Test CPU"
    first = data["results"][0]
    assert first["latency"]["unit"] == "ms" and first["latency"]["p50"] == pytest.approx(1.0)
    assert "times_ns" not in first and first["cdf_ms"]["q"][0] == 0.0
    assert first["cdf_ms"]["ms"][0] == first["latency"]["min"]
    assert any(r["name"] == "speedup vs torch eager" and r["holds"] for r in data["ratios"])
    assert data["quality"][0]["metrics"]["accuracy"] == 0.91


def test_json_replaces_nan():
    rep = _report()
    d = rep.to_dict()
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in d["ratios"][0].values())


def test_markdown_sections(tmp_path):
    text = markdown(_report())
    for heading in (
        "## Latency",
        "## Ratios",
        "## Quality beside speed",
        "## Cold start",
        "## Notes",
    ):
        assert heading in text
    assert "| runtime ort-cpu fp32 | 1 | 1.000 |" in text
    assert "speedup vs torch eager" in text
    assert ">= 2.5x" not in text and "Must-hold" not in text  # genedge's own targets: asked only
    assert write_markdown(_report(), tmp_path / "b.md").read_text() == text
    graded = markdown(dataclasses.replace(_report(), options={"check_targets": True}))
    assert ">= 2.5x" in graded and "## Must-hold targets" in graded


def test_terminal_table_prints_ratios():
    buf = io.StringIO()
    print_report(_report(), file=buf)
    out = buf.getvalue()
    assert "speedup vs torch eager" in out and "3.00x" in out and "overhead vs bare ORT" in out
    for internal in ("Must-hold", "MISSED", ">= 2.5x", "holds"):
        assert internal not in out  # genedge's regression targets stay out of the user's report


def test_check_targets_grades_genedge_own_targets():
    buf = io.StringIO()
    print_report(dataclasses.replace(_report(), options={"check_targets": True}), file=buf)
    out = buf.getvalue()
    assert "Must-hold targets:" in out and ">= 2.5x" in out and "MISSED" in out


def test_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from genedge.bench.plot import write_plot

    path = write_plot(_report(), tmp_path / "bench.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


TRTEXEC = """\
[09/02/2024-17:14:34] [I] === Performance summary ===
[09/02/2024-17:14:34] [I] Throughput: 850.7 qps
[09/02/2024-17:14:34] [I] Latency: min = 1.1 ms, max = 5.3 ms, mean = 1.176 ms, median = 1.173 ms, percentile(90%) = 1.18 ms, percentile(95%) = 1.18 ms, percentile(99%) = 1.2 ms
[09/02/2024-17:14:34] [I] Enqueue Time: min = 0.69 ms, max = 5.1 ms, mean = 0.86 ms, median = 0.88 ms, percentile(90%) = 0.89 ms, percentile(95%) = 0.9 ms, percentile(99%) = 0.94 ms
[09/02/2024-17:14:34] [I] H2D Latency: min = 0.2 ms, max = 0.24 ms, mean = 0.219 ms, median = 0.22 ms, percentile(90%) = 0.22 ms, percentile(95%) = 0.22 ms, percentile(99%) = 0.23 ms
[09/02/2024-17:14:34] [I] GPU Compute Time: min = 0.8 ms, max = 4.9 ms, mean = 0.818 ms, median = 0.809 ms, percentile(90%) = 0.811 ms, percentile(95%) = 0.811 ms, percentile(99%) = 0.812 ms
[09/02/2024-17:14:34] [I] D2H Latency: min = 0.11 ms, max = 0.16 ms, mean = 0.138 ms, median = 0.142 ms, percentile(90%) = 0.147 ms, percentile(95%) = 0.149 ms, percentile(99%) = 0.157 ms
[09/02/2024-17:14:34] [I] Total Host Walltime: 3.00186 s
"""


def test_parse_trtexec_summary():
    s = parse_trtexec(TRTEXEC)
    assert s["throughput_qps"] == 850.7
    assert s["host_latency"]["median"] == 1.173 and s["host_latency"]["p99"] == 1.2
    assert s["gpu_compute"]["mean"] == 0.818 and s["gpu_compute"]["p90"] == 0.811
    assert s["h2d"]["max"] == 0.24 and s["d2h"]["median"] == 0.142 and s["enqueue"]["p95"] == 0.9
    assert shapes_arg({"z": [16, 64], "label": [16]}) == "z:16x64,label:16"


def test_must_hold_summary_names_missing_and_missed():
    from genedge.bench.ratios import must_hold

    rows = must_hold(compute_ratios(_results()))
    outcomes = [h for _, _, h in rows]
    assert outcomes == [True, True, False, True]  # overhead: int8 batch 16 is +11.1%
    assert "+11.1%" in rows[2][1] and "MISSED" in rows[2][1]
    only_runtime = [r for r in _results() if r.kind == "runtime"]
    assert [h for _, _, h in must_hold(compute_ratios(only_runtime))] == [None, None, None, True]


def test_terminal_latency_table_fits_100_columns_one_configuration_together():
    buf = io.StringIO()
    print_report(_report(), file=buf)
    lines = buf.getvalue().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Latency"))
    end = next(i for i, ln in enumerate(lines) if i > start and ln.startswith("└"))
    table = lines[start + 1 : end + 1]
    assert max(len(ln) for ln in table) < 100 and "p99.9" not in "".join(table)
    labels = [ln.split("│")[1].strip() for ln in table if ln.startswith("│")]
    firsts = [labels.index(name) for name in dict.fromkeys(labels)]
    assert all(
        labels[i : i + labels.count(n)] == [n] * labels.count(n)
        for i, n in zip(firsts, dict.fromkeys(labels), strict=True)
    )  # each configuration's batch sizes in one block
    assert "| p99.9 ms |" in markdown(_report())  # the Markdown keeps every column


def test_the_expected_duration_is_said_before_the_run():
    from pathlib import Path

    from genedge.bench.options import BenchOptions
    from genedge.bench.suite import expected_duration

    o = BenchOptions(bundle=Path("b"), seconds=2.0, cold_runs=1, fps=30.0, fps_seconds=5.0)
    line = expected_duration(o, cases=12, configurations=2)
    assert line.startswith("bench: 12 timed cases x 2 s, 2 cold starts, a 5 s real-time run")
    # 24 s timed + 3 s cold + 5 s real time + 12 cases x 10 rounds x 50 ms settling
    assert "about 38 s" in line and line.endswith("(plus loading and 20 warm-up calls per case)")
    assert line.startswith("bench: 12 timed cases")
    with_baselines = expected_duration(o, 12, 2, ["torch-compile", "torch-compile", "torch"])
    assert "about 51 s setting up the baselines" in with_baselines
    assert "run: about 89 s" in with_baselines and "busy" not in with_baselines
    busy = expected_duration(o, 12, 2, ["torch-compile", "torch-compile", "torch"], (8.0, 2))
    assert busy.endswith("the machine is busy (load 8.0 on 2 CPUs): expect about 284 s or more")
    assert "busy" not in expected_duration(o, 12, 2, [], (1.5, 2))
    assert "x 50 calls" in expected_duration(dataclasses.replace(o, seconds=None, iters=50), 12, 2)

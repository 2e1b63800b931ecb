"""The quality gate decides with a tolerance and records what it decided on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from genedge.export.checks.gate import gate
from genedge.export.options import ExportOptions
from genedge.export.stages.mixed import GateResult, search_recipe
from genedge.export.stages.precision import fallback_refusal
from genedge.manifest import Verification, verification_from


def _ctx(**kw) -> SimpleNamespace:
    return SimpleNamespace(opts=ExportOptions(source="c", out="o", **kw))


def _rec(acc_fp32: float, acc: float) -> dict:
    from genedge.export.checks.quality import metric_drop

    ref, now = {"conditional_accuracy": acc_fp32}, {"conditional_accuracy": acc}
    return {
        "samples": 1000,
        "psnr_vs_fp32": 35.0,
        "ssim_vs_fp32": 0.99,
        "metrics": now,
        "metrics_fp32": ref,
        "metric_drop": metric_drop(ref, now),
    }


def test_a_drop_equal_to_the_budget_passes_and_the_numbers_are_recorded():
    rec = _rec(0.755, 0.745)
    assert rec["metric_drop"] > 0.01  # 0.010000000000000009: float rounding
    assert gate(_ctx(max_quality_drop=0.01), rec, use_metric=True)
    assert rec["checks"] == ["psnr", "task_metric"]
    assert rec["metric_budget"] == 0.01 and rec["psnr_floor"] == 30.0
    assert "<= budget 0.01" in rec["reason"] and "1000 held-out samples" in rec["reason"]
    v = verification_from(rec, "test")  # the manifest keeps every number of the verdict
    assert (v.metric_budget, v.samples, v.checks) == (0.01, 1000, ("psnr", "task_metric"))
    assert v.metric_drop == pytest.approx(0.01)


def test_a_drop_over_the_budget_fails_and_says_by_how_much():
    rec = _rec(0.755, 0.740)
    assert not gate(_ctx(max_quality_drop=0.01), rec, use_metric=True)
    assert "conditional_accuracy drop 0.0150 > budget 0.01" in rec["reason"]


def test_psnr_exactly_at_the_floor_passes():
    rec = {"samples": 16, "psnr_vs_fp32": 30.0, "ssim_vs_fp32": 0.9}
    assert gate(_ctx(min_psnr=30.0), rec, use_metric=False)
    rec["psnr_vs_fp32"] = 29.9
    assert not gate(_ctx(min_psnr=30.0), rec, use_metric=False)


def test_without_reference_data_the_record_says_image_quality_only():
    rec = {"samples": 1000, "psnr_vs_fp32": 40.0, "ssim_vs_fp32": 0.99}
    assert gate(_ctx(), rec, use_metric=True)
    assert rec["checks"] == ["psnr"] and "metric_budget" not in rec
    assert "image quality only" in rec["reason"] and "--eval-data" in rec["reason"]


def test_unconditional_metrics_are_not_a_task_metric_check():
    rec = _rec(0.9, 0.9)
    rec["metrics_fp32"] = rec["metrics"] = {"frechet_distance": 3.0}
    assert gate(_ctx(), rec, use_metric=True)
    assert rec["checks"] == ["psnr"] and "recorded, not gated" in rec["reason"]


def test_default_samples_resolve_a_tenth_of_the_default_budget():
    o = ExportOptions(source="c", out="o")
    assert 1 / o.quality_samples <= o.max_quality_drop / 10


def test_recipe_keeps_the_all_int8_result_that_made_it_fall_back(tmp_path):
    scores = {(): 10.0, ("a",): 20.0, ("b",): 12.0}

    def build(kept):
        return tmp_path / ("_".join(kept) or "all")

    def evaluate(path):
        kept = () if path.name == "all" else tuple(path.name.split("_"))
        s = scores.get(kept, 25.0)
        return GateResult(s >= 20.0, s, {"reason": f"score {s}"})

    recipe = search_recipe(build, evaluate, ["a", "b"])
    assert recipe.kept_float == ("a",) and recipe.result.passed
    assert recipe.all_int8 is not None and recipe.all_int8.record["reason"] == "score 10.0"


def test_a_fallback_no_smaller_and_no_faster_than_fp32_is_refused():
    why = fallback_refusal(1.02, 0.8, 3, "PSNR 20.0 dB < 30")
    assert why and "PSNR 20.0 dB < 30" in why and "102%" in why and "0.80x" in why
    assert fallback_refusal(0.5, 0.8, 3, "") is None  # smaller: kept
    assert fallback_refusal(1.02, 1.3, 3, "") is None  # faster: kept


def test_fp32_reads_as_approved(gan_bundle):
    from genedge.manifest import read_manifest

    m = read_manifest(gan_bundle)
    fp32 = m.find(precision="fp32")[0]
    assert fp32.quality_approved and fp32.verification.verdict == "pass"
    assert fp32.verification.checks == ("parity",)
    for a in m.artifacts:
        if a.precision in ("fp16", "int8"):
            assert a.verification.reason and a.verification.checks
    assert Verification().checks == ()

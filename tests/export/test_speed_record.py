"""Export's speed record: every installed CPU backend, the load it was taken under, and an
untuned ``backend="auto"`` that picks by it (never by a record taken on a busy machine)."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from genedge.manifest import Artifact, read_manifest
from genedge.runtime.speed_record import fastest_cpu
from genedge.runtime.speed_record import fastest_in_record as fastest_measured

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


def _art(precision, ort, openvino=None, approved=True, busy=False):
    speed = {
        "batch": {b: {"p50_ms": v} for b, v in zip(("1", "16"), ort, strict=True)},
        "load": {"busy": busy},
    }
    if openvino:
        speed["others"] = {"openvino": dict(zip(("1", "16"), openvino, strict=True))}
    return Artifact(
        f"model.{precision}.onnx",
        "generator",
        "onnx",
        "0" * 64,
        1,
        precision,
        {"verdict": "pass"},
        quality_approved=approved,
        speed=speed,
    )


BOTH = ("ort-cpu", "openvino")


def test_fastest_cpu_picks_across_backends_at_the_nearest_batch():
    found = {
        "fp32": _art("fp32", (1.0, 8.5), (1.2, 6.1)),
        "int8": _art("int8", (1.5, 5.0), (1.1, 4.0)),
    }
    backend, a, why = fastest_cpu(found, 16, BOTH)
    assert (backend, a.precision) == ("openvino", "int8") and "batch 16" in why
    assert fastest_cpu(found, 8, BOTH)[:2] == ("openvino", a)  # 8 is nearer 16 than 1
    assert fastest_cpu(found, 16, ("ort-cpu",))[:2] == ("ort-cpu", found["int8"])
    assert fastest_cpu(found, 1, BOTH) is None  # nothing beats ORT fp32 by 5% at batch 1
    found["int8"] = _art("int8", (1.5, 5.0), (1.1, 4.0), approved=False)
    assert fastest_cpu(found, 16, BOTH)[:2] == ("openvino", found["fp32"])


def test_a_record_taken_on_a_busy_machine_is_not_used():
    found = {
        "fp32": _art("fp32", (1.0, 8.5), (1.2, 6.1), busy=True),
        "int8": _art("int8", (0.5, 4.0), (0.4, 3.0), busy=True),
    }
    assert fastest_cpu(found, 16, BOTH) is None
    chosen, why = fastest_measured(found)  # ort-cpu's precision: the reference, said why
    assert chosen.precision == "fp32" and "busy machine" in why and "genedge tune" in why
    assert found["fp32"].speed.busy and found["fp32"].speed.to_dict()["load"] == {"busy": True}


def test_the_record_round_trips_through_the_manifest(gan_bundle):
    m = read_manifest(gan_bundle)
    for a in m.find(format="onnx"):
        s = a.speed
        assert s is not None and s.load is not None and isinstance(s.load["busy"], bool)
        assert s.load["rounds"] >= 3 and len(s.load["load_average"]) == 2
        if HAS_OPENVINO:  # every installed CPU backend, side by side
            assert set(s.others) == {"openvino"} and set(s.others["openvino"]) == {1, 16}
        assert Artifact(**{**a.to_dict(), "speed": s.to_dict()}).speed == s


def test_inspect_shows_every_backend_and_whether_the_machine_was_busy(gan_bundle):
    from genedge.export.inspection import describe, format_report

    text = format_report(describe(gan_bundle))
    busy = read_manifest(gan_bundle).find(precision="fp32")[0].speed.busy
    assert ("openvino p50 (batch 1 / 16): fp32 " in text) == HAS_OPENVINO
    assert ("backend='auto' does not" in text) == busy


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs openvino")
def test_untuned_auto_opens_what_the_record_says_is_fastest(gan_bundle, tmp_path, caplog):
    from genedge.runtime import Sampler

    bundle = tmp_path / "b"
    shutil.copytree(gan_bundle, bundle)
    raw = json.loads((bundle / "manifest.json").read_text())
    for a in raw["artifacts"]:
        if a["format"] == "onnx":
            for rec in a["speed"]["batch"].values():
                rec["p50_ms"] = 10.0  # ORT: every precision slower than OpenVINO fp32
            ov = {"1": 9.0, "16": 1.0 if a["precision"] == "fp32" else 50.0}
            a["speed"].update(others={"openvino": ov}, load={"busy": False})
    (bundle / "manifest.json").write_text(json.dumps(raw))
    log = caplog.at_level("INFO", logger="genedge.runtime")
    with log, Sampler.open(bundle, backend="auto", batch=16) as s:
        assert (s.backend.info.name, s.backend.info.precision) == ("openvino", "fp32")
    assert "export's CPU speed record at batch 16" in caplog.text
    for a in raw["artifacts"]:
        if a["format"] == "onnx":
            a["speed"]["load"] = {"busy": True}
    (bundle / "manifest.json").write_text(json.dumps(raw))
    with Sampler.open(bundle, backend="auto", batch=16) as s:
        assert s.backend.info.name == "ort-cpu"  # a busy record decides nothing

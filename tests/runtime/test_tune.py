"""``genedge tune`` and the tuned ``backend="auto"``: the cache (key, place, atomic JSON),
the choice per batch size, the fallback to the fixed rule, the opt-in probe."""

from __future__ import annotations

import json
import logging

import pytest

from genedge.cli import main
from genedge.runtime import tune, tune_cache
from genedge.runtime.select import BackendOptions, read_bundle

pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GENEDGE_TUNE", raising=False)
    return tmp_path / "cache" / "tune"


def _record(batches: dict[int, dict[str, float]]) -> dict:
    return {
        "format": tune_cache.FORMAT,
        "version": tune_cache.VERSION,
        "batches": {str(b): {"p50_ms": p50} for b, p50 in batches.items()},
    }


def test_choose_nearest_batch_and_precision() -> None:
    rec = _record(
        {
            1: {"ort-cpu int8": 0.2, "openvino int8": 0.3},
            16: {"ort-cpu fp32": 5.0, "openvino int8": 1.6},
        }
    )
    assert tune.choose(rec, 1).candidate == tune.Candidate("ort-cpu", "int8")
    c = tune.choose(rec, 12)  # log scale: 12 is nearer 16 than 1
    assert c.candidate == tune.Candidate("openvino", "int8") and c.batch == 16
    assert "batch 12 asked, 16 the nearest" in c.why and "ort-cpu fp32 5 ms" in c.why
    assert tune.choose(rec, 3).batch == 1
    assert tune.choose(rec, 16, precision="fp32").candidate == tune.Candidate("ort-cpu", "fp32")
    assert tune.choose(rec, 1, precision="bf16") is None
    assert tune.nearest_batch([1, 16], 4) == 16  # a tie on the log scale: the larger


def test_key_depends_on_threads_and_bundle(cgan_bundle, gan_bundle) -> None:
    m = read_bundle(cgan_bundle.path)
    a = tune_cache.tune_path(m, "generator", 1)
    assert a != tune_cache.tune_path(m, "generator", 2)
    assert a != tune_cache.tune_path(read_bundle(gan_bundle.path), "generator", 1)
    assert a == tune_cache.tune_path(m, "generator", 1)
    ident = tune_cache.tune_identity(m, "generator", 1)
    assert ident["threads"] == 1 and "onnxruntime" in ident["versions"] and ident["cpu"]


def test_tune_measures_and_caches(cgan_bundle, cache) -> None:
    m = read_bundle(cgan_bundle.path)
    record, path = tune.tune_manifest(m, batches=(1, 4), threads=1, seconds=0.4)
    assert path.parent == cache and path.is_file()
    assert json.loads(path.read_text()) == json.loads(json.dumps(record))
    labels = {c.label for c in tune.candidates(m, "generator")[0]}
    assert "ort-cpu fp32" in labels
    for b in ("1", "4"):
        rec = record["batches"][b]
        assert set(rec["p50_ms"]) == labels
        assert set(rec["relative"]) == labels and min(rec["relative"].values()) >= 1.0
        fastest = min(rec["relative"], key=rec["relative"].get)
        assert f"{rec['choice']['backend']} {rec['choice']['precision']}" == fastest
        assert rec["rounds"] >= tune.MIN_ROUNDS
        assert all(n >= tune.MIN_ROUNDS for n in rec["runs"].values())
    tune.tune_manifest(m, batches=(2,), threads=1, seconds=0.2)  # merged, not replaced
    assert set(json.loads(path.read_text())["batches"]) == {"1", "2", "4"}


def test_auto_uses_the_tuning_per_batch(cgan_bundle, caplog) -> None:
    pytest.importorskip("openvino")
    from genedge.runtime import Sampler

    m = read_bundle(cgan_bundle.path)
    path = tune_cache.tune_path(m, "generator", 1)
    path.parent.mkdir(parents=True)
    rec = _record(
        {
            1: {"ort-cpu fp32": 0.1, "openvino fp32": 0.2},
            16: {"ort-cpu fp32": 2.0, "openvino fp32": 1.0},
        }
    )
    path.write_text(json.dumps(rec))
    with caplog.at_level(logging.INFO, "genedge.runtime"):
        with Sampler.open(cgan_bundle.path, threads=1, batch=16) as s:
            assert s.info.backend == "openvino"
        assert "fastest at batch 16 in this machine's tuning" in caplog.text
        with Sampler.open(cgan_bundle.path, threads=1) as s:  # batch unset: 1
            assert s.info.backend == "ort-cpu"
        with Sampler.open(cgan_bundle.path, threads=1, batch=12, precision="fp32") as s:
            assert s.info.backend == "openvino"  # nearest measured: 16
    with Sampler.open(cgan_bundle.path, threads=2, batch=16) as s:  # another key: no tuning
        assert s.info.backend == "ort-cpu"


def test_unusable_choice_or_cache_falls_back_to_the_rule(cgan_bundle, caplog) -> None:
    from genedge.runtime import Sampler

    m = read_bundle(cgan_bundle.path)
    path = tune_cache.tune_path(m, "generator", 1)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_record({1: {"ort-cuda fp16": 0.01}})))  # not on this machine
    with (
        caplog.at_level(logging.WARNING, "genedge.runtime"),
        Sampler.open(cgan_bundle.path, threads=1) as s,
    ):
        assert s.info.backend == "ort-cpu"
    assert "tuned choice ort-cuda fp16 cannot open" in caplog.text
    path.write_text("{not json")
    with Sampler.open(cgan_bundle.path, threads=1) as s:
        assert s.info.backend == "ort-cpu"


def test_probe_on_first_open_is_opt_in(cgan_bundle, cache, monkeypatch) -> None:
    from genedge.runtime import Sampler

    monkeypatch.setattr(tune, "PROBE_SECONDS", 0.2)
    with Sampler.open(cgan_bundle.path, threads=1, batch=2):
        pass
    assert not cache.exists()  # not on by default
    with Sampler.open(cgan_bundle.path, threads=1, batch=2, tune=True) as s:
        path = tune_cache.tune_path(read_bundle(cgan_bundle.path), "generator", 1)
        assert set(json.loads(path.read_text())["batches"]) == {"2"}
        assert s.info.backend in tune.available_backends()
    monkeypatch.setenv("GENEDGE_TUNE", "1")
    with Sampler.open(cgan_bundle.path, threads=1, batch=8):
        pass
    assert set(json.loads(path.read_text())["batches"]) == {"2", "8"}


def test_options_for_tuning_are_checked() -> None:
    from genedge.errors import BadInputError
    from genedge.runtime.select import backend_options

    assert backend_options(batch=16, tune=True) == BackendOptions(batch=16, tune=True)
    with pytest.raises(BadInputError, match="batch"):
        backend_options(batch=0)


def test_cli(cgan_bundle, capsys) -> None:
    assert (
        main(
            ["tune", str(cgan_bundle.path), "--batch", "1,3", "--threads", "1", "--seconds", "0.3"]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "batch 1: -> " in out.out and "batch 3: -> " in out.out
    assert "cached in" in out.err
    assert main(["tune", str(cgan_bundle.path), "--batch", "0"]) == 2
    assert "--batch 0" in capsys.readouterr().err
    assert main(["tune", str(cgan_bundle.path), "--backends", "nope"]) == 2
    assert main(["tune", str(cgan_bundle.path), "--threads", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    text = capsys.readouterr().out
    assert "genedge tune gan-bundle --batch 1,16" in text and "(default: 1,16)" in text


def test_candidates_are_the_approved_pairs_installed_here(cgan_bundle, bundle_copy, monkeypatch):
    from genedge.runtime import machine

    path = bundle_copy(cgan_bundle)
    raw = json.loads((path / "manifest.json").read_text())
    gate = {"backend": "openvino", "quality_approved": True, "verification": {"verdict": "pass"}}
    raw["artifacts"][0]["inference_precisions"] = {"bf16": gate}
    (path / "manifest.json").write_text(json.dumps(raw))
    m = read_bundle(path)
    backends = ["ort-cpu", "openvino"]
    monkeypatch.setattr(machine, "cpu_flags", lambda *a: {"avx2"})
    got, skipped = tune.candidates(m, "generator", backends)
    assert {c.label for c in got} == {"ort-cpu fp32", "openvino fp32"}
    assert "avx512_bf16" in skipped["openvino bf16"] and "ort-cpu bf16" not in skipped
    monkeypatch.setattr(machine, "cpu_flags", lambda *a: {"amx_bf16"})
    got, _ = tune.candidates(m, "generator", backends)
    assert tune.Candidate("openvino", "bf16") in got
    gate["quality_approved"] = False
    (path / "manifest.json").write_text(json.dumps(raw))
    got, skipped = tune.candidates(read_bundle(path), "generator", backends)
    assert skipped["openvino bf16"] == "not quality-approved at export"


def test_relative_to_fastest_cancels_a_slow_round() -> None:
    # b is faster in 3 of 4 rounds; one loaded round makes its pooled times look worse
    rounds = {"a": [1.0, 1.0, 1.0, 1.0], "b": [0.9, 0.9, 0.9, 5.0]}
    rel = tune.relative_to_fastest(rounds)
    assert rel["b"] == 1.0 and rel["a"] == pytest.approx(1 / 0.9)


def test_choose_ranks_by_relative_when_recorded() -> None:
    record = {
        "batches": {
            "1": {
                "p50_ms": {"ort-cpu fp32": 1.0, "openvino fp32": 1.1},
                "relative": {"ort-cpu fp32": 1.08, "openvino fp32": 1.0},
            }
        }
    }
    assert tune.choose(record, 1).candidate == tune.Candidate("openvino", "fp32")
    del record["batches"]["1"]["relative"]  # a tuning from before: pooled p50 decides
    assert tune.choose(record, 1).candidate == tune.Candidate("ort-cpu", "fp32")

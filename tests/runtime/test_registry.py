"""A backend is one file plus one registry line: auto, tune and bench see a stand-in."""

from __future__ import annotations

import pytest
import standin_backend

from genedge.errors import BadInputError
from genedge.runtime import registry, tune, tune_cache
from genedge.runtime.select import check_names, read_bundle

pytest.importorskip("onnxruntime")


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setattr(registry, "SPECS", [standin_backend.SPEC, *registry.SPECS])  # the line
    return standin_backend.NAME


def test_unregistered_name_is_refused_with_the_registered_ones():
    with pytest.raises(BadInputError, match="ort-cpu") as e:
        check_names(standin_backend.NAME, None)
    assert "auto" in e.value.message


def test_auto_opens_the_stand_in_first(standin, gan_bundle, monkeypatch, tmp_path):
    from genedge.runtime import Sampler

    monkeypatch.setenv("GENEDGE_CACHE", str(tmp_path))  # no tuning of this machine
    check_names(standin, "fp32")
    with Sampler.open(gan_bundle.path, backend="auto", threads=1) as s:
        assert s.info.backend == standin
        assert s.sample(2, seed=0).shape[0] == 2


def test_tune_measures_the_stand_in(standin, gan_bundle, monkeypatch, tmp_path):
    monkeypatch.setenv("GENEDGE_CACHE", str(tmp_path))
    assert standin in tune.available_backends()
    m = read_bundle(gan_bundle.path)
    record, _ = tune.tune_manifest(
        m, batches=(1,), threads=1, seconds=0.2, backends=[standin, "ort-cpu"]
    )
    assert {f"{standin} fp32", "ort-cpu fp32"} <= set(record["batches"]["1"]["p50_ms"])
    assert tune_cache.checked_tuning(record) is record  # its label reads back from the cache


def test_bench_times_the_stand_in(standin, gan_bundle):
    from genedge.bench.options import BenchOptions
    from genedge.bench.suite import run_bench

    opts = BenchOptions(
        gan_bundle.path,
        backends=(standin,),
        precisions=("fp32",),
        batches=(1,),
        iters=3,
        warmup=1,
        rounds=1,
        threads=1,
        baselines=(),
        cold_runs=0,
    )
    report = run_bench(opts)
    timed = [r for r in report.results if r.kind == "runtime"]
    assert timed and {r.backend for r in timed} == {standin}
    assert all(r.stats.n == 3 for r in timed)


def test_every_backend_runs_known_precisions_and_hints_name_a_backend():
    from genedge import precisions

    for spec in registry.SPECS:
        assert set(spec.prefer) <= set(spec.precisions) <= set(precisions.RUN_PRECISIONS)
    for hint, backend in precisions.INFERENCE_PRECISIONS.items():
        assert hint in registry.spec(backend).precisions
    assert registry.reference().device == "cpu"
    assert [s.name for s in registry.SPECS if s.in_auto] == ["tensorrt", "ort-cuda", "ort-cpu"]

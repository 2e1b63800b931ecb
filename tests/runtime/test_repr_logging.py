"""The `genedge` logger says what `auto` chose; Sampler and TextGenerator reprs say what runs."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("onnxruntime")

from genedge.runtime import Sampler, TextGenerator  # noqa: E402


def _choices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.split(".")[0] == "genedge"]


def test_backend_auto_reports_its_choice_on_the_genedge_logger(gan_bundle, caplog):
    caplog.set_level(logging.INFO, logger="genedge")
    with Sampler.open(gan_bundle.path, backend="auto") as s:
        info = s.info
    lines = _choices(caplog)
    assert any(
        ln.startswith(f"backend auto -> {info.backend}")
        and info.precision in ln
        and info.file in ln
        for ln in lines
    ), lines


def test_precision_auto_reports_its_choice(gan_bundle, caplog):
    caplog.set_level(logging.INFO, logger="genedge")
    with Sampler.open(gan_bundle.path, backend="ort-cpu") as s:
        precision = s.info.precision
    lines = _choices(caplog)
    # a bundle with fp32 alone has nothing to choose between and logs nothing about it
    assert precision == "fp32" and not any("precision auto" in ln for ln in lines), lines


def test_precision_auto_between_artifacts_says_why(bundle_factory, caplog):
    pytest.importorskip("torch")
    from genedge.export.bundle import export_bundle
    from genedge.export.options import ExportOptions

    tiny = bundle_factory("gan-repr", "gan")
    out = tiny.path.parent / "gan-repr-int8"
    export_bundle(
        ExportOptions(
            source=tiny.checkpoint,
            out=out,
            precisions=("fp32", "int8"),
            calib_samples=32,
            quality_samples=16,
            parity_seeds=(0,),
        )
    )
    caplog.set_level(logging.INFO, logger="genedge")
    with Sampler.open(out, backend="ort-cpu") as s:
        precision = s.info.precision
    lines = [ln for ln in _choices(caplog) if ln.startswith("precision auto -> ")]
    assert lines and lines[-1].startswith(f"precision auto -> {precision} on ort-cpu: "), lines


def test_sampler_repr_shows_backend_precision_and_file(gan_bundle):
    s = Sampler.open(gan_bundle.path, backend="ort-cpu", precision="fp32")
    text = repr(s)
    assert text.startswith("Sampler(") and "backend='ort-cpu'" in text
    assert "precision='fp32'" in text and "file='model.onnx'" in text
    assert repr(str(gan_bundle.path.resolve())) in text and "closed" not in text
    s.close()
    assert repr(s).endswith(", closed)")


def test_text_generator_repr_shows_backend_precision_and_file(ar_bundle):
    tg = TextGenerator.open(ar_bundle.path, backend="ort-cpu")
    text = repr(tg)
    assert text.startswith("TextGenerator(") and "backend='ort-cpu'" in text
    assert "precision='fp32'" in text and "file='model.onnx'" in text
    tg.close()
    assert repr(tg).endswith(", closed)")

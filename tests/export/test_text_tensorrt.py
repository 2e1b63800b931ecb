"""TensorRT engines of transformer bundles: the profiles over B, S and P (pure, on CPU), the
builder calls they make (against the stand-in ``tensorrt`` of test_trt_build), the refusal
without TensorRT, and a real build on a GPU (``gpu``: skipped without one)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from genedge.errors import BadInputError
from genedge.export.stages.tensorrt import STRONGLY_TYPED, EngineRequest, engine_from_onnx
from genedge.export.stages.text_tensorrt import (
    engine_sources,
    text_profile_shapes,
    text_profiles,
)
from genedge.runtime import cuda

pytest.importorskip("transformers")
from text_fixtures import hf_folder, sample_text  # noqa: E402

from genedge.export.routes.text_wrappers import DecoderShape, decoder_graph_spec  # noqa: E402

SHAPE = DecoderShape(num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, vocab_size=320)


def manifest_inputs() -> list[dict]:
    """The decoder's inputs as the manifest records them (``graphs.decoder.inputs``)."""
    return decoder_graph_spec(SHAPE).to_dict()["inputs"]


def test_prefill_and_decode_profiles_span_the_context():
    prefill, decode = text_profiles(64)
    assert (prefill.name, prefill.new_tokens, prefill.cached) == (
        "prefill",
        (1, 64, 64),
        (0, 0, 63),
    )
    assert (decode.name, decode.new_tokens, decode.cached) == ("decode", (1, 1, 1), (0, 32, 63))
    assert text_profiles(4096)[0].new_tokens == (1, 128, 4096)
    assert text_profiles(64, (2, 2, 2))[1].batch == (2, 2, 2)
    assert text_profiles(64)[1].record() == {
        "name": "decode",
        "B": [1, 1, 1],
        "S": [1, 1, 1],
        "P": [0, 32, 63],
    }
    with pytest.raises(BadInputError):
        text_profiles(1)


def test_profile_shapes_from_the_manifest_io():
    inputs = manifest_inputs()
    prefill, decode = (text_profile_shapes(inputs, p) for p in text_profiles(64))
    assert set(prefill) == {t["name"] for t in inputs} and len(prefill) == 2 + 2 * 2
    assert prefill["input_ids"] == ((1, 1), (1, 64), (1, 64))
    assert prefill["position_ids"] == ((1, 1), (1, 64), (1, 64))
    assert prefill["past_key_values.1.value"] == ((1, 2, 0, 16), (1, 2, 0, 16), (1, 2, 63, 16))
    assert decode["input_ids"] == ((1, 1), (1, 1), (1, 1))
    assert decode["past_key_values.0.key"] == ((1, 2, 0, 16), (1, 2, 32, 16), (1, 2, 63, 16))
    odd = [{"name": "x", "shape": ["B", "Q"]}]
    with pytest.raises(BadInputError, match="'Q'"):
        text_profile_shapes(odd, text_profiles(64)[0])


def test_only_graphs_tensorrt_parses_get_engines():
    assert engine_sources({"fp32", "fp16", "int8", "int4"}) == [
        ("fp32", "model.onnx"),
        ("fp16", "model.fp16.onnx"),
    ]
    assert engine_sources({"fp32", "int4"}) == [("fp32", "model.onnx")]


def test_the_builder_gets_one_profile_per_text_profile(monkeypatch, tmp_path):
    from test_trt_build import fake_tensorrt

    trt = fake_tensorrt({b""}, [])
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(cuda, "_LOGGER", None)
    calls: list[list] = []

    class Recorder:
        def __init__(self) -> None:
            calls.append([])

        def set_shape(self, name, lo, opt, hi) -> None:
            calls[-1].append((name, lo, opt, hi))

    monkeypatch.setattr(trt.Builder, "create_optimization_profile", lambda self: Recorder())
    inputs = manifest_inputs()
    shapes = tuple(text_profile_shapes(inputs, p) for p in text_profiles(64))
    req = EngineRequest(
        tmp_path / "model.onnx", "fp32", STRONGLY_TYPED, tuple(inputs), ((1, 1, 1),), shapes=shapes
    )
    assert engine_from_onnx(req).plan == b"plan"
    assert len(calls) == 2
    for made, want in zip(calls, shapes, strict=True):
        assert {name: (lo, opt, hi) for name, lo, opt, hi in made} == want


def test_trt_without_tensorrt_is_exit_3_before_any_work(tmp_path, capsys):
    if "tensorrt" in sys.modules or _importable("tensorrt"):
        pytest.skip("tensorrt is installed here")
    from genedge.cli import main

    folder = hf_folder(tmp_path / "llama", "llama")
    out = tmp_path / "b"
    assert main(["export", str(folder), "--out", str(out), "--trt"]) == 3
    err = capsys.readouterr().err
    assert "tensorrt" in err and "genedge[trt" in err and "Traceback" not in err
    assert not out.exists()


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.gpu
def test_decoder_engines_build_and_score_like_onnx_runtime(tmp_path):
    pytest.importorskip("tensorrt")
    from text_fixtures import export_folder

    from genedge.manifest import read_manifest

    folder = hf_folder(tmp_path / "llama", "llama")
    held = tmp_path / "held.txt"
    held.write_text(sample_text()[-2500:], encoding="utf-8")
    bundle = export_folder(
        folder, tmp_path / "b", precisions=("fp32", "fp16"), eval_data=str(held), trt=True
    )
    m = read_manifest(bundle)
    engines = m.find(format="engine")
    assert {a.precision for a in engines} == {"fp32", "fp16"}
    for a in engines:
        v = a.verification.extra
        assert [p["name"] for p in a.engine.extra["text_profiles"]] == ["prefill", "decode"]
        assert a.verification.verdict == "pass" and v["perplexity_ratio"] <= v["bound"]
        assert v["tokens"] > 1000 and Path(bundle / a.file).stat().st_size > 0
    fp32 = next(a for a in engines if a.precision == "fp32")
    assert fp32.verification.max_abs_err_vs_fp32 < 1e-2


def test_batch_range_and_trt_options_that_do_not_apply(tmp_path, capsys):
    from genedge.cli import main
    from genedge.export.stages.text_tensorrt import text_batch

    assert text_batch(((1, 8, 32),)) == (1, 1, 32)
    assert text_batch(((4, 4, 4), (16, 16, 16))) == (1, 1, 16)
    folder = hf_folder(tmp_path / "llama", "llama")
    for flags, what in (
        (["--dla-core", "0", "--trt-profile", "1"], "--dla-core 0"),
        (["--trt-path", "legacy"], "--trt-path legacy"),
    ):
        out = tmp_path / "b"
        assert main(["export", str(folder), "--out", str(out), "--trt", *flags]) == 2
        err = capsys.readouterr().err
        assert what in err and "Traceback" not in err and not out.exists()

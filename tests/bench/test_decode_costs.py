"""bench/decode_costs.py: the graphs it cuts from a KV-cache decoder (no attention, weights
only) and what they compute, the step it binds, the breakdown's arithmetic, and its command
line on a tiny exported Llama (fp32 and int4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from text_fixtures import export_folder, hf_folder  # noqa: E402

from genedge.bench import decode_costs as dc  # noqa: E402
from genedge.runtime.ort_backend import OrtBackend  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("costs")
    folder = hf_folder(d / "hf", "llama", max_position_embeddings=64)
    return export_folder(folder, d / "b", precisions=("fp32", "int4"))


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("file", ["model.onnx", "model.int4.onnx"])
def test_without_attention_drops_the_cache_and_runs(bundle, tmp_path, file):
    model = onnx.load(str(bundle / file))
    cut = dc.without_attention(model)
    assert "GroupQueryAttention" not in _ops(cut)
    assert _ops(cut).count("Slice") == _ops(model).count("Slice") + _ops(model).count(
        "GroupQueryAttention"
    )
    assert [o.name for o in cut.graph.output] == ["logits"]
    assert not any(i.name.startswith("past_key_values.") for i in cut.graph.input)
    path = tmp_path / "cut.onnx"
    onnx.save(cut, str(path))
    b = OrtBackend.open(path)
    try:
        (vocab,) = (t.shape[-1] for t in b.outputs if t.name == "logits")
        logits = np.empty((1, 1, vocab), np.float32)
        feed = {"input_ids": np.ones((1, 1), np.int64)}
        # positions fed only the attention (rotary and cache lengths): gone with it
        assert {t.name for t in b.inputs} == set(feed)
        b.run_bound(feed, {"logits": logits})
        assert np.isfinite(logits).all()
    finally:
        b.close()


def test_weights_only_computes_each_weight_product(bundle, tmp_path):
    model = onnx.load(str(bundle / "model.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    cut = dc.weights_only(model)
    assert len(cut.graph.node) == len(matmuls)
    path = tmp_path / "w.onnx"
    onnx.save(cut, str(path))
    b = OrtBackend.open(path)
    try:
        rng = np.random.default_rng(1)
        feed = {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in b.inputs}
        out = {t.name: np.empty(t.shape, np.float32) for t in b.outputs}
        b.run_bound(feed, out)
    finally:
        b.close()
    for n, src in zip(cut.graph.node, matmuls, strict=True):
        w = numpy_helper.to_array(inits[src.input[1]])
        np.testing.assert_allclose(out[n.output[0]], feed[n.input[0]] @ w, rtol=1e-4, atol=1e-5)


def test_weights_only_keeps_matmulnbits_with_its_constants(bundle):
    model = onnx.load(str(bundle / "model.int4.onnx"))
    nbits = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    cut = dc.weights_only(model)
    assert [n.op_type for n in cut.graph.node].count("MatMulNBits") == len(nbits)
    names = {t.name for t in cut.graph.initializer}
    assert all(i in names for n in cut.graph.node for i in n.input[1:] if i)
    widths = {int(i.type.tensor_type.shape.dim[1].dim_value) for i in cut.graph.input}
    assert widths == {int(dc._attr(n, "K")) for n in nbits}


def test_bound_step_writes_the_token_at_its_position(bundle):
    head = dc.head_size(onnx.load(str(bundle / "model.onnx"), load_external_data=False))
    step = dc.BoundStep(bundle / "model.onnx", 5, 1, head)
    try:
        _, out = step._keep
        key = out["present.0.key"]
        assert key.shape[2] == 6 and key.shape[3] == head
        assert np.abs(key[0, :, 5]).sum() > 0  # the new token's key, in place
        assert not key[0, :, :5].any()  # the (zero) past is left as it was
        assert step.median_us(runs=3, warm=1) > 0
    finally:
        step.close()


def test_breakdown_takes_differences_within_rounds():
    full = [10.0, 12.0, 30.0]
    no_attention = [7.0, 8.0, 26.0]
    weights = [5.0, 5.0, 5.0]
    b = dc.breakdown("g", 9, [full, no_attention, weights])
    assert (b.full_us, b.weights_us, b.rounds, b.position) == (12.0, 5.0, 3, 9)
    assert b.attention_us == 4.0  # median of 3, 4, 4
    assert b.other_us == 3.0  # median of 2, 3, 21
    assert b.attention_iqr == (3.5, 4.0)


def test_command_line_writes_its_reports(bundle, tmp_path, capsys):
    md, js, png = tmp_path / "c.md", tmp_path / "c.json", tmp_path / "c.png"
    argv = [str(bundle / "model.onnx"), str(bundle / "model.int4.onnx"), "--labels", "fp32,int4"]
    argv += ["--positions", "3,20", "--rounds", "2", "--threads", "1"]
    rc = dc.main([*argv, "--markdown", str(md), "--json", str(js), "--plot", str(png)])
    assert rc == 0
    rows = json.loads(js.read_text())["results"]
    assert [(r["label"], r["position"]) for r in rows] == [
        ("fp32", 3),
        ("int4", 3),
        ("fp32", 20),
        ("int4", 20),
    ]
    assert all(r["full_us"] > 0 and r["weights_us"] > 0 and r["rounds"] == 2 for r in rows)
    assert "| fp32 | 20 |" in md.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, said",
    [
        (["missing.onnx"], "is not a file"),
        (["{model}", "--positions", "a,b"], "expected comma-separated integers"),
        (["{model}", "--labels", "a,b"], "--labels names 2 graphs; 1 were given"),
        (["{model}", "--rounds", "0"], "at least 1"),
        (["{weights}"], "No GroupQueryAttention"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(bundle, tmp_path, capsys, args, said):
    weights = tmp_path / "w.onnx"
    onnx.save(dc.weights_only(onnx.load(str(bundle / "model.onnx"))), str(weights))
    argv = [a.format(model=bundle / "model.onnx", weights=weights) for a in args]
    assert dc.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and err.startswith("decode_costs: error:") and "\n" not in err


def test_graphs_of_one_name_are_cut_apart(bundle, tmp_path):
    """Every decoder is a model.onnx: the cut graphs of two of them must not overwrite
    each other."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d, src in ((a, "model.onnx"), (b, "model.int4.onnx")):
        d.mkdir()
        (d / "model.onnx").write_bytes((bundle / src).read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    cuts = dc.cut_all([("fp32", a / "model.onnx"), ("int4", b / "model.onnx")], work)
    ops = [
        {n.op_type for n in onnx.load(str(files["weights only"])).graph.node} for files, _ in cuts
    ]
    assert ops == [{"MatMul"}, {"MatMulNBits"}]
    assert cuts[0][0]["no attention"] != cuts[1][0]["no attention"]


def test_reports_never_replace_a_users_file_and_caches_are_bounded(bundle, tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("mine")
    argv = [str(bundle / "model.onnx"), "--positions", "3", "--rounds", "1"]
    assert dc.main([*argv, "--markdown", str(notes)]) == 2
    assert notes.read_text() == "mine"
    assert "genedge did not write it" in capsys.readouterr().err
    assert dc.main([str(bundle / "model.onnx"), "--positions", "2000000000", "--rounds", "1"]) == 2
    err = capsys.readouterr().err
    assert "GiB of buffers up front" in err and "\n" not in err.strip()


def test_a_gpt2_decoder_splits_too(tmp_path, capsys):
    """GPT-2's decoder (LayerNorm, biases, GELU, learned positions) through the same cuts."""
    folder = hf_folder(tmp_path / "hf", "gpt2", max_position_embeddings=64)
    b = export_folder(folder, tmp_path / "b")
    js = tmp_path / "g.json"
    argv = [str(b / "model.onnx"), "--positions", "7", "--rounds", "1", "--threads", "1"]
    assert dc.main([*argv, "--json", str(js)]) == 0
    (row,) = json.loads(js.read_text())["results"]
    assert row["position"] == 7 and row["full_us"] > 0 and row["weights_us"] > 0

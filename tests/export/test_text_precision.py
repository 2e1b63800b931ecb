"""Reduced precisions of transformer bundles: fp16, weight-only int8/int4, the perplexity gate
that keeps or refuses each (numbers in the manifest), and ``genedge eval BUNDLE --data``."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from text_fixtures import export_folder, hf_folder, sample_text  # noqa: E402

from genedge.cli import main  # noqa: E402
from genedge.export.checks.text_gate import PERPLEXITY_BOUNDS, gate_record, within_bound  # noqa: E402
from genedge.manifest import read_manifest  # noqa: E402
from genedge.runtime.perplexity import TextScore, windows  # noqa: E402

ALL = ("fp32", "fp16", "int8", "int4")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """A tiny Llama exported in every precision, and again with an int4 bound no graph meets."""
    import genedge.export.checks.text_gate as text_gate

    d = tmp_path_factory.mktemp("textprec")
    folder = hf_folder(d / "llama", "llama")
    held = d / "held.txt"
    held.write_text(sample_text()[-2500:], encoding="utf-8")
    out = {"folder": folder, "held": held}
    out["all"] = export_folder(folder, d / "all", precisions=ALL, eval_data=str(held))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(text_gate.PERPLEXITY_BOUNDS, "int4", 0.5)
        out["refused"] = export_folder(
            folder, d / "refused", precisions=("fp32", "int4"), eval_data=str(held)
        )
    import genedge.export.stages.text_precision as text_precision

    def refuse_the_first(*args):  # the gate as it is, except that its first int4 try fails
        rec = gate_record(*args)
        if not seen:
            rec = dict(rec, quality_approved=False, verdict="fail")
        seen.append(rec)
        return rec

    seen: list = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(text_precision, "gate_record", refuse_the_first)
        out["ladder"] = export_folder(
            folder, d / "ladder", precisions=("fp32", "int4"), eval_data=str(held)
        )
    return out


# ---------------------------------------------------------------- the gate's pure logic
def test_ratio_exactly_at_the_bound_passes_and_just_past_it_fails():
    ref = TextScore(math.log(20.0), 100, 300)
    at = TextScore(math.log(20.0 * 1.10), 100, 300)  # exp(log(x)) rounds: within RATIO_RTOL
    past = TextScore(math.log(20.0 * 1.1001), 100, 300)
    assert gate_record("int4", at, ref, "t")["quality_approved"]
    rec = gate_record("int4", past, ref, "t")
    assert not rec["quality_approved"] and rec["verdict"] == "fail"
    assert rec["bound"] == PERPLEXITY_BOUNDS["int4"] == 1.10
    assert rec["perplexity_ratio"] == pytest.approx(1.1001)
    assert within_bound(1.03, 1.03) and not within_bound(1.0301, 1.03)
    assert not within_bound(float("nan"), 1.03) and not within_bound(float("inf"), 1.03)


def test_non_finite_perplexity_is_refused_and_recorded_as_null():
    ref = TextScore(math.log(20.0), 100, 300)
    rec = gate_record("fp16", TextScore(math.inf, 100, 300), ref, "t")
    assert rec["perplexity"] is None and rec["perplexity_ratio"] is None
    assert rec["verdict"] == "fail" and "non-finite" in rec["reason"]
    json.dumps(rec, allow_nan=False)  # the manifest stays strict JSON


def test_windows_score_every_token_after_the_first_once():
    for n, w in ((10, 4), (9, 4), (2, 2), (300, 256), (5, 100)):
        spans = windows(n, w)
        scored = [t for a, b in spans for t in range(a + 1, b)]
        assert scored == list(range(1, n)), (n, w, spans)
        assert all(b - a <= w for a, b in spans)


def test_runtime_perplexity_equals_transformers_on_the_same_windows(made):
    """The gate's fp32 number, recomputed from ``transformers``' logits window by window."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    from genedge.runtime.perplexity import DEFAULT_WINDOW

    m = read_manifest(made["all"])
    fp32 = m.find(precision="fp32", format="onnx")[0].verification.extra
    tok = Tokenizer.from_file(str(made["folder"] / "tokenizer.json"))
    ids = [m.model.transformer.bos_token_id, *tok.encode(made["held"].read_text()).ids]
    model = AutoModelForCausalLM.from_pretrained(made["folder"], local_files_only=True).eval()
    nll, n = 0.0, 0
    with torch.no_grad():
        for a, b in windows(len(ids), DEFAULT_WINDOW):
            x = torch.tensor([ids[a:b]])
            logp = torch.log_softmax(model(x).logits[0, :-1].double(), -1)
            nll -= logp[torch.arange(b - a - 1), x[0, 1:]].sum().item()
            n += b - a - 1
    assert fp32["perplexity_tokens"] == n
    assert fp32["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-5)


# ---------------------------------------------------------------- the export
def test_every_precision_kept_with_its_gate_numbers(made):
    import onnx

    m = read_manifest(made["all"])
    fp32 = m.find(precision="fp32", format="onnx")[0].verification.extra
    sizes = {}
    for p in ("fp16", "int8", "int4"):
        (a,) = m.find(precision=p, format="onnx")
        v = dict(a.verification.extra, verdict=a.verification.verdict)
        assert a.file == f"model.{p}.onnx" and a.quality_approved
        assert v["verdict"] == "pass" and v["bound"] == PERPLEXITY_BOUNDS[p]
        assert v["perplexity_fp32"] == fp32["perplexity"]
        assert v["perplexity_ratio"] == pytest.approx(v["perplexity"] / fp32["perplexity"])
        assert v["perplexity_ratio"] <= v["bound"]
        assert v["tokens"] == fp32["perplexity_tokens"] > 1000
        assert v["text"] == "--eval-data held.txt"
        sizes[p] = a.size
    assert m.find(precision="int4")[0].verification.extra["perplexity_ratio"] != 1.0
    sizes["fp32"] = m.find(precision="fp32", format="onnx")[0].size
    assert sizes["int4"] < sizes["int8"] < sizes["fp32"] and sizes["fp16"] < sizes["fp32"]
    for p, bits in (("int8", 8), ("int4", 4)):
        (a,) = m.find(precision=p, format="onnx")
        assert a.recipe.bits == bits and a.recipe.block_size == 128
        assert "finer_after" not in a.recipe.extra  # the first recipe passed
        g = onnx.load(str(made["all"] / a.file)).graph
        nbits = [n for n in g.node if n.op_type == "MatMulNBits"]
        assert len(nbits) == a.recipe.matmuls > 0
        # sibling projections (the MLP's gate and up) are one MatMulNBits, split after
        assert len({n.input[0] for n in nbits}) == len(nbits)
        assert any(
            n.op_type == "Split" and n.input[0] == m.output[0] for n in g.node for m in nbits
        )
        assert {next(x.i for x in n.attribute if x.name == "bits") for n in nbits} == {bits}
        assert not [n for n in g.node if n.op_type == "MatMul" and n.input[1].startswith("onnx::")]


def test_fp16_graph_keeps_float32_io_and_runs_in_fp16(made):
    import onnx

    g = onnx.load(str(made["all"] / "model.fp16.onnx")).graph
    floats = {i.name: i.type.tensor_type.elem_type for i in [*g.input, *g.output]}
    assert {t for n, t in floats.items() if "key" in n or "value" in n or n == "logits"} == {
        onnx.TensorProto.FLOAT
    }
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in g.initializer)


def test_refused_precision_keeps_no_file_and_records_why(made):
    m = read_manifest(made["refused"])
    assert not (made["refused"] / "model.int4.onnx").exists()
    assert not m.find(precision="int4")
    assert "perplexity gate" in m.source["skipped"]["int4"]
    rec = m.find(precision="fp32", format="onnx")[0].verification.extra["refused"]["int4"]
    assert rec["verdict"] == "fail" and rec["quality_approved"] is False
    assert rec["bound"] == 0.5 and rec["perplexity_ratio"] > 0.5
    assert rec["perplexity_fp32"] > 1 and rec["tokens"] > 1000 and rec["recipe"]["bits"] == 4
    # both int4 recipes were tried: blocks of 128, then of 32
    assert rec["recipe"]["block_size"] == 32
    assert [r["block_size"] for r in rec["recipe"]["finer_after"]] == [128]


def test_int4_refused_at_blocks_of_128_is_kept_at_blocks_of_32(made):
    m = read_manifest(made["ladder"])
    (a,) = m.find(precision="int4", format="onnx")
    assert a.quality_approved and a.recipe.block_size == 32
    (first,) = a.recipe.extra["finer_after"]
    assert first["block_size"] == 128 and first["verdict"] == "fail"
    assert first["perplexity_ratio"] == pytest.approx(
        first["perplexity"] / a.verification.extra["perplexity_fp32"]
    )


def test_a_refused_precision_is_exit_0_on_the_command_line(made, tmp_path, monkeypatch, capsys):
    import genedge.export.checks.text_gate as text_gate

    monkeypatch.setitem(text_gate.PERPLEXITY_BOUNDS, "int8", 0.5)
    args = [
        "export",
        str(made["folder"]),
        "--out",
        str(tmp_path / "b"),
        "--precision",
        "fp32,int8",
        "--eval-data",
        str(made["held"]),
    ]
    assert main(args) == 0
    assert "int8 skipped: refused by the perplexity gate" in capsys.readouterr().err
    assert not (tmp_path / "b" / "model.int8.onnx").exists()


# ---------------------------------------------------------------- genedge eval
# what a `genedge[cpu]` install lacks (tests/core/test_lean_install.py), and transformers
LEAN = """
import sys
for name in ("torch", "torchvision", "sklearn", "cv2", "safetensors", "rich", "matplotlib",
             "onnx", "onnxslim", "onnxconverter_common", "openvino", "tensorrt", "transformers"):
    sys.modules[name] = None
from genedge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_eval_reports_perplexity_per_precision_on_a_lean_install(made, tmp_path):
    out = tmp_path / "m.json"
    argv = ["eval", str(made["all"]), "--data", str(made["held"]), "--json", str(out)]
    r = subprocess.run(
        [sys.executable, "-c", LEAN, *argv], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(out.read_text())
    assert got["arch"] == "transformer" and got["data"] == "held.txt"
    m = read_manifest(made["all"])
    assert set(got["artifacts"]) == {a.file for a in m.find(format="onnx")}
    for file, rec in got["artifacts"].items():
        (a,) = [a for a in m.find(format="onnx") if a.file == file]
        v = a.verification.extra
        recorded = v["perplexity"]  # same text, tokens, windows and backend as the gate
        assert rec["perplexity"] == pytest.approx(recorded, rel=1e-6)
        assert rec["bits_per_char"] == pytest.approx(
            rec["tokens"] * math.log2(recorded) / rec["chars"]
        )
        assert rec["precision"] in r.stdout.split(file)[1].split("\n")[0]
    assert got["artifacts"]["model.onnx"]["perplexity_ratio"] == 1.0


def test_eval_of_a_text_bundle_needs_data_and_existing_precisions(made, capsys):
    assert main(["eval", str(made["all"])]) == 2
    assert "needs --data FILE" in capsys.readouterr().err
    assert (
        main(["eval", str(made["refused"]), "--data", str(made["held"]), "--precision", "int4"])
        == 2
    )
    assert "no int4 decoder graph" in capsys.readouterr().err


def test_eval_refuses_a_file_that_is_not_utf8(made, tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait ".encode("latin-1") * 20)
    assert main(["eval", str(made["all"]), "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "is not UTF-8" in err and "Traceback" not in err


def test_gate_text_is_the_training_corpus_held_out_slice(tmp_path):
    from genedge.export.checks.text_gate import gate_text

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i}\n" for i in range(2000)), encoding="utf-8")
    text = corpus.read_text()
    t = gate_text(None, str(corpus), None)
    cut = len(text) - int(len(text) * 0.05)
    assert (t.calibration, t.held_out) == (text[:cut], text[cut:])
    assert t.source == "the training corpus corpus.txt (last 5%, held out)" and t.note is None
    given = gate_text(str(corpus), "gone.txt", None)  # --eval-data wins, nothing to say
    assert given.held_out == text and given.source == "--eval-data corpus.txt"
    assert given.note is None


def _gemm_model(nodes, inits):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])],
        [numpy_helper.from_array(a, n) for n, a in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_gemm_weights_become_matmuls_with_the_same_outputs():
    """GPT-2's Conv1D layers export as Gemm; the quantizer takes MatMuls only."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    from genedge.export.stages.text_precision import gemms_to_matmuls

    rng = np.random.default_rng(0)
    inits = {
        "w1": rng.standard_normal((8, 6)).astype(np.float32),  # (in, out)
        "w2": rng.standard_normal((5, 6)).astype(np.float32),  # (out, in): transB
        "b": rng.standard_normal(5).astype(np.float32),
    }
    model = _gemm_model(
        [
            helper.make_node("Gemm", ["x", "w1"], ["h"], name="g1"),
            helper.make_node("Gemm", ["h", "w2", "b"], ["y"], name="g2", transB=1),
        ],
        inits,
    )
    x = rng.standard_normal((3, 8)).astype(np.float32)

    def run(m):
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return s.run(None, {"x": x})[0]

    want = run(model)
    assert gemms_to_matmuls(model) == 2
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["MatMul", "MatMul", "Add"]
    np.testing.assert_allclose(run(model), want, rtol=1e-6, atol=1e-6)
    scaled = _gemm_model(
        [
            helper.make_node("Gemm", ["x", "w1"], ["h"], name="g1", alpha=0.5),
            helper.make_node("Gemm", ["h", "w2", "b"], ["y"], name="g2", transB=1),
            helper.make_node("Gemm", ["h", "w2"], ["unused"], name="g3", transB=1),
        ],
        inits,
    )
    assert gemms_to_matmuls(scaled) == 0  # alpha != 1, and a transposed weight read twice

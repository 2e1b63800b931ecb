"""The transformer text bench: interleaved generations of fake targets with known timings,
the statistics and ratios made from them, the report's tables and plot, and the baselines
(transformers, onnxruntime-genai) on a tiny Llama folder (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from genedge.bench.options import BenchOptions, validate_options
from genedge.bench.report import BenchReport, llm_ratio_rows, llm_rows, markdown, position_rows
from genedge.bench.text import (
    _measure_case,
    leading_equal,
    position_costs,
    summarize_generations,
    text_cases,
    text_ratios,
)
from genedge.bench.text_targets import Prompt
from genedge.errors import BadInputError

MS = 1_000_000


class FakeTarget:
    """Generates ``n`` tokens ``prompt[-1] + 1, + 2, ...``; token k arrives ``ttft`` ms after
    the call plus ``per_token(position)`` ms per later token. Calls are counted."""

    def __init__(self, label: str, kind: str, ttft: float, per_token, shift: int = 0) -> None:
        self.label, self.kind, self.backend, self.precision = label, kind, label, "fp32"
        self.ttft, self.per_token, self.shift = ttft, per_token, shift
        self.info: dict[str, Any] = {}
        self.calls: list[tuple[int, int]] = []

    def generate(self, prompt: Prompt, n: int) -> tuple[list[int], list[int]]:
        prompt_ids = prompt.ids
        self.calls.append((len(prompt_ids), n))
        t = self.ttft * MS
        times = [int(t)]
        for k in range(1, n):
            t += self.per_token(len(prompt_ids) + k) * MS
            times.append(int(t))
        tokens = [prompt_ids[-1] + 1 + k + (self.shift if k >= 3 else 0) for k in range(n)]
        return tokens, times


def ids(n: int) -> Prompt:
    return Prompt("x" * n, tuple(range(n)))


def flat(_: int) -> float:
    return 2.0


def recompute(position: int) -> float:  # grows with the context: what a missing cache does
    return 0.01 * position


def test_measure_case_interleaves_and_summarises() -> None:
    ours = FakeTarget("genedge ort-cpu fp32", "runtime", 5.0, flat)
    theirs = FakeTarget("onnxruntime-genai fp32", "baseline", 10.0, lambda p: 4.0, shift=7)
    res = _measure_case(
        [(ours, 1.0), (theirs, 2.0)], (4, 10), {4: Prompt("abcd", (1, 2, 3, 4))}, rounds=3
    )
    assert ours.calls == theirs.calls == [(4, 10)] * 4  # one warm-up, then one per round
    a, b = res
    assert a["rounds"] == b["rounds"] == 3
    assert a["time_to_first_token"]["p50"] == pytest.approx(5.0)
    assert a["inter_token"]["p50"] == pytest.approx(2.0) and a["inter_token"]["n"] == 3 * 9
    assert a["tokens_per_s"] == pytest.approx(10 / (5.0 + 9 * 2.0) * 1e3)
    assert a["decode_tokens_per_s"] == pytest.approx(9 / (9 * 2.0) * 1e3)
    assert a["leading_tokens_equal"] == 10 and b["leading_tokens_equal"] == 3
    [r] = text_ratios(res)
    assert (r["subject"], r["reference"]) == (a["label"], b["label"])
    assert r["speedup"] == pytest.approx((10 + 36) / (5 + 18)) and r["rounds"] == 3


def test_a_baseline_that_fails_is_a_note() -> None:
    ours = FakeTarget("genedge ort-cpu fp32", "runtime", 5.0, flat)
    broken = FakeTarget("torch.compile fp32", "baseline", 1.0, flat)
    broken.generate = lambda prompt, n: (_ for _ in ()).throw(RuntimeError("no C++ compiler"))
    notes: list[str] = []
    res = _measure_case([(ours, 1.0), (broken, 1.0)], (4, 3), {4: ids(4)}, 2, notes)
    assert [r["label"] for r in res] == ["genedge ort-cpu fp32"]
    assert notes == [
        "torch.compile fp32, prompt 4 + 3 new: skipped (RuntimeError: no C++ compiler)"
    ]
    ours.generate = broken.generate  # genedge's own failure is not hidden
    with pytest.raises(RuntimeError):
        _measure_case([(ours, 1.0)], (4, 3), {4: ids(4)}, 1, notes)


def test_position_costs_tell_a_cache_from_a_recompute() -> None:
    def runs(per_token) -> list[list[int]]:
        return [FakeTarget("x", "runtime", 1.0, per_token).generate(ids(16), 640)[1]]

    cached = position_costs(runs(flat), 16)
    assert cached["50_ms"] == pytest.approx(2.0) and cached["ratio"] == pytest.approx(1.0)
    grows = position_costs(runs(recompute), 16)
    assert grows["ratio"] == pytest.approx(600 / 50, rel=0.05)
    assert position_costs(runs(flat)[:1], 600) is None  # the prompt is already past 50
    short = [FakeTarget("x", "runtime", 1.0, flat).generate(ids(16), 100)[1]]
    assert position_costs(short, 16) is None
    curve = summarize_generations(runs(recompute), 16)["token_ms_by_position"]
    # 639 gaps in 64 bins of 10 tokens: the first bin holds new tokens 1..10, positions 17..26
    assert len(curve["position"]) == 64 and curve["position"][0] == 16 + 5
    assert curve["ms"][-1] > 5 * curve["ms"][0]


def test_cases_and_options_refuse_what_cannot_run(tmp_path: Path) -> None:
    o = BenchOptions(bundle=tmp_path, prompt_tokens=(16, 128), new_tokens=(64, 256))
    validate_options(o)
    assert text_cases(o, 1024) == [(16, 64), (16, 256), (128, 64), (128, 256)]
    assert text_cases(BenchOptions(bundle=tmp_path, max_new_tokens=9), None) == [(16, 9)]
    with pytest.raises(BadInputError, match="context is 300"):
        text_cases(o, 300)
    for bad in ({"prompt_tokens": (0,)}, {"new_tokens": ()}, {"baselines": ("llama.cpp",)}):
        with pytest.raises(BadInputError):
            validate_options(BenchOptions(bundle=tmp_path, **bad))
    assert leading_equal([1, 2, 3], [1, 2, 4]) == 2 and leading_equal([], [1]) == 0


def _report(tmp_path: Path) -> BenchReport:
    ours = FakeTarget("genedge ort-cpu fp32", "runtime", 5.0, flat)
    theirs = FakeTarget("transformers fp32", "baseline", 20.0, recompute)
    live = [(ours, 1.0), (theirs, 2.0)]
    configs = _measure_case(live, (16, 640), {16: ids(16)}, rounds=2)
    text = {"prompt_text": "x", "cases": [], "configurations": configs}
    text["ratios"] = text_ratios(configs)
    env = {"cpu_model": "test cpu", "command": "genedge bench b"}
    return BenchReport(kind="ar", options={}, environment=env, text=text)


def test_report_tables_markdown_json_and_plot(tmp_path: Path) -> None:
    from genedge.bench.commands import write_outputs
    from genedge.bench.table import sections

    report = _report(tmp_path)
    rows = llm_rows(report)
    assert [r[0] for r in rows] == ["genedge ort-cpu fp32", "transformers fp32"]
    assert rows[0][10] == "640/640"
    [ratio] = llm_ratio_rows(report)
    assert ratio[1] == "transformers fp32" and float(ratio[4].rstrip("x")) > 1
    pos = position_rows(report)
    assert pos[0][5] == "1.00x" and float(pos[1][5].rstrip("x")) > 5
    md = markdown(report)
    assert "Generation-time speed-ups" in md and "at ~600" in md
    assert [title for title, _, _ in sections(report)][-3:] == [
        "Text generation (transformer)",
        "Generation-time speed-ups",
        "Token cost at ~600 vs ~50",
    ]
    assert "prompt 16 + 640 new" in report.summary()[0].text
    pytest.importorskip("matplotlib")
    opts = BenchOptions(bundle=tmp_path, json_out=tmp_path / "r.json", plot=tmp_path / "r.png")
    written = write_outputs(report, opts)
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["text"]["ratios"][0]["rounds"] == 2 and len(written) == 2
    assert not math.isnan(saved["text"]["configurations"][0]["per_token_at"]["ratio"])


# ------------------------------------------------------------ the real baselines (slow)


def tiny_llama(folder: Path, hidden: int = 64) -> Path:
    """A 2-layer Llama with grouped-query attention and a byte-level BPE tokenizer."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([json.__doc__ or "", math.__doc__ or ""] * 4, trainer)
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,  # 4 heads of 16: genai's CPU attention wants a multiple of 16
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=0,
        eos_token_id=0,
    )
    transformers.LlamaForCausalLM(config).eval().save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_genai_skips_a_model_it_cannot_run(tmp_path: Path) -> None:
    """A head size genai's CPU attention refuses is a note (SkipCase), not a crash."""
    pytest.importorskip("onnxruntime_genai")
    pytest.importorskip("onnx_ir")
    from genedge.bench.cases import SkipCase
    from genedge.bench.text_targets import GenaiTarget

    folder = tiny_llama(tmp_path / "llama", hidden=32)
    t = GenaiTarget(folder, "fp32", 1, tmp_path / "work")
    t.preload()
    with pytest.raises(SkipCase, match="does not run here"):
        t.open()


@pytest.mark.slow
def test_baselines_agree_on_greedy_tokens(tmp_path: Path) -> None:
    """transformers and onnxruntime-genai's builder (fp32) on one folder: same greedy tokens
    for the same prompt ids, exactly n of them, with arrival times that only grow."""
    pytest.importorskip("onnxruntime_genai")
    pytest.importorskip("onnx_ir")
    from genedge.bench.text_targets import GenaiTarget, TransformersTarget, baseline_folder

    folder = tiny_llama(tmp_path / "llama")
    assert baseline_folder(folder) and not baseline_folder(tmp_path)
    targets = [TransformersTarget(folder, 1), GenaiTarget(folder, "fp32", 1, tmp_path / "work")]
    outs = []
    try:
        for t in targets:
            t.preload()
            t.open()
            outs.append(t.generate(Prompt("ignored", (5, 6, 7, 8)), 24))
    finally:
        for t in targets:
            t.close()
    (ids_tf, times_tf), (ids_ga, times_ga) = outs
    assert len(ids_tf) == len(ids_ga) == 24 and ids_tf == ids_ga
    for times in (times_tf, times_ga):
        assert len(times) == 24 and all(b >= a for a, b in zip(times, times[1:], strict=False))
    config = json.loads((tmp_path / "work" / "genai-fp32" / "genai_config.json").read_text())
    assert config["model"]["decoder"]["session_options"]["intra_op_num_threads"] == 1


def test_bench_on_an_exported_llama_matches_transformers(tmp_path: Path) -> None:
    """``genedge bench`` on a bundle exported from a Llama folder: genedge's greedy tokens are
    transformers' own, every case and ratio is reported, and a bad --precision is refused."""
    pytest.importorskip("transformers")
    from text_fixtures import export_folder, hf_folder

    from genedge.bench.suite import run_bench

    bundle = export_folder(hf_folder(tmp_path / "llama"), tmp_path / "bundle")
    o = BenchOptions(
        bundle=bundle,
        backends=("ort-cpu",),
        threads=1,
        rounds=2,
        prompt_tokens=(8,),
        new_tokens=(12,),
        baselines=("torch",),
    )
    report = run_bench(o)
    ours, theirs = report.text["configurations"]
    assert (ours["label"], theirs["label"]) == ("genedge ort-cpu fp32", "transformers fp32")
    assert ours["prompt_tokens"] == 8 and ours["new_tokens"] == 12
    assert theirs["leading_tokens_equal"] == 12  # greedy: the same 12 tokens
    [ratio] = report.text["ratios"]
    assert ratio["rounds"] == 2 and ratio["speedup"] > 0
    assert any("source folder" in n for n in report.notes)
    with pytest.raises(BadInputError, match="context is 1024"):
        run_bench(BenchOptions(bundle=bundle, prompt_tokens=(1000,), new_tokens=(100,)))


def test_baseline_folder_takes_regular_files_only(tmp_path: Path) -> None:
    """A FIFO or a link to a device where config.json or tokenizer.json should be makes the
    folder one the baselines skip (transformers would block reading a FIFO)."""
    import os

    from genedge.bench.text_targets import baseline_folder

    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    (folder / "tokenizer.json").write_text("{}")
    assert not baseline_folder(folder)  # no config.json
    os.mkfifo(folder / "config.json")
    assert not baseline_folder(folder)
    (folder / "config.json").unlink()
    (folder / "config.json").write_text("{}")
    assert baseline_folder(folder)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").symlink_to("/dev/zero")
    assert not baseline_folder(folder)

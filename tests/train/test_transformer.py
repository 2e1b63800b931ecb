"""The transformer language model: shapes, causality, rotary embeddings, its key/value cache,
its tokenizers, checkpoints, training and resume, held-out scoring and its Llama folder."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from genedge.errors import BadInputError
from genedge.train import load_checkpoint, read_checkpoint_info, save_checkpoint
from genedge.train.checkpoint import hf_folder_from_checkpoint
from genedge.train.eval import (
    _score_windows,
    evaluate_checkpoint,
    transformer_text_metrics,
    unigram_bpc,
)
from genedge.train.options import ARCHS, TRANSFORMER_DEFAULTS, TrainOptions, resolve_options
from genedge.train.tokenizer import (
    EOS_ID,
    bpe_tokenizer,
    char_tokenizer,
    decode,
    encode,
    tokenizer_from_json,
)
from genedge.train.trainer import train_run
from genedge.train.transformer import (
    TransformerConfig,
    TransformerLM,
    apply_rotary,
)

TEXTS = [
    "plain ascii, with  two spaces\tand a tab\n",
    "héllo wörld — ünïcödé ✓ 😀 中文字符 \u200b zero width",
    "\x00\x01 control bytes \x7f and a lone combining \u0301 mark",
    "   leading and trailing spaces   ",
    "",
]


def _tiny(**kw) -> TransformerConfig:
    base = dict(vocab_size=61, layers=2, d_model=32, heads=4, kv_heads=2, context=24)
    return TransformerConfig(**{**base, **kw})


def _model(seed: int = 0, **kw) -> TransformerLM:
    torch.manual_seed(seed)
    return TransformerLM(_tiny(**kw)).eval()


# ---------------------------------------------------------------- the model
def test_shapes_of_logits_and_cache_with_grouped_query_attention():
    m = _model()
    logits, present = m(torch.randint(0, 61, (3, 10)))
    assert logits.shape == (3, 10, 61)
    assert len(present) == 2
    assert all(k.shape == v.shape == (3, 2, 10, 8) for k, v in present)
    _, longer = m(torch.randint(0, 61, (3, 4)), past=present)
    assert longer[0][0].shape == (3, 2, 14, 8)


def test_a_token_never_sees_the_future():
    m = _model()
    x = torch.randint(0, 61, (1, 16))
    y = x.clone()
    y[0, 9:] = (y[0, 9:] + 7) % 61  # change every token from position 9 on
    with torch.no_grad():
        a, b = m(x)[0], m(y)[0]
    assert torch.equal(a[0, :9], b[0, :9])
    assert not torch.allclose(a[0, 9:], b[0, 9:])


def test_prefill_then_one_token_at_a_time_matches_the_full_pass():
    m = _model()
    x = torch.randint(0, 61, (2, 12))
    with torch.no_grad():
        full, _ = m(x)
        steps, past = [m(x[:, :5])[0]], m(x[:, :5])[1]
        for t in range(5, 12):
            logits, past = m(x[:, t : t + 1], past=past)
            steps.append(logits)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_rotary_scores_depend_only_on_the_distance():
    m = _model()
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(pos_q: int, pos_k: int) -> torch.Tensor:
        cq, sq = m.model.rotary(torch.tensor([[pos_q]]))
        ck, sk = m.model.rotary(torch.tensor([[pos_k]]))
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()

    assert torch.allclose(score(7, 3), score(107, 103), atol=1e-4)
    assert not torch.allclose(score(7, 3), score(7, 6), atol=1e-3)
    cos, sin = m.model.rotary(torch.tensor([[5]]))
    assert torch.allclose(apply_rotary(q, cos, sin).norm(), q.norm(), atol=1e-5)


def test_tied_head_reads_the_embedding_and_untied_has_its_own():
    tied, untied = _model(), _model(tie_embeddings=False)
    assert "lm_head.weight" not in tied.state_dict()
    assert untied.state_dict()["lm_head.weight"].shape == (61, 32)
    x = torch.randint(0, 61, (1, 5))
    with torch.no_grad():
        h = tied.model.norm(tied.model.embed_tokens(x))  # what the head sees with no layers
        tied.model.layers = torch.nn.ModuleList()
        assert torch.allclose(tied(x)[0], h @ tied.model.embed_tokens.weight.T)


@pytest.mark.parametrize(
    "change", [dict(d_model=30), dict(heads=3), dict(kv_heads=3), dict(layers=0)]
)
def test_config_that_cannot_build_is_refused(change):
    with pytest.raises(ValueError):
        TransformerLM(_tiny(**change))


# ---------------------------------------------------------------- tokenizers
@pytest.mark.parametrize("text", TEXTS)
def test_char_tokenizer_round_trips_utf8_one_token_per_byte(text):
    tok = char_tokenizer()
    ids = encode(tok, text)
    assert ids == [b + 1 for b in text.encode("utf-8")]
    assert decode(tok, ids) == text


def test_bpe_tokenizer_learns_merges_and_round_trips_utf8():
    corpus = "Return the value of the named attribute of object. " * 200 + "".join(TEXTS[:3])
    tok = bpe_tokenizer(corpus, 300)
    assert tok.get_vocab_size() == 300
    assert tok.id_to_token(EOS_ID) == "<|endoftext|>"
    sentence = "Return the value of the attribute"
    assert len(encode(tok, sentence)) < len(sentence.encode()) / 2
    for text in TEXTS:
        assert decode(tok, encode(tok, text)) == text
    again = tokenizer_from_json(tok.to_str())
    assert encode(again, TEXTS[1]) == encode(tok, TEXTS[1])


# ---------------------------------------------------------------- scoring
def test_score_windows_score_every_target_once():
    for n, context in ((2, 8), (9, 8), (10, 8), (57, 8), (100, 7)):
        starts, first = _score_windows(n, context)
        owned = [
            s + 1 + j
            for s, f in zip(starts, first, strict=True)
            for j in range(f, context)
            if s + 1 + j < n
        ]
        assert sorted(owned) == list(range(1, n)), (n, context)


def test_transformer_metrics_are_the_cross_entropy_after_eos():
    tok = char_tokenizer()
    m = _model(vocab_size=257, context=64)
    text = "abc déf"
    ids = torch.tensor([[EOS_ID, *encode(tok, text)]])
    with torch.no_grad():
        nats = F.cross_entropy(m(ids[:, :-1])[0][0], ids[0, 1:], reduction="sum").item()
    got = transformer_text_metrics(m, tok, text, train_text="aabbc")
    assert got["bpc"] == pytest.approx(nats / math.log(2) / len(text), rel=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(nats / (ids.shape[1] - 1)), rel=1e-5)
    assert got["num_chars"] == len(text) and got["num_tokens"] == len(text.encode())


def test_unigram_bpc_of_a_uniform_text_is_log2_of_its_alphabet():
    assert unigram_bpc("abcd" * 100, "dcba") == pytest.approx(2.0)
    assert unigram_bpc("aaaa" * 100, "ab") > unigram_bpc("aaaa" * 100, "aa")


# ---------------------------------------------------------------- checkpoints and training
@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "t.txt"
    lines = ["Return the value of the named attribute of object. Ünïcode ✓.\n"] * 40
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _opts(data: Path, out: Path, **kw) -> TrainOptions:
    base = dict(
        kind="ar",
        arch="transformer",
        data=str(data),
        out=out,
        steps=4,
        batch_size=4,
        sample_every=2,
        eval_every=4,
        log_every=1,
        progress=False,
        seed=3,
        threads=1,
        layers=1,
        d_model=16,
        heads=2,
        context=16,
    )
    return TrainOptions(**{**base, **kw})


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_checkpoint_describes_itself_and_loads_back(tokenizer, tiny_text, tmp_path):
    vocab = {"vocab_size": 300} if tokenizer == "bpe" else {}
    ckpt = train_run(_opts(tiny_text, tmp_path / "run", tokenizer=tokenizer, **vocab))
    info = read_checkpoint_info(ckpt)
    assert info.kind == "ar" and info.step == 4
    assert info.meta["family"] == "ar" and info.meta["arch"] == "transformer"
    assert isinstance(info.config, TransformerConfig)
    assert (info.config.layers, info.config.d_model, info.config.context) == (1, 16, 16)
    assert info.config.tokenizer == tokenizer and info.config.rope_theta == 10_000.0
    tok = tokenizer_from_json(info.meta["tokenizer"])
    assert tok.get_vocab_size() == info.config.vocab_size == (300 if tokenizer == "bpe" else 257)
    model, _ = load_checkpoint(ckpt)
    assert isinstance(model, TransformerLM)
    samples = (tmp_path / "run" / "samples.txt").read_text(encoding="utf-8")
    assert samples.startswith("Return the ")
    evals = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in evals if r["phase"] == "eval"][-1]
    assert last["tokenizer"] == tokenizer and last["bpc"] > 0 and last["unigram_bpc"] > 0
    again = evaluate_checkpoint(ckpt)  # what `genedge eval CKPT` prints
    assert again["data"] == str(tiny_text) and again["step"] == 4
    assert again["bpc"] == pytest.approx(last["bpc"], rel=1e-4)
    assert again["perplexity"] == pytest.approx(last["perplexity"], rel=1e-4)


def test_saved_weights_give_the_same_logits(tmp_path):
    m = _model(vocab_size=257)
    path = save_checkpoint(
        tmp_path / "m.safetensors",
        m,
        m.cfg,
        kind="ar",
        extra={"arch": "transformer", "tokenizer": char_tokenizer().to_str()},
    )
    back, cfg = load_checkpoint(path)
    x = torch.randint(0, 257, (2, 9))
    with torch.no_grad():
        assert torch.equal(back(x)[0], m(x)[0])
    assert cfg == m.cfg


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(
    tiny_text, tmp_path, monkeypatch
):
    monkeypatch.setattr("genedge.train.transformer_trainer.DECAY_START", 0.9)
    full = train_run(_opts(tiny_text, tmp_path / "full", steps=6, sample_every=3, eval_every=3))
    train_run(_opts(tiny_text, tmp_path / "split", steps=3, sample_every=3, eval_every=3))
    resumed = train_run(
        _opts(tiny_text, tmp_path / "split", steps=6, sample_every=3, eval_every=3, resume=True)
    )
    assert read_checkpoint_info(resumed).step == 6
    a, b = load_checkpoint(full)[0].state_dict(), load_checkpoint(resumed)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(r) for r in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["phase"] == "train"] == [1, 2, 3, 4, 5, 6]


def test_resume_with_other_sizes_is_refused(tiny_text, tmp_path):
    train_run(_opts(tiny_text, tmp_path / "run", steps=2))
    with pytest.raises(BadInputError, match="does not match these options"):
        train_run(_opts(tiny_text, tmp_path / "run", steps=3, d_model=32, resume=True))


# ---------------------------------------------------------------- options
def test_defaults_resolve_for_the_transformer_only(tmp_path):
    t = resolve_options(TrainOptions(kind="ar", data="x", out=tmp_path, arch="transformer"))
    assert (t.layers, t.d_model, t.heads, t.kv_heads, t.context) == (2, 128, 4, 2, 128)
    assert (t.tokenizer, t.vocab_size, t.batch_size, t.cell) == ("bpe", 512, 8, None)
    assert t.threads == 1
    assert resolve_options(dataclasses.replace(t, threads=2)).threads == 2
    char = resolve_options(
        dataclasses.replace(t, tokenizer="char", vocab_size=None, heads=8, kv_heads=None)
    )
    assert char.vocab_size is None and char.kv_heads == 4
    gru = resolve_options(TrainOptions(kind="ar", data="x", out=tmp_path))
    assert gru.arch == gru.cell == "gru" and gru.layers is None and gru.tokenizer is None
    lstm = resolve_options(TrainOptions(kind="ar", data="x", out=tmp_path, cell="lstm"))
    assert lstm.arch == lstm.cell == "lstm"


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(d_model=100, heads=3), "--d-model 100 --heads 3"),
        (dict(d_model=12, heads=4), "even width"),
        (dict(heads=4, kv_heads=3), "--kv-heads 3"),
        (dict(layers=0), "--layers"),
        (dict(context=10**6), "--context"),
        (dict(tokenizer="bpe", vocab_size=100), "--vocab-size"),
        (dict(tokenizer="char", vocab_size=600), "--tokenizer bpe only"),
        (dict(tokenizer="word"), "--tokenizer"),
        (dict(arch="gru", layers=2), "--layers"),
        (dict(arch="gru", cell="lstm"), "disagree"),
        (dict(kind="gan", arch="transformer"), "--arch applies to `train ar` only"),
    ],
)
def test_bad_transformer_options_name_the_flag(change, field, tmp_path):
    opts = TrainOptions(**{**dict(kind="ar", data="x", out=tmp_path, arch="transformer"), **change})
    with pytest.raises(BadInputError, match=field.replace("(", r"\(")):
        resolve_options(opts)


# ---------------------------------------------------------------- the Llama folder
@pytest.mark.parametrize("tie", [True, False])
def test_llama_folder_gives_the_same_logits_in_transformers(tie, tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = bpe_tokenizer("Return the value of the named attribute. " * 50, 280)
    m = _model(vocab_size=280, tie_embeddings=tie, kv_heads=1, tokenizer="bpe")
    ckpt = save_checkpoint(
        tmp_path / "m.safetensors",
        m,
        m.cfg,
        kind="ar",
        extra={"family": "ar", "arch": "transformer", "tokenizer": tok.to_str()},
    )
    folder = hf_folder_from_checkpoint(ckpt, tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["tie_word_embeddings"] is tie
    hf = transformers.LlamaForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    ids = encode(tok, "Return the value of the named attribute.")
    x = torch.tensor([ids[:20]])
    with torch.no_grad():
        ours, theirs = m(x)[0], hf(x).logits
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert hf_tok(TEXTS[1], add_special_tokens=False)["input_ids"] == encode(tok, TEXTS[1])
    assert hf_tok.eos_token_id == EOS_ID


def test_llama_folder_refuses_an_image_checkpoint(tmp_path):
    from genedge.train.gan import GanConfig, Generator

    cfg = GanConfig(latent_dim=8, image_size=8, channels=1, g_width=16, d_width=8)
    ckpt = save_checkpoint(tmp_path / "g.safetensors", Generator(cfg), cfg, kind="gan")
    with pytest.raises(BadInputError, match="not a transformer"):
        hf_folder_from_checkpoint(ckpt, tmp_path / "hf")


# ---------------------------------------------------------------- the command line
def _train_actions() -> dict[str, argparse.Action]:
    from genedge.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["train"]._actions}


def test_cli_help_states_the_defaults_options_resolve():
    actions = _train_actions()
    d = TRANSFORMER_DEFAULTS
    for dest in ("layers", "d_model", "heads", "context", "tokenizer", "vocab_size"):
        assert f"(default: {getattr(d, dest)})" in actions[dest].help, dest
    assert list(actions["arch"].choices) == list(ARCHS)


def test_cli_flags_reach_the_options():
    from genedge.cli import build_parser
    from genedge.train.commands import options_from_args

    argv = "train ar --data t.txt --out r --arch transformer --layers 3 --d-model 48 --heads 6"
    argv += " --kv-heads 3 --context 40 --tokenizer bpe --vocab-size 400"
    opts = options_from_args(build_parser().parse_args(argv.split()))
    got = (opts.arch, opts.layers, opts.d_model, opts.heads, opts.kv_heads, opts.context)
    assert got == ("transformer", 3, 48, 6, 3, 40)
    assert (opts.tokenizer, opts.vocab_size) == ("bpe", 400)


@pytest.mark.parametrize(
    "flags",
    [
        ["--arch", "transformer", "--d-model", "100", "--heads", "3"],
        ["--arch", "transformer", "--tokenizer", "bpe", "--vocab-size", "10"],
        ["--layers", "2"],
    ],
)
def test_cli_bad_values_exit_2_with_one_line(flags, tmp_path):
    argv = ["train", "ar", "--data", "stdlib-docs", "--out", "r", "--steps", "1", *flags]
    r = subprocess.run(
        [sys.executable, "-m", "genedge", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "r").exists()


def test_resume_keeps_the_tokenizer_the_run_began_with(tiny_text, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("Completely different words for another merge table.\n" * 40, encoding="utf-8")
    bpe = dict(tokenizer="bpe", vocab_size=280)
    first = train_run(_opts(tiny_text, tmp_path / "run", steps=2, **bpe))
    began = read_checkpoint_info(first).meta["tokenizer"]
    assert began != bpe_tokenizer(other.read_text(encoding="utf-8"), 280).to_str()
    again = train_run(_opts(other, tmp_path / "run", steps=3, resume=True, **bpe))
    assert read_checkpoint_info(again).meta["tokenizer"] == began
    assert read_checkpoint_info(again).step == 3


def test_checkpoint_without_its_tokenizer_is_refused(tmp_path):
    from genedge.errors import CorruptArtifactError

    m = _model(vocab_size=257)
    ckpt = save_checkpoint(
        tmp_path / "m.safetensors", m, m.cfg, kind="ar", extra={"arch": "transformer", "data": "x"}
    )
    with pytest.raises(CorruptArtifactError, match="tokenizer does not load"):
        hf_folder_from_checkpoint(ckpt, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


@pytest.mark.gpu
def test_cuda_training_step_and_cached_decode_match_the_cpu(tiny_text, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = _model(vocab_size=257)
    gpu = _model(vocab_size=257).cuda()
    x = torch.randint(0, 257, (2, 20))
    with torch.no_grad():
        want = cpu(x)[0]
        full = gpu(x.cuda())[0]
        logits, past = gpu(x[:, :12].cuda())
        step, _ = gpu(x[:, 12:].cuda(), past=past)
    assert torch.allclose(full.cpu(), want, atol=1e-3)
    assert torch.allclose(torch.cat((logits, step), dim=1).cpu(), want, atol=1e-3)
    ckpt = train_run(_opts(tiny_text, tmp_path / "run", steps=2, device="cuda"))
    assert read_checkpoint_info(ckpt).step == 2

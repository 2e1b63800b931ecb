"""``TextGenerator`` on transformer bundles (runtime/text_lm.py): the KV-cache decoder, sampling
options against ``transformers``, stop strings, streaming that never splits a character, and
the requests it must refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("onnxruntime")

from text_fixtures import export_folder, hf_folder, hf_greedy  # noqa: E402

from genedge.errors import BadInputError, CorruptArtifactError  # noqa: E402
from genedge.runtime import TextGenerator  # noqa: E402
from genedge.runtime.text_lm import Detokenizer, LmGenerator  # noqa: E402

PROMPT = "Return the"


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> tuple[Path, Path]:
    """A GQA llama with a 64-position context: (HF folder, bundle)."""
    d = tmp_path_factory.mktemp("lm")
    folder = hf_folder(d / "llama", "llama", max_position_embeddings=64)
    return folder, export_folder(folder, d / "bundle")


@pytest.fixture
def tg(llama):
    with TextGenerator.open(llama[1], backend="ort-cpu") as t:
        yield t


def test_open_dispatches_on_arch_and_auto_backend_works(llama):
    with TextGenerator.open(llama[1]) as t:
        assert isinstance(t, LmGenerator)
        assert t.info.name == "ort-cpu" and t.max_context == 64
        assert len(list(t.generate(PROMPT, max_new_tokens=5, temperature=0))) >= 1


def test_repetition_penalty_matches_transformers(llama, tg):
    want = hf_greedy(llama[0], PROMPT, 30, repetition_penalty=1.5)
    g = tg.generate(PROMPT, max_new_tokens=30, temperature=0, repetition_penalty=1.5)
    list(g)
    assert g.tokens == want
    assert g.tokens != hf_greedy(llama[0], PROMPT, 30)  # the penalty changed something


def test_sampling_is_seeded_and_top_k_1_is_greedy(tg):
    def run(**kw):
        g = tg.generate(PROMPT, max_new_tokens=20, **kw)
        list(g)
        return g.tokens

    a, b = run(temperature=1.5, seed=3), run(temperature=1.5, seed=3)
    assert a == b
    assert any(run(temperature=1.5, seed=s) != a for s in (4, 5, 6))
    assert run(temperature=1.0, top_k=1, seed=9) == run(temperature=0)
    assert run(temperature=1.0, top_p=1e-9, seed=9) == run(temperature=0)


def test_generation_exposes_tokens_and_timings(tg):
    g = tg.start(PROMPT, max_new_tokens=10, temperature=0)
    pieces = list(g)
    assert len(g.tokens) == 10 and g.done and g.stop_reason == "length"
    assert "".join(pieces) == g.text == tg.decode(g.tokens)
    assert g.ttft_s is not None and g.ttft_s > 0 and g.tokens_per_s > 0


def test_stop_string_cuts_the_text(tg):
    full = tg.generate(PROMPT, max_new_tokens=30, temperature=0)
    text = "".join(full)
    stop = text[8:11]
    assert len(stop) == 3 and text.find(stop) >= 0
    g = tg.generate(PROMPT, max_new_tokens=30, temperature=0, stop=[stop, "\x00never"])
    streamed = "".join(g)
    assert streamed == g.text == text[: text.find(stop)]
    assert g.stop_reason == "stop" and len(g.tokens) < len(full.tokens)


def test_a_new_generation_ends_the_previous_one(tg):
    g1 = tg.start(PROMPT, max_new_tokens=5, temperature=0)
    g1.step()
    tg.start(PROMPT, max_new_tokens=5, temperature=0)
    with pytest.raises(BadInputError, match="Another generation"):
        g1.step()


def test_cache_survives_many_generations_of_different_lengths(llama, tg):
    want = hf_greedy(llama[0], PROMPT, 12)
    for n in (40, 3, 12):
        g = tg.generate(PROMPT, max_new_tokens=n, temperature=0)
        list(g)
    assert g.tokens == want


# ---------------------------------------------------------------- refusals
def test_prompt_longer_than_context_is_refused(tg):
    with pytest.raises(BadInputError, match="context is 64 tokens"):
        tg.generate("word " * 200, max_new_tokens=1)


def test_max_new_tokens_past_context_is_refused(tg):
    n = len(tg.encode(PROMPT))
    with pytest.raises(BadInputError, match=f"Pass max_new_tokens {64 - n} or less"):
        tg.generate(PROMPT, max_new_tokens=64)
    g = tg.generate(PROMPT, max_new_tokens=64 - n, temperature=0, eos=False)
    list(g)
    assert len(g.tokens) == 64 - n  # the whole context is usable


@pytest.mark.parametrize(
    "kw",
    [
        {"repetition_penalty": 0.0},
        {"repetition_penalty": float("nan")},
        {"stop": [""]},
        {"temperature": -1},
        {"top_p": 0},
        {"seed": -1},
        {"max_new_tokens": -1},
        {"bogus": 1},
    ],
)
def test_bad_sampling_options_are_refused(tg, kw):
    with pytest.raises(BadInputError):
        tg.start(PROMPT, **kw)


class BadLogitsBackend:
    """A backend whose logits hold ``bad`` at ``where`` (a broken artifact); finite elsewhere."""

    def __init__(self, info, bad, where):
        self.info, self.bad, self.where = info, bad, where

    def run_bound(self, feed, out):
        logits = out["logits"]
        logits[...] = np.linspace(-1.0, 1.0, logits.shape[-1], dtype=np.float32)
        logits[..., self.where] = self.bad

    def close(self):
        pass


@pytest.mark.parametrize(
    ("bad", "where"),
    [(np.nan, slice(None)), (np.nan, 7), (np.inf, 3), (-np.inf, slice(None))],
)
@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.8, "seed": 0}])
def test_nan_or_inf_logits_are_a_clear_error(tg, bad, where, sampling):
    lm = LmGenerator(tg.manifest, BadLogitsBackend(tg.info, bad, where), tg.tokenizer)
    with pytest.raises(CorruptArtifactError, match="NaN/Inf logits at position"):
        lm.start(PROMPT, max_new_tokens=3, **sampling).step()


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_a_minus_inf_logit_beside_finite_ones_is_a_masked_token(tg, temperature):
    lm = LmGenerator(tg.manifest, BadLogitsBackend(tg.info, -np.inf, 0), tg.tokenizer)
    tokens = set()
    for seed in range(20):
        g = lm.start(PROMPT, max_new_tokens=1, temperature=temperature, seed=seed)
        g.step()
        tokens.update(g.tokens)
    assert 0 not in tokens  # never drawn
    if temperature == 0:
        assert tokens == {lm.config.vocab_size - 1}  # the largest finite logit


def test_cli_generate_refuses_a_prompt_past_the_context(llama, capsys):
    from genedge.cli import main

    rc = main(["generate", str(llama[1]), "--prompt", "word " * 200, "--max-new-tokens", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and "context is 64 tokens" in err and "Traceback" not in err


# ---------------------------------------------------------------- streaming text
def _detokenizers(tok, context):
    from genedge.runtime.text_lm import ByteDetokenizer, byte_table

    table = byte_table(tok)
    assert table is not None  # the fixture's tokenizer is byte-level BPE
    return {"bytes": ByteDetokenizer(table), "offsets": Detokenizer(tok, context)}


@pytest.mark.parametrize("kind", ["bytes", "offsets"])
def test_detokenizer_never_splits_a_character(kind):
    """Characters the tokenizer never saw come out as single-byte tokens: a 3-byte character
    spans 3 tokens. Every piece is whole text and the pieces add up to the decoded text."""
    from text_fixtures import _tokenizer_json
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(_tokenizer_json(320))
    text = "naïve café — 日本語 ✓ done 🙂!"
    ids = tok.encode(text).ids
    assert len(ids) > len(text.split())  # multi-byte characters span several tokens
    d = _detokenizers(tok, tok.encode("Return").ids)[kind]
    pieces = [d.add(t) for t in ids] + [d.flush()]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == tok.decode(ids) == text
    assert "" in pieces  # some token completed no character on its own


@pytest.mark.parametrize("kind", ["bytes", "offsets"])
def test_detokenizers_agree_with_decode_on_invalid_byte_sequences(kind):
    from text_fixtures import _tokenizer_json
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(_tokenizer_json(320))
    ids = np.random.default_rng(0).integers(0, 320, 300).tolist()  # byte tokens in any order
    d = _detokenizers(tok, [])[kind]
    text = "".join([d.add(t) for t in ids] + [d.flush()])
    assert text == tok.decode(ids)
    assert "\ufffd" in text  # the sequence did hold broken characters


def test_byte_table_is_refused_for_other_decoders():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from genedge.runtime.text_lm import byte_table

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    assert byte_table(tok) is None


def test_offset_detokenizer_keeps_spaces_of_metaspace_tokenizers():
    """A SentencePiece-style decoder drops the leading space of the first token it decodes;
    decoding with the prompt's last tokens as context keeps the space between prompt and text."""
    from text_fixtures import sample_text
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"], show_progress=False)
    tok.train_from_iterator([sample_text(20_000)], trainer=trainer)
    from genedge.runtime.text_lm import byte_table

    assert byte_table(tok) is None  # not byte-level: the offset decoder runs
    prompt, rest = tok.encode("Return the").ids, tok.encode(" value of the object").ids
    d = Detokenizer(tok, prompt)
    text = "".join([d.add(t) for t in rest] + [d.flush()])
    full = tok.decode(prompt + rest)
    assert text == full[len(tok.decode(prompt)) :]
    assert text.startswith(" ")


def test_empty_prompt_starts_from_bos_as_transformers_does(llama, tg):
    """An empty prompt is the BOS token alone (P = 0, S = 1 on the first run)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(llama[0], local_files_only=True).eval()
    bos = torch.tensor([[tg.config.bos_token_id]])
    with torch.no_grad():
        want = model.generate(bos, attention_mask=torch.ones_like(bos), max_new_tokens=12,
                              do_sample=False, pad_token_id=0)[0, 1:].tolist()  # fmt: skip
    g = tg.generate("", max_new_tokens=12, temperature=0)
    list(g)
    assert g.tokens == want


def test_a_modified_tokenizer_is_refused_before_it_is_parsed(llama, tmp_path):
    import shutil

    from genedge.errors import IntegrityError

    bundle = tmp_path / "b"
    shutil.copytree(llama[1], bundle)
    tok = bundle / "tokenizer.json"
    data = bytearray(tok.read_bytes())
    data[10] ^= 1  # same size, one bit changed
    tok.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="tokenizer.json' fails its hash"):
        TextGenerator.open(bundle, backend="ort-cpu")


def test_byte_detokenizers_share_their_token_texts_and_agree_with_a_fresh_one():
    """Generations of one tokenizer share the token -> text list: whole-character tokens are
    decoded once; a token that starts or ends a split character still goes through the
    incremental decoder, so every detokenizer gives the pieces a fresh decoder gives."""
    from text_fixtures import _tokenizer_json
    from tokenizers import Tokenizer

    from genedge.runtime.text_lm import ByteDetokenizer, byte_table

    tok = Tokenizer.from_str(_tokenizer_json(320))
    table = byte_table(tok)
    assert table is not None
    texts: list = [False] * len(table)
    rng = np.random.default_rng(1)
    for n in range(3):
        text = "naïve café — 日本語 ✓ 🙂 " * (n + 1)
        ids = tok.encode(text).ids + rng.integers(0, 320, 40).tolist()  # whole, split, broken
        shared, fresh = ByteDetokenizer(table, texts), ByteDetokenizer(table)
        got = [shared.add(t) for t in ids] + [shared.flush()]
        assert got == [fresh.add(t) for t in ids] + [fresh.flush()]
        assert "".join(got) == tok.decode(ids)
    looked_up = [t for t in texts if t is not False]
    assert any(isinstance(t, str) for t in looked_up) and None in looked_up


def test_a_closed_backend_refuses_the_next_step_and_frees_its_lock(llama):
    tg = TextGenerator.open(llama[1], backend="ort-cpu")
    g = tg.start("Return", max_new_tokens=5, temperature=0)
    g.step(), g.step()  # the prompt, then the one-token run that binds the step arrays
    tg.backend.close()
    with pytest.raises(BadInputError, match="closed"):
        g.step()
    assert _free_from_another_thread(tg.backend.lock)


def test_an_onnx_runtime_failure_in_a_step_is_a_corrupt_artifact_and_frees_the_lock(tg):
    g = tg.start("Return", max_new_tokens=5, temperature=0)
    g.step(), g.step()

    def fail() -> None:
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : boom")

    tg.backend._run_binding = fail
    with pytest.raises(CorruptArtifactError, match="failed to run .*boom"):
        g.step()
    assert _free_from_another_thread(tg.backend.lock)


def _free_from_another_thread(lock) -> bool:
    import threading

    free: list[bool] = []

    def probe() -> None:
        if lock.acquire(blocking=False):
            lock.release()
            free.append(True)

    t = threading.Thread(target=probe)
    t.start(), t.join()
    return free == [True]


def test_binding_run_calls_the_session_method_when_ort_has_no_inner_objects():
    from genedge.runtime.ort_backend import _binding_run

    calls = []

    class Session:  # an ORT whose InferenceSession keeps no pybind ``_sess``
        def run_with_iobinding(self, binding, run_options=None):
            calls.append((binding, run_options))

    binding = object()
    _binding_run(Session(), binding)()
    assert calls == [(binding, None)]

    class Inner:
        def run_with_iobinding(self, raw, run_options):
            calls.append(("inner", raw, run_options))

    class Wrapped(Session):
        _sess = Inner()

    class Binding:
        _iobinding = "raw"

    _binding_run(Wrapped(), Binding())()
    assert calls[-1] == ("inner", "raw", None)


@pytest.mark.parametrize("busy", [False, True])
def test_cli_generate_busy_machine_lets_the_workers_sleep_between_runs(
    llama, capsys, monkeypatch, busy
):
    """--busy-machine opens the session with ORT's spinning stopped after each run; without
    it the decoder keeps its bounded spin."""
    from genedge.cli import main
    from genedge.runtime import ort_backend

    seen = []
    real = ort_backend._session_options

    def spy(ort, opts):
        seen.append((opts.spin_between_runs, opts.spin_us))
        return real(ort, opts)

    monkeypatch.setattr(ort_backend, "_session_options", spy)
    argv = ["generate", str(llama[1]), "--prompt", "Return", "--max-new-tokens", "3"]
    rc = main(argv + (["--busy-machine"] if busy else []))
    assert rc == 0, capsys.readouterr().err
    assert seen == ([(False, None)] if busy else [(True, 300)])


def test_repetition_penalty_touches_each_seen_token_once_past_its_first_buffer():
    from genedge.runtime.text_lm import RepetitionPenalty

    rng = np.random.default_rng(3)
    pen = RepetitionPenalty(1.5, 3000)
    seen = rng.integers(0, 3000, 5000)  # ~2500 distinct ids, many repeats: grows past 1024
    for t in seen:
        pen.add(int(t))
    logits = rng.standard_normal(3000)
    want = logits.copy()
    mask = np.zeros(3000, bool)
    mask[seen] = True
    want[mask] = np.where(want[mask] > 0, want[mask] / 1.5, want[mask] * 1.5)
    assert np.array_equal(pen(logits.copy()), want)

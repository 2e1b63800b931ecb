"""TextGenerator on a tiny random-weight char-RNN bundle: seeded, streaming, caller-owned loop."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from genedge.errors import BadInputError
from genedge.runtime import TextGenerator

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs torch for bundles"
)


def test_generation_is_seeded_and_streams(ar_bundle) -> None:
    with TextGenerator.open(ar_bundle.path) as tg:
        a = "".join(tg.generate("hello ", max_new_tokens=40, seed=1))
        assert len(a) == 40 and set(a) <= set(tg.vocab)
        assert a == "".join(tg.generate("hello ", max_new_tokens=40, seed=1))
        assert a != "".join(tg.generate("hello ", max_new_tokens=40, seed=2))


def test_caller_owned_loop_matches_generate(ar_bundle) -> None:
    with TextGenerator.open(ar_bundle.path) as tg:
        g = tg.start("abc", max_new_tokens=25, temperature=0.7, top_k=5, top_p=0.9, seed=3)
        chars = []
        while not g.done:
            chars.append(g.step())
        assert "".join(chars) == g.text
        assert g.text == "".join(tg.generate("abc", 25, 0.7, 5, 0.9, seed=3))
        assert g.ttft_s is not None and g.ttft_s > 0 and g.tokens_per_s > 0
        with pytest.raises(BadInputError):
            g.step()


def test_generate_is_the_generation_with_its_timings(ar_bundle) -> None:
    with TextGenerator.open(ar_bundle.path) as tg:
        g = tg.generate("abc", max_new_tokens=10, seed=1)
        first = next(g)
        assert g.ttft_s is not None and g.ttft_s > 0 and len(g.tokens) == 1
        rest = "".join(g)
        assert first + rest == g.text and len(g.text) == 10 and g.tokens_per_s > 0 and g.done


def test_a_stale_generation_cannot_step_on_shared_state(ar_bundle) -> None:
    with TextGenerator.open(ar_bundle.path) as tg:
        a = tg.start("abc", max_new_tokens=10, seed=1)
        a.step()
        b = tg.start("xyz", max_new_tokens=10, seed=1)
        with pytest.raises(BadInputError, match="Another generation"):
            a.step()
        assert len(b.step()) == 1


def test_greedy_matches_torch_reference(ar_bundle) -> None:
    """temperature 0 = argmax of the step graph, which equals the torch CharRNN's."""
    import torch

    from genedge.train.checkpoint import load_checkpoint

    with TextGenerator.open(ar_bundle.path) as tg:
        got = "".join(tg.generate("the ", max_new_tokens=20, temperature=0))
    model, cfg = load_checkpoint(ar_bundle.checkpoint)
    ids = model.encode_text("the ")
    with torch.no_grad():
        logits, state = model(torch.tensor([ids]))
        out = []
        tok = int(logits[0, -1, 1:].argmax()) + 1  # the unknown token (id 0) is never emitted
        for _ in range(20):
            out.append(tok)
            step = model.step(torch.tensor([tok]), *state)
            logits1, state = step[0], step[1:]
            tok = int(logits1[0, 1:].argmax()) + 1
    assert got == model.decode_tokens(out)


def test_state_buffers_are_reused(ar_bundle) -> None:
    with TextGenerator.open(ar_bundle.path) as tg:
        bufs = [id(b) for s in tg._state for b in s.values()]
        list(tg.generate("x", max_new_tokens=5))
        assert [id(b) for s in tg._state for b in s.values()] in (
            bufs,
            bufs[len(bufs) // 2 :] + bufs[: len(bufs) // 2],
        )
        assert np.isfinite(tg._logits).all()


def test_wrong_bundle_kind(gan_bundle) -> None:
    with pytest.raises(BadInputError, match="TextGenerator needs ar"):
        TextGenerator.open(gan_bundle.path)


def test_generate_cli(ar_bundle, capsys) -> None:
    from genedge.cli import main

    assert (
        main(
            [
                "generate",
                str(ar_bundle.path),
                "--prompt",
                "hi ",
                "--max-new-tokens",
                "30",
                "--seed",
                "4",
            ]
        )
        == 0
    )
    cap = capsys.readouterr()
    assert cap.out.startswith("hi ") and len(cap.out.strip("\n")) == 33
    assert "ttft" in cap.err and "tok/s" in cap.err
    assert main(["generate", str(ar_bundle.path), "--top-p", "0"]) == 2


@pytest.fixture(scope="module")
def unknown_first_bundle(tmp_path_factory):
    """An ar bundle whose unknown-character logit (id 0) is the highest at every step."""
    import torch

    from genedge.export.bundle import export_bundle
    from genedge.export.options import ExportOptions
    from genedge.train.ar import ArConfig, CharRNN
    from genedge.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = ArConfig(vocab="\ufffd abcdefgh", hidden=16, embed_dim=8)
    model = CharRNN(cfg).eval()
    with torch.no_grad():
        model.head.bias[0] = 50.0
    root = tmp_path_factory.mktemp("unknown")
    ckpt = save_checkpoint(root / "ar.safetensors", model, cfg, kind="ar")
    export_bundle(ExportOptions(source=ckpt, out=root / "b", precisions=("fp32",)))
    return root / "b", model


@pytest.mark.parametrize(
    "settings",
    [
        {"temperature": 0},
        {"temperature": 1.0},
        {"temperature": 5.0, "top_k": 1},
        {"temperature": 2.0, "top_p": 0.5},
    ],
)
def test_unknown_token_is_never_sampled(unknown_first_bundle, settings) -> None:
    import torch

    bundle, model = unknown_first_bundle
    with torch.no_grad():
        logits = model.step(torch.tensor([1]), *model.init_state(1))[0]  # (1, V)
    assert int(logits.argmax()) == 0  # the graph prefers the unknown token
    with TextGenerator.open(bundle) as tg:
        text = "".join(tg.generate("", max_new_tokens=60, seed=1, **settings))
        text += "".join(tg.generate("ab\ufffd", max_new_tokens=60, seed=2, **settings))
    assert len(text) == 120 and "\ufffd" not in text


def test_torch_sampling_never_emits_the_unknown_token(unknown_first_bundle) -> None:
    import torch

    from genedge.train.ar_trainer import sample_text

    _, model = unknown_first_bundle
    text = sample_text(model, "", 200, torch.Generator().manual_seed(0), temperature=3.0)
    assert len(text) == 200 and "\ufffd" not in text and len(set(text)) > 3

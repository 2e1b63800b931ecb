"""``genedge export RUN/generator.safetensors`` for a ``train ar --arch transformer`` checkpoint:
exported through its Llama folder, the bundle generates the torch model's own greedy tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from genedge.cli import main  # noqa: E402
from genedge.manifest import read_manifest  # noqa: E402
from genedge.train import save_checkpoint  # noqa: E402
from genedge.train.tokenizer import EOS_ID, bpe_tokenizer, encode  # noqa: E402
from genedge.train.transformer import TransformerConfig, TransformerLM  # noqa: E402

PROMPT = "Return the"


@torch.no_grad()
def _greedy(model: TransformerLM, ids: list[int], n: int) -> list[int]:
    logits, past = model(torch.tensor([ids]))
    out: list[int] = []
    for _ in range(n):
        t = int(logits[0, -1].argmax())
        if t == EOS_ID:
            break
        out.append(t)
        logits, past = model(torch.tensor([[t]]), past=past)
    return out


def test_transformer_checkpoint_exports_and_generates_its_greedy_tokens(tmp_path: Path):
    from genedge.runtime import TextGenerator

    tok = bpe_tokenizer("Return the value of the named attribute of object. " * 40, 300)
    cfg = TransformerConfig(
        vocab_size=300, layers=2, d_model=32, heads=4, kv_heads=2, context=64, tokenizer="bpe"
    )
    torch.manual_seed(1)
    model = TransformerLM(cfg).eval()
    with torch.no_grad():  # a peaked head, so greedy choices are not near-ties
        model.model.embed_tokens.weight.mul_(20)
    data = tmp_path / "corpus.txt"  # what it trained on: export scores the held-out tail
    data.write_text("Return the value of the named attribute of object.\n" * 40, encoding="utf-8")
    extra = {"family": "ar", "arch": "transformer", "tokenizer": tok.to_str(), "data": str(data)}
    ckpt = save_checkpoint(tmp_path / "generator.safetensors", model, cfg, kind="ar", extra=extra)
    bundle = tmp_path / "bundle"
    assert main(["export", str(ckpt), "--out", str(bundle), "--precision", "fp32"]) == 0
    m = read_manifest(bundle)
    assert (m.kind, m.model.arch, m.model.transformer.family) == ("ar", "transformer", "llama")
    assert m.source["type"] == "checkpoint" and m.source["checkpoint"] == "generator.safetensors"
    assert m.source["step"] == 0 and m.source["data"] == str(data)
    fp32 = next(a for a in m.artifacts if a.file == "model.onnx")
    assert fp32.verification.extra["text"] == "corpus.txt.held-out.txt"
    want = _greedy(model, encode(tok, PROMPT), 30)
    with TextGenerator.open(bundle, backend="ort-cpu") as tg:
        g = tg.generate(PROMPT, max_new_tokens=30, temperature=0)
        "".join(g)
    assert g.tokens == want

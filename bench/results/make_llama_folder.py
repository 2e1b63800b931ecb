"""Write the reference text model of bench/results/: a Hugging Face Llama folder.

    python bench/results/make_llama_folder.py OUT [--hidden 512] [--layers 8] ...

``config.json`` and ``model.safetensors`` from ``transformers`` (``LlamaConfig`` ->
``LlamaForCausalLM`` with seeded random weights -> ``save_pretrained``), and a byte-level BPE
``tokenizer.json`` trained with ``tokenizers`` on the docstrings of the running Python's
standard library (genedge's ``stdlib-docs`` corpus). Nothing is downloaded. Speed does not
depend on the weights' values, so they stay untrained. OUT must not exist yet.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def write_tokenizer(out: Path, vocab_size: int) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from genedge.train.data import load_text_data

    text = load_text_data("stdlib-docs").text
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(text.splitlines(), trainer)
    tok.save(str(out / "tokenizer.json"))
    return tok.get_vocab_size()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=1376)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--context", type=int, default=1024)
    a = p.parse_args()
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    a.out.mkdir(parents=True)
    vocab = write_tokenizer(a.out, a.vocab)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=a.hidden,
        intermediate_size=a.intermediate,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        num_key_value_heads=a.kv_heads,
        max_position_embeddings=a.context,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(a.out)
    n = sum(t.numel() for t in model.parameters())
    print(f"wrote {a.out}: Llama, {n / 1e6:.1f}M parameters, vocabulary {vocab}")


if __name__ == "__main__":
    main()

"""Tiny Hugging Face causal-LM folders for tests (import from any test module).

    from text_fixtures import hf_folder   # tests/ is on sys.path (tests/conftest.py)
    folder = hf_folder(tmp_path / "llama", "llama")       # GQA: 4 heads, 2 kv heads

Each folder is what a user brings: ``config.json``, ``model.safetensors`` (random weights
from a fixed seed, written by ``save_pretrained``) and a byte-level BPE ``tokenizer.json``
trained with ``tokenizers`` on docstrings of a few standard-library modules. Nothing is
downloaded. Building one takes well under a second after the tokenizer is cached.
"""

from __future__ import annotations

import functools
import inspect
import json
import shutil
from pathlib import Path
from typing import Any

VOCAB_SIZE = 320
EOS = "<|endoftext|>"
_DOC_MODULES = ("json", "textwrap", "string", "functools", "collections", "pathlib", "heapq")

# model_type -> config keyword arguments of a tiny model of that family
FAMILIES: dict[str, dict[str, Any]] = {
    "llama": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
    ),
    "qwen2": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
    ),
    "mistral": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        sliding_window=None,
    ),
    "gpt2": dict(n_embd=64, n_layer=2, n_head=4, n_positions=1024),
}


def sample_text(limit: int = 60_000) -> str:
    """Docstrings of a few standard-library modules: local, deterministic, some non-ASCII-free
    English with code; enough for a tokenizer and for held-out perplexity."""
    import importlib

    blocks: list[str] = []
    for name in _DOC_MODULES:
        module = importlib.import_module(name)
        blocks.append(inspect.getdoc(module) or "")
        for _, obj in sorted(vars(module).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc and doc not in blocks:
                blocks.append(doc)
    return "\n\n".join(blocks)[:limit]


@functools.lru_cache(maxsize=4)
def _tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([sample_text()], trainer=trainer)
    return tok.to_str()


def write_tokenizer(folder: Path, vocab_size: int = VOCAB_SIZE) -> Path:
    """A byte-level BPE ``tokenizer.json`` (``EOS`` is id 0) in ``folder``; returns its path."""
    path = Path(folder) / "tokenizer.json"
    path.write_text(_tokenizer_json(vocab_size), encoding="utf-8")
    return path


def hf_config(model_type: str, vocab_size: int = VOCAB_SIZE, **overrides: Any) -> Any:
    """A ``transformers`` config of a tiny ``model_type`` model (eos and bos: token 0)."""
    from transformers import AutoConfig

    kw = {**FAMILIES[model_type], **overrides}
    return AutoConfig.for_model(
        model_type, vocab_size=vocab_size, bos_token_id=0, eos_token_id=0, **kw
    )


def hf_folder(
    folder: Path,
    model_type: str = "llama",
    *,
    seed: int = 0,
    tokenizer: bool = True,
    **overrides: Any,
) -> Path:
    """Write a tiny random ``model_type`` causal LM (``save_pretrained``) and its tokenizer to
    ``folder``; ``overrides`` change config fields. Returns ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(hf_config(model_type, **overrides))
    with torch.no_grad():  # larger than the 0.02 init: logits that differ visibly between tokens
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(4.0)
    model.save_pretrained(folder)
    if tokenizer:
        write_tokenizer(folder, vocab_size=model.config.vocab_size)
    return folder


def edit_config(folder: Path, **fields: Any) -> None:
    """Change fields of ``folder/config.json`` (None removes a field)."""
    path = Path(folder) / "config.json"
    cfg = json.loads(path.read_text())
    for k, v in fields.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    path.write_text(json.dumps(cfg))


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def export_folder(folder: Path, out: Path, **options: Any) -> Path:
    """``genedge export FOLDER --out OUT`` (fp32 only unless ``precisions`` is given)."""
    from genedge.export.options import ExportOptions
    from genedge.export.routes.text_source import export_hf_folder

    options.setdefault("precisions", ("fp32",))
    return export_hf_folder(folder, ExportOptions(source=Path(folder), out=Path(out), **options))


def hf_greedy(folder: Path, prompt: str, max_new_tokens: int, **generate: Any) -> list[int]:
    """``transformers``' own greedy ``generate`` on ``folder`` (fp32): the new token ids (it
    stops early at the config's EOS, as genedge does). ``generate``: more keyword arguments
    of ``generate`` (``repetition_penalty``...)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        folder, local_files_only=True, trust_remote_code=False, dtype=torch.float32
    ).eval()
    ids = Tokenizer.from_file(str(Path(folder) / "tokenizer.json")).encode(prompt).ids
    x = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(
            x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=0,
            **generate,
        )
    return out[0, len(ids) :].tolist()

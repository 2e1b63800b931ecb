"""Transformer language model training: random token windows, teacher forcing, AdamW.

The text is split as for the recurrent models (``split_text``: the last 5% held out); the
tokenizer (``--tokenizer char|bpe``) is built from the training part and travels in the
checkpoint's metadata (``tokenizer``: the ``tokenizer.json`` text) and in the resume state.
The learning rate warms up for ``WARMUP_STEPS``, holds until ``DECAY_START`` of the budget,
then follows a cosine down to ``MIN_LR_FRACTION`` of the peak (``budget.hold_then_cosine``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from genedge.errors import BadInputError

from . import ddp
from .ar_trainer import (
    EVAL_CHARS,
    SAMPLE_CHARS,
    SAMPLE_PROMPTS,
    SAMPLE_SEED,
    TEMPERATURE,
    next_token_step,
    random_windows,
)
from .budget import Budget, hold_then_cosine
from .data import load_text_data, split_text
from .eval import transformer_text_metrics
from .options import TrainOptions
from .tokenizer import build_tokenizer, decode, encode, tokenizer_from_json
from .transformer import ARCH, TransformerConfig, TransformerLM, config_from_options

WARMUP_STEPS = 20
DECAY_START = 0.3
MIN_LR_FRACTION = 0.1
BETAS = (0.9, 0.95)
WEIGHT_DECAY = 0.1  # on matrices only; norms' gains are left alone


def lr_factor(step: int, progress: float) -> float:
    return hold_then_cosine(
        step, progress, warmup_steps=WARMUP_STEPS, decay_start=DECAY_START, floor=MIN_LR_FRACTION
    )


@torch.no_grad()
def sample_ids(
    model: TransformerLM,
    prompt_ids: list[int],
    n: int,
    g: torch.Generator,
    temperature: float = TEMPERATURE,
) -> list[int]:
    """``n`` token ids after ``prompt_ids`` by temperature sampling with the key/value cache.

    When the cache would pass the model's context, the last half context is fed again as a
    fresh prompt. EOS is never drawn.
    """
    device = next(model.parameters()).device
    keep = max(1, model.cfg.context // 2)
    ids = list(prompt_ids) or [model.cfg.eos_token_id]
    logits, past = model(torch.tensor([ids[-keep:]], device=device))
    out: list[int] = []
    for _ in range(n):
        scores = logits[0, -1].float().cpu()  # (V,)
        scores[model.cfg.eos_token_id] = -math.inf
        t = int(torch.multinomial(torch.softmax(scores / temperature, dim=-1), 1, generator=g))
        out.append(t)
        ids.append(t)
        if past[0][0].shape[2] >= model.cfg.context:
            logits, past = model(torch.tensor([ids[-keep:]], device=device))
        else:
            logits, past = model(torch.tensor([[t]], device=device), past=past)
    return out


class TransformerFamily:
    kind = "ar"

    def __init__(self, opts: TrainOptions, ctx: ddp.DistContext) -> None:
        self.opts, self.ctx, self.device = opts, ctx, ctx.device
        self.text = load_text_data(opts.data)
        self.train_text, self.heldout = split_text(self.text.text)
        self.set_tokenizer(build_tokenizer(opts.tokenizer, self.train_text, opts.vocab_size))
        self.cfg = config_from_options(opts, self.tokenizer.get_vocab_size())
        self.model = TransformerLM(self.cfg).to(self.device)
        self.net = ddp.wrap(self.model, ctx)
        self.opt = torch.optim.AdamW(self._param_groups(), lr=opts.lr, betas=BETAS)
        self.steps_done = 0
        self.budget = Budget(opts)

    def set_tokenizer(self, tokenizer: Any) -> None:
        """Use ``tokenizer`` and cut this rank's slice of the encoded training text."""
        self.tokenizer = tokenizer
        tokens = torch.tensor(encode(tokenizer, self.train_text), dtype=torch.int64)
        self.chars_per_token = len(self.train_text) / max(1, len(tokens))
        shard = len(tokens) // self.ctx.world_size
        self.tokens = tokens[self.ctx.rank * shard : (self.ctx.rank + 1) * shard]  # (T_rank,)
        need = self.opts.context + 2
        if len(self.tokens) < need:
            raise BadInputError(
                f"--data {self.opts.data!r}: {len(tokens)} training tokens; --context "
                f"{self.opts.context} needs at least {need * self.ctx.world_size}.",
                hint="Use a longer text file, a smaller --context, or --data stdlib-docs.",
            )

    def _param_groups(self) -> list[dict[str, Any]]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows: inputs (B, T), targets (B, T)."""
        return random_windows(self.tokens, self.cfg.context, self.opts.batch_size, self.device)

    def train_step(self) -> dict[str, float]:
        lr = self.opts.lr * lr_factor(self.steps_done, self.budget.progress(self.steps_done))
        loss = next_token_step(self, lr)
        bpc = loss / math.log(2) / self.chars_per_token  # training text's average
        return {"loss": loss, "bpc": bpc, "lr": lr}

    def generate(self, prompt: str, n_chars: int, g: torch.Generator) -> str:
        """``prompt`` and about ``n_chars`` sampled characters after it."""
        self.model.eval()
        try:
            n = max(1, round(n_chars / self.chars_per_token))
            ids = sample_ids(self.model, encode(self.tokenizer, prompt), n, g)
            return prompt + decode(self.tokenizer, ids)
        finally:
            self.model.train()

    def sample(self) -> str:
        g = torch.Generator().manual_seed(SAMPLE_SEED)
        texts = [self.generate(p, SAMPLE_CHARS, g) for p in SAMPLE_PROMPTS]
        return "\n\n-----\n\n".join(texts) + "\n"

    def evaluate(self) -> dict[str, float]:
        return transformer_text_metrics(
            self.model,
            self.tokenizer,
            self.heldout,
            max_chars=EVAL_CHARS,
            train_text=self.train_text,
        )

    def export_model(self) -> tuple[nn.Module, TransformerConfig]:
        return self.model, self.cfg

    def checkpoint_meta(self) -> dict[str, str]:
        return {
            "data": self.opts.data,
            "family": "ar",
            "arch": ARCH,
            "tokenizer": self.tokenizer.to_str(),
        }

    def data_info(self) -> dict[str, Any]:
        return {
            "name": self.text.name,
            "chars": len(self.text.text),
            "train_chars": len(self.train_text),
            "heldout_chars": len(self.heldout),
            "tokenizer": self.cfg.tokenizer,
            "vocab_size": self.cfg.vocab_size,
            "train_tokens": len(self.tokens) * self.ctx.world_size,
        }

    def trained_module(self) -> nn.Module:
        return self.model

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "steps_done": self.steps_done,
            "tokenizer": self.tokenizer.to_str(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("tokenizer")
        if saved is not None and saved != self.tokenizer.to_str():
            self.set_tokenizer(tokenizer_from_json(saved))  # the run keeps the ids it began with
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.steps_done = int(state["steps_done"])

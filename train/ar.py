"""Character-level recurrent language model with an explicit single-step function.

``step(token, *state) -> (logits, *state)`` is what export turns into the one-step ONNX
graph (DESIGN.md section 2): token (B,) int64, state (L, B, H) float32 per tensor
(one for GRU: ``h``; two for LSTM: ``h``, ``c``), logits (B, V).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ArConfig:
    vocab: str = ""  # the characters, index = token id; index 0 is the unknown-char token
    cell: str = "gru"  # "gru" | "lstm"
    embed_dim: int = 48
    hidden: int = 192  # one GRU layer of 192 trains ~2.5 steps/s on a loaded 2-core CPU
    layers: int = 1
    dropout: float = 0.0

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("h", "c") if self.cell == "lstm" else ("h",)

    def validate(self) -> None:
        if self.cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {self.cell!r}")
        if self.vocab_size < 2:
            raise ValueError("vocab must hold at least two characters")


class CharRNN(nn.Module):
    def __init__(self, cfg: ArConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        rnn = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = rnn(
            cfg.embed_dim,
            cfg.hidden,
            cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.head = nn.Linear(cfg.hidden, cfg.vocab_size)

    def init_state(self, B: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        shape = (self.cfg.layers, B, self.cfg.hidden)
        return tuple(torch.zeros(shape, device=device) for _ in self.cfg.state_names)

    def forward(
        self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """tokens (B, T) -> logits (B, T, V), state."""
        x = self.embed(tokens)  # (B, T, E)
        if state is None:
            state = self.init_state(tokens.shape[0], tokens.device)
        rnn_state = state if self.cfg.cell == "lstm" else state[0]
        y, new = self.rnn(x, rnn_state)  # (B, T, H)
        new_state = tuple(new) if self.cfg.cell == "lstm" else (new,)
        return self.head(y), new_state

    def step(self, token: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """token (B,) int64, state (L, B, H)... -> (logits (B, V), *state)."""
        logits, new_state = self.forward(token[:, None], tuple(state))
        return (logits[:, 0], *new_state)

    def encode_text(self, text: str) -> list[int]:
        index = {ch: i for i, ch in enumerate(self.cfg.vocab)}
        return [index.get(ch, 0) for ch in text]

    def decode_tokens(self, tokens: list[int]) -> str:
        return "".join(self.cfg.vocab[t] for t in tokens)

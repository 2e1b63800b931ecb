"""Perplexity and bits per character of a text under a transformer bundle's decoder (docs/text.md).

Teacher forcing through the decoder users generate with (``text_lm.KvDecoder``): the token
ids are cut into windows of at most ``window`` tokens that overlap by one; each window is one
prefill run on an empty cache, and every token after the first is scored exactly once, by
the logits of the position before it. numpy only: export's perplexity gate and
``genedge eval BUNDLE`` share this code.

    with TextGenerator.open("bundle", backend="ort-cpu", precision="int4") as lm:
        score = score_text(lm.decoder, lm.tokenizer, text)
    score.perplexity, score.bits_per_char, score.tokens
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from genedge.errors import BadInputError

DEFAULT_WINDOW = 256  # tokens per prefill run (at most the model's context)
DEFAULT_MAX_TOKENS = 4096  # tokens scored by default: perplexity ratios settle well before


@dataclass(frozen=True)
class TextScore:
    """How well a decoder predicts a text. ``nll``: mean negative log-likelihood, nats per
    scored token (inf when the graph gave non-finite logits); ``chars``: characters the scored
    tokens cover."""

    nll: float
    tokens: int
    chars: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll) if math.isfinite(self.nll) else math.inf

    @property
    def bits_per_char(self) -> float:
        return self.nll * self.tokens / max(self.chars, 1) / math.log(2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (a non-finite value becomes None)."""
        d = {"perplexity": self.perplexity, "bits_per_char": self.bits_per_char}
        return {
            **{k: (v if math.isfinite(v) else None) for k, v in d.items()},
            "tokens": self.tokens,
            "chars": self.chars,
        }


def windows(n: int, window: int) -> list[tuple[int, int]]:
    """(start, stop) of windows over ``n`` tokens, each at most ``window`` long and overlapping
    the next by one token, so that tokens 1 .. n-1 are each scored once."""
    if window < 2:
        raise BadInputError(f"Perplexity window of {window} tokens: expected at least 2.")
    return [(s, min(s + window, n)) for s in range(0, max(n - 1, 0), window - 1)]


def token_nll(decoder: Any, ids: np.ndarray, window: int = DEFAULT_WINDOW) -> tuple[float, int]:
    """(sum over scored tokens of -log p(token | the tokens before it in its window), in nats;
    how many were scored) for int64 (N,) ``ids`` through ``decoder`` (a ``KvDecoder``).
    Non-finite logits make the sum infinite."""
    window = min(window, decoder.cfg.max_context)
    decoder.reserve(window)
    total, scored = 0.0, 0
    for start, stop in windows(len(ids), window):
        decoder.reset()
        logits = decoder.feed(ids[start:stop])  # (S, V), a view the next feed overwrites
        total += _nll(logits[:-1], ids[start + 1 : stop])
        scored += stop - start - 1
    return total, scored


def _nll(logits: np.ndarray, targets: np.ndarray) -> float:
    """Sum of -log softmax(logits)[target] over rows: logits (S, V), targets int64 (S,)."""
    z = logits.astype(np.float64)  # (S, V)
    if not np.isfinite(z).all():
        return math.inf
    z -= z.max(-1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(-1))  # (S,)
    return float((log_norm - z[np.arange(len(targets)), targets]).sum())


def score_text(
    decoder: Any,
    tokenizer: Any,
    text: str,
    *,
    window: int = DEFAULT_WINDOW,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    bos_token_id: int | None = None,
) -> TextScore:
    """Score ``text`` (tokenized by a ``tokenizers.Tokenizer``, no special tokens) through
    ``decoder`` (a ``KvDecoder``): at most ``max_tokens`` tokens, the first ones of the text.
    With ``bos_token_id`` the ids start with it, so the text's first token is scored too."""
    enc = tokenizer.encode(text, add_special_tokens=False)
    ids, offsets = list(enc.ids), list(enc.offsets)
    first_char = offsets[0][1] if offsets else 0
    if bos_token_id is not None:
        ids, offsets, first_char = [bos_token_id, *ids], [(0, 0), *offsets], 0
    ids, offsets = ids[: max_tokens + 1], offsets[: max_tokens + 1]
    if len(ids) < 2:
        raise BadInputError(
            f"The text to score gives {len(ids)} token(s); expected at least 2.",
            hint="Pass a longer text (a few hundred characters or more).",
        )
    nll, scored = token_nll(decoder, np.asarray(ids, np.int64), window)
    chars = max(offsets[-1][1] - first_char, 1)
    return TextScore(nll / scored if math.isfinite(nll) else math.inf, scored, chars)

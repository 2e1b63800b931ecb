"""Text generation from a transformer ``ar`` bundle (docs/text.md): a KV cache, no torch.

    with TextGenerator.open("bundle") as tg:           # dispatches here on model.arch
        for piece in tg.generate("def main", max_new_tokens=64, temperature=0):
            print(piece, end="", flush=True)
        g = tg.start("def main", seed=0)               # or own the loop
        while not g.done:
            piece = g.step()                           # "" while a character is incomplete

The ``decoder`` graph takes ``input_ids`` (1, S), ``position_ids`` (1, S) and the cache of
every layer, and returns ``logits`` (1, S, V) and the cache after the run. Two cache layouts
(docs/text.md), told apart by the graph's I/O:

- shared (past and present both (1, H_kv, M, D)): ONNX Runtime's ``GroupQueryAttention``
  writes the new keys and values into the buffer in place. ``KvDecoder`` allocates one buffer
  of M positions per layer and binds it as both past and present once per reservation; a step
  binds only the token ids, positions and logits.
- concatenated (past (1, H_kv, P, D), present (1, H_kv, P + S, D)): two sets of flat buffers;
  a run reads the past from one set and ONNX Runtime writes the present straight into the
  other (bound by pointer), then the sets swap roles.

No step copies the cache in Python or allocates. The prompt goes in one run (prefill), then
one token per run.

Text is streamed by ``ByteDetokenizer`` (byte-level BPE: each token's bytes through an
incremental UTF-8 decoder) or ``Detokenizer`` (any other tokenizer: a piece is released only
once it decodes to whole characters), so a character split over tokens never comes out in
halves.
"""

from __future__ import annotations

import codecs
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genedge.errors import (
    BadInputError,
    CorruptArtifactError,
    IncompatibleEnvironmentError,
    printable,
    require,
)
from genedge.latents import check_seed, is_int, is_real
from genedge.limits import MAX_NEW_TOKENS, check_bytes, check_prompt
from genedge.manifest import TRANSFORMER_GRAPH, Manifest, TransformerConfig
from genedge.manifest_model import LOGITS_FROM

from . import registry
from .backend import Backend, BackendInfo
from .sampling import make_filters, sample_token
from .select import open_backend

MAX_STOP_STRINGS = 16
# ORT workers of a transformer decoder spin this long (µs) after a run before they sleep: a
# token's Python work (sampling, detokenizing) takes tens of µs, so they stay awake through
# a generation, and a worker woken from sleep once per token costs more than the spin
# (docs/text.md has the measurements)
DECODER_SPIN_US = 300
DETOKENIZE_CONTEXT = 5  # tokens before the new ones decoded with them (merges across the seam)


# ---------------------------------------------------------------- the decoder and its cache
class KvDecoder:
    """The ``decoder`` graph with its cache: ``reset()``, then ``feed(ids)`` any number of
    times; each ``feed`` appends ``len(ids)`` positions and returns their logits.

    Batch 1. Buffers are sized by ``reserve(n)`` (at most ``max_context`` positions) and kept
    until a longer reservation; ``feed`` past the reservation raises ``BadInputError``. The
    shared layout binds the first ``n`` positions' worth of each buffer as a (1, H_kv, n, D)
    cache, so a short generation after a long one attends over a cache of its own size.
    """

    def __init__(self, backend: Backend, cfg: TransformerConfig) -> None:
        if not hasattr(backend, "run_bound"):
            raise IncompatibleEnvironmentError(
                f"Backend '{backend.info.name}' cannot run a transformer bundle's KV cache; "
                f"expected one of {', '.join(cache_backends())}.",
                hint="Pass --backend ort-cpu (or ort-cuda on an NVIDIA GPU).",
            )
        self.backend, self.cfg = backend, cfg
        self.names = [
            (f"past_key_values.{i}.{p}", f"present.{i}.{p}")
            for i in range(cfg.num_layers)
            for p in ("key", "value")
        ]
        self.shared = shared_cache(backend)
        self._rerun = getattr(backend, "rerun_bound", None)
        # logits_from (export/rewrites/last_logits.py): [0] every position's logits, [-1] the
        # last one's; None when the graph has no such input
        self._logits_from = (
            (np.zeros(1, np.int64), np.full(1, -1, np.int64))
            if LOGITS_FROM in getattr(backend, "optional_inputs", ())
            else None
        )
        self.length = 0  # P: positions in the cache
        self.capacity = 0  # positions the buffers hold
        self.reserved = 0  # positions this generation may use (<= capacity)
        self._kv = np.empty((2, len(self.names), 0), np.float32)  # (set, layer*2, Hkv*T*D)
        self._cache_bound = False  # shared: the buffers are bound as past and present
        self._step_bound = False  # shared: the one-token buffers below are bound
        self._step = (  # one-token feeds: id, position, logits at fixed addresses
            np.zeros((1, 1), np.int64),
            np.zeros((1, 1), np.int64),
            np.empty((1, 1, cfg.vocab_size), np.float32),
        )
        # a step writes two scalars through memoryviews of the same memory (fewer instructions
        # than numpy's item assignment) and returns one fixed view of the logits
        self._step_id = memoryview(self._step[0].reshape(1))
        self._step_pos = memoryview(self._step[1].reshape(1))
        self._step_logits = self._step[2].reshape(cfg.vocab_size)
        self._read = 0  # which set holds the past
        self._positions = np.arange(cfg.max_context, dtype=np.int64)[None]  # (1, max_context)
        self._ids = np.zeros((1, cfg.max_context), np.int64)
        self._logits = np.empty(0, np.float32)  # (S * V,), grown for the longest feed

    def reserve(self, positions: int) -> None:
        """Make room for ``positions`` cached positions (<= max_context); resets the cache."""
        c = self.cfg
        if positions > c.max_context:
            raise BadInputError(
                f"{positions} positions requested; the model's context is {c.max_context}."
            )
        if positions > self.capacity:
            per = c.num_kv_heads * positions * c.head_dim
            sets = 1 if self.shared else 2
            check_bytes(
                "The KV cache",
                sets * len(self.names) * per * 4,
                hint="Ask for fewer tokens (a shorter prompt or a smaller max_new_tokens).",
            )
            self._kv = np.zeros((sets, len(self.names), per), np.float32)
            self.capacity = positions
        self.reserved = positions
        self.reset()

    def reset(self) -> None:
        self.length, self._read = 0, 0
        self._cache_bound = self._step_bound = False  # bound again by the next feed

    def _view(self, which: int, j: int, T: int) -> np.ndarray:
        c = self.cfg
        n = c.num_kv_heads * T * c.head_dim
        return self._kv[which, j, :n].reshape(1, c.num_kv_heads, T, c.head_dim)

    def _tokens_io(
        self, ids: Sequence[int] | np.ndarray, S: int, P: int, last: bool
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
        """Feeds and outputs of ``S`` token ids at positions P .. P+S-1, in the reused id and
        logits buffers (grown for the longest feed); the logits array (1, S, V) last, or with
        ``last`` and a graph that can, (1, 1, V): the last position's only."""
        V = self.cfg.vocab_size
        rows = 1 if last and self._logits_from is not None else S
        if self._logits.size < rows * V:
            self._logits = np.empty(rows * V, np.float32)
        self._ids[0, :S] = ids
        logits = self._logits[: rows * V].reshape(1, rows, V)
        feed = {"input_ids": self._ids[:, :S], "position_ids": self._positions[:, P : P + S]}
        if self._logits_from is not None:
            feed[LOGITS_FROM] = self._logits_from[rows < S]
        return feed, {"logits": logits}, logits

    def feed(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Run ``ids`` (S >= 1 token ids) at positions P .. P+S-1: logits float32 (S, V), a view
        into a buffer the next ``feed`` overwrites."""
        return self._feed(ids, last=False)

    def feed_last(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """``feed(ids)[-1]``: the last position's logits (V,). A graph with ``logits_from``
        computes the head for that position only (a prompt's prefill)."""
        return self._feed(ids, last=True)[-1]

    def _feed(self, ids: Sequence[int] | np.ndarray, last: bool) -> np.ndarray:
        S, P = len(ids), self.length
        if S < 1 or self.reserved < P + S:
            raise BadInputError(
                f"feed of {S} tokens at position {P}: expected 1 to {self.reserved - P} "
                f"(the cache holds {self.reserved} positions)."
            )
        if self.shared:
            return self._feed_shared(ids, S, P, last)
        feed, out, logits = self._tokens_io(ids, S, P, last)
        write = 1 - self._read
        for j, (past, present) in enumerate(self.names):
            feed[past] = self._view(self._read, j, P)
            out[present] = self._view(write, j, P + S)
        self.backend.run_bound(feed, out)
        self._read, self.length = write, P + S
        return logits[0]

    def feed_token(self, token: int) -> np.ndarray:
        """``feed([token])[-1]``: one token's logits (V,). Once a one-token feed has bound the
        shared cache's step arrays, a step writes its id and position into them and reruns
        the bound run: nothing is rebound and no dict is built."""
        P = self.length
        if not self._step_bound or self.reserved <= P or self._rerun is None:
            return self.feed((token,))[-1]
        self._step_id[0] = token
        self._step_pos[0] = P
        self._rerun()
        self.length = P + 1
        return self._step_logits

    def _feed_shared(
        self, ids: Sequence[int] | np.ndarray, S: int, P: int, last: bool
    ) -> np.ndarray:
        """``feed`` on the shared-cache graph. Names bound by ``run_bound`` stay bound for later
        runs: the cache buffers are bound once after ``reset``, and a run of one token after
        another rebinds nothing (its id and position are written into the bound arrays)."""
        feed: dict[str, np.ndarray] = {}
        out: dict[str, np.ndarray] = {}
        if S == 1:
            one_id, one_pos, logits = self._step
            one_id[0, 0], one_pos[0, 0] = ids[0], P
            if not self._step_bound:
                feed = {"input_ids": one_id, "position_ids": one_pos}
                out = {"logits": logits}
        else:
            feed, out, logits = self._tokens_io(ids, S, P, last)
        if not self._cache_bound:
            for j, (past, present) in enumerate(self.names):
                feed[past] = out[present] = self._view(0, j, self.reserved)
        self.backend.run_bound(feed, out)
        self._cache_bound, self._step_bound, self.length = True, S == 1, P + S
        return logits[0]


def shared_cache(backend: Backend) -> bool:
    """Whether the graph reads and writes its cache in one buffer: past and present declared
    with the same length symbol (M), as the GroupQueryAttention graphs of docs/text.md are."""
    past = {t.name: t.shape for t in getattr(backend, "inputs", ())}.get("past_key_values.0.key")
    present = {t.name: t.shape for t in getattr(backend, "outputs", ())}.get("present.0.key")
    if past is None or present is None or len(past) != 4 or len(present) != 4:
        return False
    return isinstance(past[2], str) and past[2] == present[2]


# ---------------------------------------------------------------- logits processors
class RepetitionPenalty:
    """Logit filter (CTRL / ``transformers``' rule): every token already in the prompt or the
    output has its logit divided by ``penalty`` when positive, multiplied when negative."""

    def __init__(self, penalty: float, vocab_size: int) -> None:
        self.penalty = penalty
        self.seen = np.zeros(vocab_size, bool)
        # the seen ids in order of first sight: a step touches those, not the vocabulary
        self._ids = np.empty(min(vocab_size, 1024), np.int64)
        self._n = 0

    def add(self, token: int) -> None:
        if self.seen[token]:
            return
        self.seen[token] = True
        if self._n == len(self._ids):
            self._ids = np.concatenate([self._ids, np.empty_like(self._ids)])
        self._ids[self._n] = token
        self._n += 1

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        ids = self._ids[: self._n]
        x = logits[ids]
        logits[ids] = np.where(x > 0, x / self.penalty, x * self.penalty)
        return logits


# ---------------------------------------------------------------- incremental detokenizing
class Detokenizer:
    """Token ids -> text pieces that never split a character.

    The new tokens are decoded together with up to ``DETOKENIZE_CONTEXT`` tokens before them
    (decoders that drop a leading space or merge bytes need the context); a piece is released
    when the decoded text grows and does not end in U+FFFD (an incomplete UTF-8 sequence).
    """

    def __init__(self, tokenizer: Any, context: Sequence[int] = ()) -> None:
        self._tok = tokenizer
        self._ids = list(context)
        self._prefix = max(len(self._ids) - DETOKENIZE_CONTEXT, 0)
        self._read = len(self._ids)

    def _decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)

    def add(self, token: int) -> str:
        """The text ``token`` completes ("" while a character is still incomplete)."""
        self._ids.append(token)
        return self._release(final=False)

    def flush(self) -> str:
        """Whatever is held back (an incomplete character comes out as U+FFFD)."""
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        before = self._decode(self._ids[self._prefix : self._read])
        now = self._decode(self._ids[self._prefix :])
        if len(now) <= len(before) or (now.endswith("\ufffd") and not final):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return now[len(before) :]


class ByteDetokenizer:
    """The same pieces as ``Detokenizer`` for byte-level BPE tokenizers, in O(1) per token:
    each token's bytes go through an incremental UTF-8 decoder (invalid bytes become U+FFFD,
    as the tokenizer's own lossy decoding does). A token whose bytes are whole characters,
    with nothing held from the tokens before it, is its text decoded once and looked up after
    (the decoder would return the same text)."""

    def __init__(self, table: list[bytes], texts: list[str | bool | None] | None = None) -> None:
        self._table = table
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._held = False  # the decoder holds the start of a character
        # token -> its text where its bytes are whole UTF-8 characters (False: not looked up
        # yet, None: they are not); ``texts`` shares one such list between the generations of
        # one tokenizer
        self._texts = texts if texts is not None else [False] * len(table)

    def add(self, token: int) -> str:
        if not self._held and token < len(self._texts):
            text = self._texts[token]
            if text is False:
                text = self._texts[token] = _whole_text(self._table[token])
            if text is not None:
                return text  # type: ignore[return-value]
        piece = self._utf8.decode(self._table[token] if token < len(self._table) else b"")
        self._held = bool(self._utf8.getstate()[0])
        return piece

    def flush(self) -> str:
        self._held = False
        return self._utf8.decode(b"", final=True)


def _whole_text(b: bytes) -> str | None:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _byte_to_unicode() -> dict[str, int]:
    """GPT-2's byte-level alphabet: printable character -> the byte it stands for."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, n = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


def byte_table(tokenizer: Any) -> list[bytes] | None:
    """Token id -> its bytes, for a tokenizer whose decoder is exactly byte-level and whose
    added tokens are all special (skipped when decoding); None for any other tokenizer."""
    spec = json.loads(tokenizer.to_str())
    if (spec.get("decoder") or {}).get("type") != "ByteLevel":
        return None
    added = spec.get("added_tokens") or []
    if any(not t.get("special") for t in added):
        return None
    special = {t["id"] for t in added}
    u2b = _byte_to_unicode()
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    table = [b""] * (max(vocab.values(), default=-1) + 1)
    for tok, i in vocab.items():
        if i in special:
            continue
        if any(c not in u2b for c in tok):
            return None
        table[i] = bytes(u2b[c] for c in tok)
    return table


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of ``text`` could begin a stop string."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if s.startswith(text[-n:]):
                best = n
                break
    return best


# ---------------------------------------------------------------- options
@dataclass(frozen=True)
class SamplingOptions:
    """How to pick each token. ``temperature=0`` is greedy; ``stop``: strings that end the
    generation (not included in the text); ``eos``: stop at the model's end-of-text tokens."""

    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    eos: bool = True


def validate_sampling(o: SamplingOptions) -> SamplingOptions:
    """Refuse (exit 2) settings no generation can use, naming the field."""
    if not is_int(o.max_new_tokens) or not 0 <= o.max_new_tokens <= MAX_NEW_TOKENS:
        raise BadInputError(
            f"max_new_tokens {o.max_new_tokens!r}: expected an integer in [0, {MAX_NEW_TOKENS:,}]."
        )
    p = o.repetition_penalty
    if not is_real(p) or not np.isfinite(p) or p <= 0:
        raise BadInputError(
            f"repetition_penalty {p!r}: expected a finite number > 0 (1: off, 1.1-1.3 typical)."
        )
    stop = (o.stop,) if isinstance(o.stop, str) else tuple(o.stop)
    if len(stop) > MAX_STOP_STRINGS or not all(isinstance(s, str) and s for s in stop):
        raise BadInputError(
            f"stop {printable(repr(o.stop), 80)}: expected up to {MAX_STOP_STRINGS} non-empty strings."
        )
    check_seed(o.seed)
    make_filters(o.temperature, o.top_k, o.top_p)  # raises on bad values
    return SamplingOptions(
        int(o.max_new_tokens), o.temperature, o.top_k, o.top_p, float(p), stop, int(o.seed), o.eos
    )


# ---------------------------------------------------------------- one generation
class LmGeneration:
    """One generation in progress: ``step()`` until ``done``, or iterate it for text pieces.

    ``tokens``: the ids generated so far; ``text``: their text (stop string cut);
    ``ttft_s``: start to the first token; ``tokens_per_s``: decode speed after the first.
    """

    def __init__(self, lm: LmGenerator, prompt_ids: list[int], opts: SamplingOptions) -> None:
        self._lm, self._prompt, self._o = lm, prompt_ids, opts
        V = lm.config.vocab_size
        self._penalty: RepetitionPenalty | None = None  # 1.0: off, nothing to track
        if opts.repetition_penalty != 1.0:
            self._penalty = RepetitionPenalty(opts.repetition_penalty, V)
            for t in prompt_ids:
                self._penalty.add(t)
        self._filters = ([self._penalty] if self._penalty else []) + make_filters(
            opts.temperature, opts.top_k, opts.top_p
        )
        self._greedy = opts.temperature == 0
        self._plain_greedy = self._greedy and not self._filters  # argmax of the raw logits
        self._dec = lm.decoder
        self._rng = np.random.default_rng(opts.seed)
        self._eos = set(lm.config.eos_token_ids) if opts.eos else set()
        self._detok = lm.detokenizer(prompt_ids)
        self._full = ""  # decoded text of the tokens so far (stop strings cut)
        self._emitted = 0  # characters of _full handed out
        self._t_start = time.perf_counter()
        self._t_first = self._t_last = 0.0
        self.tokens: list[int] = []
        self.ttft_s: float | None = None
        self.stop_reason: str | None = None  # "length", "eos", "stop"
        self.done = opts.max_new_tokens == 0
        if self.done:
            self.stop_reason = "length"

    @property
    def text(self) -> str:
        return self._full

    @property
    def tokens_per_s(self) -> float:
        """(n - 1) / (t_last - t_first): decode speed after the first token; 0 before two."""
        n, dt = len(self.tokens), self._t_last - self._t_first
        return (n - 1) / dt if n > 1 and dt > 0 else 0.0

    def step(self) -> str:
        """Generate one token; return the text it completes ("" when a character or a possible
        stop string is still incomplete; the rest comes out with the last step)."""
        if self.done:
            raise BadInputError("This generation is done; call start() again.")
        if self._lm._active is not self:
            raise BadInputError(
                "Another generation was started on this TextGenerator since this one; they "
                "share its KV cache, so this one cannot continue.",
                hint="Open one TextGenerator per concurrent generation.",
            )
        tokens, dec = self.tokens, self._dec
        logits = dec.feed_token(tokens[-1]) if tokens else dec.feed_last(self._prompt)
        token = self._draw(logits)
        tokens.append(token)
        if self._penalty is not None:
            self._penalty.add(token)
        self._t_last = time.perf_counter()
        if self.ttft_s is None:
            self._t_first = self._t_last
            self.ttft_s = self._t_last - self._t_start
        piece = self._detok.add(token)
        if token in self._eos:
            self.stop_reason = "eos"
        elif len(tokens) >= self._o.max_new_tokens:
            self.stop_reason = "length"
        else:
            return self._text_after(piece, final=False)
        self.done = True
        return self._text_after(piece + self._detok.flush(), final=True)

    def _draw(self, logits: np.ndarray) -> int:
        """A token id from logits (V,). A NaN or +Inf logit, or no finite one, is an error,
        never a token; a -Inf beside finite logits is a masked token (probability 0)."""
        if self._plain_greedy:
            # one pass: argmax lands on the first NaN, else on a +Inf, and on -Inf only when
            # every logit is -Inf (a second pass over logits fresh from a run cost ~10 µs)
            token = int(logits.argmax())
            if not math.isfinite(logits.item(token)):
                raise self._bad_logits()
            return token
        if not math.isfinite(logits.max()):  # NaN and +Inf propagate; -Inf when all are
            raise self._bad_logits()
        work = self._lm._work
        if self._greedy:
            np.copyto(work, logits)
            for f in self._filters:
                f(work)
            return int(np.argmax(work))
        return sample_token(logits, self._rng, self._filters, False, work)

    def _bad_logits(self) -> CorruptArtifactError:
        info, position = self._lm.backend.info, self._dec.length
        return CorruptArtifactError(
            f"The model returned NaN/Inf logits at position {position} "
            f"('{info.file}', {info.precision}).",
            hint="The weights or this precision are broken: try --precision fp32, or re-export.",
        )

    def _text_after(self, piece: str, final: bool) -> str:
        self._full += piece
        stops = self._o.stop
        if not stops:  # nothing is ever held back: everything before was handed out
            self._emitted = len(self._full)
            return piece
        start = max(self._emitted - max(map(len, stops)), 0)
        cut = [i for i in (self._full.find(s, start) for s in stops) if i >= 0]
        if cut:
            self._full = self._full[: min(cut)]
            self.done, self.stop_reason, final = True, "stop", True
        end = len(self._full) if final else len(self._full) - _held_back(self._full, stops)
        out = self._full[self._emitted : max(end, self._emitted)]
        self._emitted += len(out)
        return out

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while not self.done:
            piece = self.step()
            if piece:
                return piece
        raise StopIteration


# ---------------------------------------------------------------- the generator
class LmGenerator:
    """Generation from a transformer bundle; made by ``TextGenerator.open`` (``model.arch``)."""

    def __init__(self, manifest: Manifest, backend: Backend, tokenizer: Any) -> None:
        cfg = manifest.model.transformer
        assert cfg is not None, "LmGenerator needs a transformer bundle"
        self.manifest, self.backend, self.tokenizer, self.config = manifest, backend, tokenizer, cfg
        self.decoder = KvDecoder(backend, cfg)
        self._bytes = byte_table(tokenizer)  # None: decode by text offsets
        # ByteDetokenizer's token -> text list, filled as tokens come up
        self._texts: list[str | bool | None] = [False] * len(self._bytes or ())
        self._work = np.empty(cfg.vocab_size, np.float64)  # sampling scratch
        self._active: LmGeneration | None = None
        self.closed = False

    @classmethod
    def from_manifest(cls, manifest: Manifest, backend: str, precision: str | None, opts: Any):
        tokenizer = load_tokenizer(manifest)
        if backend == "auto":
            backend = auto_cache_backend()
        b = open_backend(manifest, TRANSFORMER_GRAPH, backend, precision, opts)
        try:
            return cls(manifest, b, tokenizer)
        except BaseException:
            b.close()
            raise

    @property
    def info(self) -> BackendInfo:
        return self.backend.info

    @property
    def max_context(self) -> int:
        return self.config.max_context

    def encode(self, text: str) -> list[int]:
        """Text -> token ids with the bundle's tokenizer (its special tokens added as it says)."""
        return list(self.tokenizer.encode(text).ids)

    def decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)

    def detokenizer(self, context: Sequence[int]) -> Detokenizer | ByteDetokenizer:
        """A fresh streaming decoder that continues after the tokens ``context``."""
        if self._bytes is not None:
            return ByteDetokenizer(self._bytes, self._texts)
        return Detokenizer(self.tokenizer, context)

    def prompt_ids(self, prompt: object) -> list[int]:
        """The prompt's token ids; refused (exit 2) when not text or longer than the context."""
        if not isinstance(prompt, str):
            raise BadInputError(
                f"prompt: received {type(prompt).__name__}; expected a str (may be empty)."
            )
        check_prompt(prompt)
        ids = self.encode(prompt)
        if not ids:  # nothing to condition on: start from BOS (or end-of-text)
            start = self.config.bos_token_id
            if start is None and self.config.eos_token_ids:
                start = self.config.eos_token_ids[0]
            if start is None:
                raise BadInputError(
                    "The prompt is empty and this model has no BOS or EOS token to start from.",
                    hint="Pass a prompt of at least one token.",
                )
            ids = [start]
        if len(ids) >= self.max_context:
            raise BadInputError(
                f"prompt: {len(ids)} tokens; the model's context is {self.max_context} tokens, "
                "and at least one must stay free for the output.",
                hint=f"Pass at most the last {self.max_context - 1} tokens' worth of text.",
            )
        return ids

    def start(self, prompt: str = "", max_new_tokens: int = 200, **sampling: Any) -> LmGeneration:
        """A new generation (the cache is reset); ``sampling``: ``SamplingOptions`` fields."""
        known = set(SamplingOptions.__dataclass_fields__) - {"max_new_tokens"}
        unknown = sorted(set(sampling) - known)
        if unknown:
            raise BadInputError(
                f"Unknown generation option(s) {unknown}; expected {sorted(known)}."
            )
        opts = validate_sampling(SamplingOptions(max_new_tokens=max_new_tokens, **sampling))
        ids = self.prompt_ids(prompt)
        if len(ids) + opts.max_new_tokens > self.max_context:
            raise BadInputError(
                f"prompt of {len(ids)} tokens + max_new_tokens {opts.max_new_tokens} = "
                f"{len(ids) + opts.max_new_tokens} positions; the model's context is "
                f"{self.max_context}.",
                hint=f"Pass max_new_tokens {self.max_context - len(ids)} or less, or a shorter prompt.",
            )
        if self.closed:
            raise BadInputError("This TextGenerator is closed; open the bundle again.")
        self.decoder.reserve(len(ids) + max(opts.max_new_tokens - 1, 0) or 1)
        self._active = LmGeneration(self, ids, opts)
        return self._active

    def generate(
        self,
        prompt: str = "",
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        **sampling: Any,
    ) -> LmGeneration:
        """Text pieces as they are produced (iterate the returned ``LmGeneration``); after the
        loop its ``tokens``, ``text``, ``ttft_s``, ``tokens_per_s``, ``stop_reason`` tell the
        rest. ``sampling``: ``repetition_penalty``, ``stop`` (strings), ``eos`` (bool).

        Refused before any run (exit 2): a prompt of ``max_context`` tokens or more, a prompt
        plus ``max_new_tokens`` past the context, invalid sampling settings.
        """
        return self.start(
            prompt,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            **sampling,
        )

    def __repr__(self) -> str:
        b, c = self.backend.info, self.config
        return (
            f"TextGenerator(bundle={str(self.manifest.root)!r}, arch='transformer', "
            f"family={c.family!r}, backend={b.name!r}, precision={b.precision!r}, "
            f"file={b.file!r}, vocab={c.vocab_size}, context={c.max_context}"
            f"{', closed' if self.closed else ''})"
        )

    def close(self) -> None:
        self.closed = True
        self.backend.close()

    def __enter__(self) -> LmGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cache_backends() -> tuple[str, ...]:
    """The backends that run a KV cache: those with caller-bound buffers (``run_bound``)."""
    return tuple(s.name for s in registry.SPECS if s.binds_buffers)


def auto_cache_backend() -> str:
    """``auto`` for a transformer bundle: the first available backend in the registry's order
    that runs the KV cache (``ort-cuda`` where this onnxruntime offers CUDA, else ``ort-cpu``;
    engines and OpenVINO do not yet), else the reference CPU backend (which then says what
    to install)."""
    usable = [s.name for s in registry.available() if s.binds_buffers]
    return usable[0] if usable else registry.reference().name


def load_tokenizer(manifest: Manifest) -> Any:
    """The bundle's ``tokenizers.Tokenizer``, its file's sha256 checked before it is parsed."""
    cfg = manifest.model.transformer
    assert cfg is not None
    found = [a for a in manifest.find(format="tokenizer") if a.file == cfg.tokenizer]
    if not found:
        raise CorruptArtifactError(
            f"Bundle '{printable(str(manifest.root))}': model.tokenizer names "
            f"'{printable(cfg.tokenizer)}', which no tokenizer artifact lists.",
            hint="Re-export the bundle with `genedge export`.",
        )
    path = manifest.path_of(found[0])
    tokenizers = require("tokenizers", "cpu", purpose="tokenizing text for a transformer bundle")
    try:
        return tokenizers.Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust library raises its own Exception type
        raise CorruptArtifactError(
            f"Bundle '{printable(str(manifest.root))}': '{printable(cfg.tokenizer)}' is not a tokenizer the "
            f"tokenizers library reads ({printable(str(e), 200)}).",
            hint="Re-export the bundle with `genedge export`.",
        ) from None

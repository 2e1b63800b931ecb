"""``TextGenerator``: streaming characters from an ``ar`` bundle's one-step graph.

    with TextGenerator.open("bundle") as tg:
        for ch in tg.generate("Once", max_new_tokens=100, seed=0):
            print(ch, end="", flush=True)
        g = tg.start("Once", seed=0)          # or own the loop
        while not g.done:
            ch = g.step()

The step graph maps ``token`` int64 (1,) and state ``h`` (+ ``c``) float32 (L, 1, Hd) to
``logits`` float32 (1, V) and ``h_out`` (+ ``c_out``). The state lives in two
preallocated sets of buffers that swap roles every step (ping-pong): the graph reads
one set and writes the other, so a step allocates nothing but the token id. The
unknown-character token (id 0, ``UNKNOWN_TOKEN``) is a valid input (an empty prompt
starts from it) but is never sampled: ``BanToken`` masks its logit before every draw.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from genedge.errors import BadInputError, CorruptArtifactError
from genedge.latents import check_seed, is_int
from genedge.limits import MAX_NEW_TOKENS, check_prompt
from genedge.manifest import MAIN_GRAPH, Manifest

from .backend import Backend, BackendInfo
from .sampling import make_filters, sample_token
from .select import backend_options, open_backend, read_bundle
from .text_lm import DECODER_SPIN_US, LmGenerator

UNKNOWN_TOKEN = 0  # training puts the unknown-character token first in the vocabulary


@dataclass(frozen=True)
class BanToken:
    """Logit filter: ``token`` gets -inf, so it is never drawn (float64 (V,), in place)."""

    token: int

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        logits[self.token] = -np.inf
        return logits


UNKNOWN_BAN = BanToken(UNKNOWN_TOKEN)


class Generation:
    """One generation in progress; the caller drives it with ``step()`` until ``done``."""

    def __init__(
        self,
        tg: TextGenerator,
        prompt_ids: list[int],
        max_new_tokens: int,
        filters: list,
        greedy: bool,
        seed: int,
    ) -> None:
        self._tg, self._prompt, self._max = tg, prompt_ids, max_new_tokens
        self._filters, self._greedy = filters, greedy
        self._rng = np.random.default_rng(seed)
        self._t_start = time.perf_counter()
        self._t_first = self._t_last = 0.0
        self.tokens: list[int] = []
        self.ttft_s: float | None = None  # start() to the first new character
        self.done = max_new_tokens <= 0

    @property
    def text(self) -> str:
        """The characters generated so far (without the prompt)."""
        return self._tg.decode(self.tokens)

    @property
    def tokens_per_s(self) -> float:
        """Decode speed after the first token: (n - 1) / (t_last - t_first); 0 before two tokens."""
        n = len(self.tokens)
        return (
            (n - 1) / (self._t_last - self._t_first)
            if n > 1 and self._t_last > self._t_first
            else 0.0
        )

    def step(self) -> str:
        """Generate and return the next character."""
        if self.done:
            raise BadInputError("This generation is done; call start() again.")
        if self._tg._active is not self:
            raise BadInputError(
                "Another generation was started on this TextGenerator since this one; "
                "they share its state buffers, so this one cannot continue.",
                hint="Open one TextGenerator per concurrent generation.",
            )
        if not self.tokens:  # prefill: run the prompt through the step graph
            logits = self._tg._reset_and_feed(self._prompt)
        else:
            logits = self._tg._step(self.tokens[-1])
        token = self._draw(logits[0])
        self.tokens.append(token)
        self._t_last = time.perf_counter()
        if self.ttft_s is None:
            self._t_first = self._t_last
            self.ttft_s = self._t_last - self._t_start
        self.done = len(self.tokens) >= self._max
        return self._tg.vocab[token]

    def _draw(self, logits: np.ndarray) -> int:
        """A token id from logits (V,); the filters (first ``BanToken``) run on a float64 copy."""
        if not self._greedy:
            return sample_token(logits, self._rng, self._filters, False, self._tg._work)
        work = self._tg._work
        np.copyto(work, logits)
        return int(np.argmax(UNKNOWN_BAN(work)))

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.done:
            raise StopIteration
        return self.step()


def check_request(prompt: object, max_new_tokens: object) -> int:
    """Refuse (exit 2) a prompt or token count past the limits, before any step runs.

    ``prompt``: a str of at most ``MAX_PROMPT_CHARS`` characters (each one is a graph step);
    ``max_new_tokens``: an integer in ``[0, MAX_NEW_TOKENS]``. Returns the token count.
    """
    if not isinstance(prompt, str):
        raise BadInputError(
            f"prompt: received {type(prompt).__name__}; expected a str (may be empty)."
        )
    check_prompt(prompt)
    if not is_int(max_new_tokens) or max_new_tokens < 0:
        raise BadInputError(f"max_new_tokens {max_new_tokens!r}: expected an integer >= 0.")
    if max_new_tokens > MAX_NEW_TOKENS:
        raise BadInputError(
            f"max_new_tokens {max_new_tokens}: the limit is {MAX_NEW_TOKENS:,} characters per "
            "generation.",
            hint="Generate in parts: pass the end of the last part as the next prompt.",
        )
    return int(max_new_tokens)


class TextGenerator:
    """Character-level generation from an ``ar`` bundle. Create with ``TextGenerator.open``."""

    def __init__(self, manifest: Manifest, backend: Backend) -> None:
        self.manifest, self.backend = manifest, backend
        model = manifest.model  # an ar config: the manifest parser checked vocab and state names
        self.vocab: str = model.vocab or ""
        self._index = {ch: i for i, ch in enumerate(self.vocab)}
        self.state_names: list[str] = list(model.state_names)
        self._token = np.zeros(1, np.int64)
        self._state = self._alloc_state()  # [read set, write set]
        V = len(self.vocab)
        spec = backend.output_spec("logits")
        if spec is None or (isinstance(spec.shape[-1], int) and spec.shape[-1] != V):
            got = "no 'logits' output" if spec is None else f"logits of {spec.shape[-1]} classes"
            raise CorruptArtifactError(
                f"Bundle '{manifest.root}': the manifest's vocabulary has {V} characters but the step graph "
                f"'{backend.info.file}' has {got}.",
                hint="Re-export the bundle with `genedge export`.",
            )
        self._logits = np.empty((1, V), np.float32)  # (B, V)
        self._work = np.empty(V, np.float64)  # sampling scratch: a step allocates nothing
        self._active: Generation | None = None  # the generation that owns the state buffers
        self.closed = False

    def _alloc_state(self) -> list[dict[str, np.ndarray]]:
        shapes = {}
        for name in self.state_names:
            spec = self.backend.input_spec(name)
            if spec is None:
                raise BadInputError(f"The step graph has no state input '{name}'.")
            shapes[name] = tuple(
                1 if not isinstance(d, int) else d for d in spec.shape
            )  # (L, 1, Hd)
        return [{n: np.zeros(s, np.float32) for n, s in shapes.items()} for _ in range(2)]

    @classmethod
    def open(
        cls,
        bundle: str | os.PathLike,
        backend: str = "auto",
        precision: str | None = None,
        threads: int | None = None,
        check_inputs: bool = True,
        **options: Any,
    ) -> TextGenerator:
        """Open an ``ar`` bundle on ``backend`` (names as for ``Sampler.open``): its step graph,
        or for a transformer (``model.arch``) an ``LmGenerator`` over its KV-cache decoder."""
        opts = backend_options(threads=threads, check_inputs=check_inputs, **options)  # no I/O yet
        manifest = read_bundle(bundle)
        if manifest.kind != "ar":
            raise BadInputError(
                f"Bundle '{bundle}' is a '{manifest.kind}' bundle; TextGenerator needs ar.",
                hint="Use genedge.runtime.Sampler for image bundles.",
            )
        if manifest.model.transformer is not None:  # KV-cache decoder (runtime/text_lm.py)
            # one run per token with a short Python gap (sampling) between runs: workers
            # that slept in each gap would be woken once per token
            if not {"spin", "spin_between_runs", "spin_us"} & options.keys():
                opts = dataclasses.replace(opts, spin_us=DECODER_SPIN_US)
            return LmGenerator.from_manifest(manifest, backend, precision, opts)  # type: ignore[return-value]
        token_range = {"token": (0, max(manifest.model.vocab_size - 1, 0))}
        b = open_backend(manifest, MAIN_GRAPH["ar"], backend, precision, opts, token_range)
        return cls(manifest, b)

    @property
    def info(self) -> BackendInfo:
        return self.backend.info

    def encode(self, text: str) -> list[int]:
        """Characters -> token ids (unknown characters -> 0)."""
        return [self._index.get(ch, 0) for ch in text]

    def decode(self, tokens: list[int]) -> str:
        return "".join(self.vocab[t] for t in tokens)

    def start(
        self,
        prompt: str = "",
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> Generation:
        """A new generation (state reset); drive it with ``step()`` or iterate it."""
        max_new_tokens = check_request(prompt, max_new_tokens)
        filters = [UNKNOWN_BAN, *make_filters(temperature, top_k, top_p)]
        seed = check_seed(seed)
        ids = self.encode(prompt) or [0]  # an empty prompt starts from the unknown-char token
        self._active = Generation(self, ids, max_new_tokens, filters, temperature == 0, seed)
        return self._active

    def generate(
        self,
        prompt: str = "",
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> Generation:
        """Up to ``max_new_tokens`` characters, yielded as they are produced (seeded, reproducible).

        The returned ``Generation`` is the iterator itself, so its ``ttft_s``, ``tokens_per_s``
        and ``text`` can be read during and after the loop. One generation runs at a time per
        ``TextGenerator`` (they share the state buffers): it starts when ``generate`` is called,
        and calling ``generate``/``start`` again ends it (its next step raises ``BadInputError``).
        Limits (``BadInputError`` before any step): a prompt of at most ``MAX_PROMPT_CHARS``
        (65 536) characters, ``max_new_tokens`` at most ``MAX_NEW_TOKENS`` (100 000).
        """
        return self.start(prompt, max_new_tokens, temperature, top_k, top_p, seed)

    def _reset_and_feed(self, ids: list[int]) -> np.ndarray:
        for buf in self._state[0].values():
            buf.fill(0.0)
        for t in ids:
            logits = self._step(t)
        return logits

    def _step(self, token: int) -> np.ndarray:
        """One graph step: logits float32 (1, V); the state buffers swap roles."""
        self._token[0] = token
        read, write = self._state
        feed = {"token": self._token, **read}
        out = {"logits": self._logits, **{f"{n}_out": write[n] for n in self.state_names}}
        # token ids come from the vocab, the state is ours: no checks needed
        self.backend.run_unchecked(feed, out)
        self._state.reverse()
        return self._logits

    def __repr__(self) -> str:
        b = self.backend.info
        return (
            f"TextGenerator(bundle={str(self.manifest.root)!r}, backend={b.name!r}, "
            f"provider={b.provider!r}, precision={b.precision!r}, file={b.file!r}, "
            f"vocab={len(self.vocab)}{', closed' if self.closed else ''})"
        )

    def close(self) -> None:
        self.closed = True
        self.backend.close()

    def __enter__(self) -> TextGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

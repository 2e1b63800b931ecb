"""Calibration and verification inputs, drawn from the generator's own prior (DESIGN.md s.5).

Seeded latents follow docs/bundle.md exactly (the runtime draws the same ones):
``z = default_rng(seed).standard_normal((n, Z), float32)``; with truncation ``t < 1``
values with |z| > 2 are resampled from the same generator, then scaled by ``t``;
labels ``arange(n) % K``. Feeds are lists of ``{input name: numpy array}`` batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from genedge.errors import BadInputError
from genedge.latents import default_labels, seeded_latents
from genedge.lazy import lazy_import

torch = lazy_import("torch")
quantization = lazy_import("onnxruntime.quantization")

Feed = dict[str, np.ndarray]


@dataclass(frozen=True)
class CalibrationSpec:
    """Where calibration data comes from; ``record()`` is what the manifest stores."""

    method: str = "minmax"
    samples: int = 512
    seed: int = 0
    truncation: float = 1.0
    data: str | None = None  # None: the model's prior

    @property
    def source(self) -> str:
        return f"data:{self.data}" if self.data else "prior"

    def record(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "source": self.source,
            "samples": self.samples,
            "seed": self.seed,
            "truncation": self.truncation,
        }


def image_feed(cfg: Any, n: int, seed: int, truncation: float = 1.0) -> Feed:
    """One feed for a generator/decoder graph: ``z`` (n, Z) float32 [+ ``label`` (n,) int64]."""
    feed = {"z": seeded_latents(n, cfg.latent_dim, seed, truncation)}
    if cfg.num_classes:
        feed["label"] = default_labels(n, cfg.num_classes)
    return feed


def split_feed(feed: Feed, batch: int) -> list[Feed]:
    """Cut one big feed into batches along axis 0 (axis 1 for ``(L, B, H)`` state tensors)."""
    n = len(next(iter(feed.values())))
    return [{k: v[i : i + batch] for k, v in feed.items()} for i in range(0, n, batch)]


def image_calibration_feeds(
    model: Any, cfg: Any, kind: str, spec: CalibrationSpec, batch: int = 64
) -> list[Feed]:
    """Calibration batches for a generator/decoder graph.

    Prior (default): seeded latents with uniform labels. With ``spec.data``: labels follow
    the data, and for a VAE the latents are posterior samples ``mu + sigma * eps`` of the
    data's images encoded by the model's own encoder.
    """
    if not spec.data:
        return split_feed(image_feed(cfg, spec.samples, spec.seed, spec.truncation), batch)
    images, labels = _load_real_images(spec.data, spec.samples, spec.seed, cfg.image_size)
    feed = image_feed(cfg, len(images), spec.seed, spec.truncation)
    if cfg.num_classes and labels is not None:
        feed["label"] = np.asarray(labels, dtype=np.int64) % cfg.num_classes
    if kind == "vae":
        feed["z"] = _posterior_samples(model, images, spec.seed)
    return split_feed(feed, batch)


def _load_real_images(
    src: str, n: int, seed: int, image_size: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """(n, C, H, W) float32 in [-1, 1] and labels (n,) or None, via genedge.train.data."""
    try:
        from genedge.train.data import load_image_data
    except ImportError as e:
        raise BadInputError("--calib-data needs genedge.train.data, which is not available.") from e
    data = load_image_data(src, image_size=image_size)
    images = np.asarray(data.images, dtype=np.float32)
    labels = getattr(data, "labels", None)
    idx = np.random.default_rng(seed).permutation(len(images))[:n]
    return images[idx], (None if labels is None else np.asarray(labels)[idx])


def _posterior_samples(vae: Any, images: np.ndarray, seed: int) -> np.ndarray:
    with torch.no_grad():
        mu, logvar = vae.encode(torch.from_numpy(images))
        eps = torch.from_numpy(
            np.random.default_rng(seed).standard_normal(mu.shape, dtype=np.float32)
        )
        return (mu + eps * (0.5 * logvar).exp()).numpy().astype(np.float32)


def encoder_feed(images_uint8: np.ndarray) -> Feed:
    """Feed for the VAE ``encoder`` graph: ``image`` (n, H, W, C) uint8."""
    return {"image": np.ascontiguousarray(images_uint8, dtype=np.uint8)}


def text_calibration_feeds(
    model: Any,
    cfg: Any,
    spec: CalibrationSpec,
    steps: int = 32,
    batch: int = 16,
    *,
    every_step: bool = False,
) -> list[Feed]:
    """Step-graph feeds (token, state) visited while the model reads text prefixes.

    Prefixes are sampled from the model itself (its prior) or, with ``spec.data``, taken from
    that text file. Every step's (token, state) pair is one calibration batch; about
    ``spec.samples`` (token, state) rows in total, or all ``steps`` when ``every_step``
    (consecutive steps: what bits-per-character needs).
    """

    with single_thread_torch():
        tokens = _prefix_tokens(model, cfg, spec, steps, batch)  # (batch, steps) int64
        return _step_feeds(model, cfg, tokens, every_step, spec.samples)


def _step_feeds(model: Any, cfg: Any, tokens: Any, every_step: bool, samples: int) -> list[Feed]:
    feeds: list[Feed] = []
    state = model.init_state(tokens.shape[0])
    with torch.no_grad():
        for t in range(tokens.shape[1]):
            tok = tokens[:, t]
            feeds.append(
                {
                    "token": tok.numpy(),
                    **{n: s.numpy().copy() for n, s in zip(cfg.state_names, state, strict=True)},
                }
            )
            _, *state = model.step(tok, *state)
    return feeds if every_step else feeds[: max(1, samples // tokens.shape[0])]


@contextlib.contextmanager
def single_thread_torch() -> Iterator[None]:
    """Run torch on one thread inside the block: step-by-step loops over tiny RNNs are ~50x
    slower with OpenMP threads spinning on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _prefix_tokens(model: Any, cfg: Any, spec: CalibrationSpec, steps: int, batch: int):
    gen = torch.Generator().manual_seed(spec.seed)
    steps = max(steps, spec.samples // batch)
    if spec.data:
        text = _read_text(spec.data)
        ids = torch.tensor(model.encode_text(text), dtype=torch.int64)
        if len(ids) <= steps:
            raise BadInputError(
                f"--calib-data '{spec.data}' holds {len(ids)} characters; need more than {steps}."
            )
        starts = torch.randint(0, len(ids) - steps, (batch,), generator=gen)
        return torch.stack([ids[s : s + steps] for s in starts.tolist()])
    tok = torch.randint(1, cfg.vocab_size, (batch,), generator=gen)
    state, out = model.init_state(batch), [tok]
    with torch.no_grad():
        for _ in range(steps - 1):
            logits, *state = model.step(tok, *state)
            tok = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[:, 0]
            out.append(tok)
    return torch.stack(out, dim=1)  # (batch, steps)


def _read_text(src: str) -> str:
    from pathlib import Path

    path = Path(src)
    if not path.is_file():
        raise BadInputError(
            f"--calib-data '{src}' is not a text file; `ar` calibration needs a text file."
        )
    return path.read_text(encoding="utf-8", errors="replace")


def feeds_reader(feeds: list[Feed]):
    """An onnxruntime ``CalibrationDataReader`` over ``feeds`` (class made here: lazy import)."""

    class _Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> Feed | None:
            return next(self._it, None)

        def rewind(self) -> None:
            self._it = iter(feeds)

    return _Reader()

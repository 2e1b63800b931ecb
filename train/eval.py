"""Quality metrics (DESIGN.md section 8): FD, k-NN precision/recall, conditional accuracy, bpc.

Image metrics work on numpy arrays, float32 (N, C, H, W) in [-1, 1], so export can score
ONNX Runtime or TensorRT outputs as well as torch ones (``float_images_from_uint8``
converts the bundle's uint8 NHWC output). The feature space is chosen from the real data
(``feature_space``; ``genedge.train.features`` and ``genedge.train.judge``):

- labelled data (two or more classes, at least ``judge.MIN_IMAGES`` images): the
  dataset's own judge, a small CNN trained on its labels and cached; its held-out
  accuracy is reported beside the scores (``judge_heldout_accuracy``), and conditional
  accuracy for labelled samples;
- anything else: a fixed-seed random conv net (128-d), rescaled so the real features'
  mean variance is 1; ``conditional_accuracy`` is None and ``feature_note`` says why.

``frechet_distance`` is FID's formula in that feature space, not FID: numbers compare runs
on the same data and image size only. The metrics that need only numpy (PSNR, SSIM, a step
graph's bits per character) live in ``genedge.metrics``, which lists where each metric is.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genedge.errors import BadInputError
from genedge.latents import seeded_latents
from genedge.limits import MAX_EVAL_SAMPLES, check_count

from .checkpoint import load_checkpoint, read_checkpoint_info
from .data import ImageData, encode, load_image_data, load_text_data, split_text
from .features import RandomConvFeatures, classify, extract_features, unit_variance_scale
from .judge import judge_for, judge_unavailable_reason
from .tokenizer import encode as encode_text
from .tokenizer import tokenizer_from_json

# ----------------------------------------------------------------------------- images


def image_metrics(
    fake: np.ndarray, fake_labels: np.ndarray | None, real: ImageData, *, k: int = 3
) -> dict[str, Any]:
    """Score generated images against real data.

    fake: float32 (N, C, H, W) in [-1, 1] with real's C, H, W; fake_labels: int64 (N,) the
    labels the samples were asked for, or None. Real images are subsampled (fixed seed) to
    N so that precision and recall compare equal-sized sets. Returns ``num_samples``,
    ``feature_space`` ("judge" or "random-conv"), then ``judge_heldout_accuracy`` (with a
    judge) or ``feature_note`` (without: why not), ``frechet_distance``,
    ``precision``, ``recall`` (Kynkaanniemi et al. 2019, k-NN manifolds) and
    ``conditional_accuracy`` (None when it does not apply).
    """
    fake = _check_fake(fake, real)
    real_x = _subsample(real.images, len(fake))
    space = feature_space(real)
    f_real, f_fake = extract_features(space.net, real_x), extract_features(space.net, fake)
    if space.judge is None:
        scale = unit_variance_scale(f_real)
        f_real, f_fake = f_real * scale, f_fake * scale
    precision, recall = knn_precision_recall(f_real, f_fake, k=k)
    accuracy = None
    if space.judge is not None and fake_labels is not None:
        accuracy = float(np.mean(classify(space.judge, fake) == np.asarray(fake_labels)))
    about_space = (
        {"judge_heldout_accuracy": space.heldout_accuracy}
        if space.judge is not None
        else {"feature_note": space.note}
    )
    return {
        "num_samples": len(fake),
        "feature_space": space.name,
        **about_space,
        "frechet_distance": frechet_distance(f_real, f_fake),
        "precision": precision,
        "recall": recall,
        "conditional_accuracy": accuracy,
    }


def _check_fake(fake: np.ndarray, real: ImageData) -> np.ndarray:
    fake = np.asarray(fake)
    want = real.images.shape[1:]
    if fake.ndim != 4 or fake.shape[1:] != want:
        raise BadInputError(
            f"Generated images have shape {fake.shape}; expected (N, {want[0]}, {want[1]}, {want[2]}) "
            f"to match data '{real.name}'.",
            hint="Evaluate against the data the model was trained on (same --image-size and channels).",
        )
    if len(fake) < 4:
        raise BadInputError(f"Got {len(fake)} generated images; metrics need at least 4.")
    if not np.all(np.isfinite(fake)):
        raise BadInputError(
            "Generated images contain NaN or Inf.", hint="The model or its export is broken."
        )
    return fake.astype(np.float32, copy=False)


def _subsample(images: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    if len(images) <= n:
        return images
    return images[np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False))]


@dataclass(frozen=True)
class FeatureSpace:
    """What image metrics measure in: ``net.features`` gives (N, D); ``judge`` classifies."""

    name: str  # "judge" or "random-conv"
    net: nn.Module
    judge: nn.Module | None = None
    heldout_accuracy: float | None = None
    note: str | None = None  # why there is no judge


def feature_space(real: ImageData) -> FeatureSpace:
    """The judge of ``real`` when it has labels to train one (trained on first use, then
    cached), else fixed random conv features."""
    reason = judge_unavailable_reason(real)
    if reason is not None:
        return FeatureSpace("random-conv", RandomConvFeatures(real.channels), note=reason)
    judge = judge_for(real)
    return FeatureSpace("judge", judge.model, judge.model, judge.heldout_accuracy)


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussian fits of (N, D) and (M, D) features.

    ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 sqrt(S_a S_b)); as in the reference FID code, a
    singular product gets ``eps`` added to the diagonals and a tiny imaginary part from
    round-off is dropped.
    """
    from scipy import linalg

    mu_a, mu_b = feat_a.mean(0), feat_b.mean(0)
    s_a, s_b = np.cov(feat_a, rowvar=False), np.cov(feat_b, rowvar=False)  # (D, D)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s_a @ s_b)
    if caught or not np.all(np.isfinite(covmean)):  # singular (e.g. dead ReLU features)
        offset = np.eye(len(s_a)) * eps
        covmean = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ArithmeticError(f"imaginary component {np.max(np.abs(covmean.imag))} in sqrtm")
        covmean = covmean.real
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean), 0.0))


def knn_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of (M, D) fake vs (N, D) real.

    Each set's manifold is the union of balls around its points reaching the k-th nearest
    neighbour; precision = share of fake points inside the real manifold, recall = share
    of real points inside the fake manifold.
    """
    if min(len(real), len(fake)) <= k:
        raise BadInputError(
            f"k-NN precision/recall with k={k} needs more than {k} samples per set."
        )
    r, f = torch.from_numpy(real), torch.from_numpy(fake)
    radius_r, radius_f = _kth_radius(r, k), _kth_radius(f, k)
    d = torch.cdist(f, r)  # (M, N)
    precision = (d <= radius_r[None, :]).any(dim=1).double().mean().item()
    recall = (d <= radius_f[:, None]).any(dim=0).double().mean().item()
    return precision, recall


def _kth_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(x, x)  # (N, N), zero diagonal
    return d.kthvalue(k + 1, dim=1).values  # k+1: the point itself is its own 1st neighbour


def float_images_from_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) (the bundle's image output) -> float32 (N, C, H, W) in [-1, 1]."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise BadInputError(
            f"Expected uint8 (N, H, W, C) images; received {images.dtype} {images.shape}."
        )
    return images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0  # (N, C, H, W)


# ----------------------------------------------------------------------------- generators


@torch.no_grad()
def generate_images(
    G: nn.Module, cfg: Any, n: int, seed: int, labels: np.ndarray | None = None, batch: int = 256
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sample ``n`` images: float32 (N, C, H, W) in [-1, 1], and int64 (N,) labels or None.

    Latents follow docs/bundle.md; labels default to ``arange(n) % num_classes`` for
    conditional models. ``G`` runs in eval mode (its previous mode is restored).
    """
    z = seeded_latents(n, cfg.latent_dim, seed)
    if cfg.num_classes:
        labels = np.arange(n) % cfg.num_classes if labels is None else np.asarray(labels)
        labels = labels.astype(np.int64)
    else:
        labels = None
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    try:
        out = [
            _generate_batch(
                G, z[i : i + batch], None if labels is None else labels[i : i + batch], device
            )
            for i in range(0, n, batch)
        ]
    finally:
        G.train(was_training)
    return np.concatenate(out), labels


def _generate_batch(G: nn.Module, z: np.ndarray, labels: np.ndarray | None, device) -> np.ndarray:
    y = torch.from_numpy(labels).to(device) if labels is not None else None
    return G(torch.from_numpy(z).to(device), y).float().cpu().numpy()


def evaluate_generator(
    G: nn.Module, cfg: Any, real: ImageData, n: int = 1000, seed: int = 1234
) -> dict[str, Any]:
    """Generate ``n`` seeded samples and return ``image_metrics`` against ``real``."""
    fake, labels = generate_images(G, cfg, n, seed)
    return image_metrics(fake, labels, real)


# ----------------------------------------------------------------------------- text


@torch.no_grad()
def text_metrics(
    model: nn.Module,
    heldout_text: str,
    *,
    max_chars: int = 50_000,
    train_text: str | None = None,
    chunk: int = 256,
    streams: int = 16,
) -> dict[str, Any]:
    """Bits per character of a ``CharRNN`` on held-out text, and a unigram baseline.

    The first ``max_chars`` characters are encoded with the model's vocabulary (unknown
    characters -> id 0) and scored with teacher forcing in chunks of ``chunk`` steps,
    carrying the recurrent state. For speed the text is cut into ``streams`` contiguous
    pieces run as one batch; each piece's first character is context only, and fewer than
    ``streams`` trailing characters are dropped (``num_chars`` says how many were scored).
    ``unigram_bpc`` scores the same targets with add-one smoothed character frequencies
    over the model's vocabulary, estimated from ``train_text`` when given
    (``unigram_source: "train"``), else from the held-out text itself ("heldout": an
    optimistic baseline, so beating it means more).
    """
    vocab = model.cfg.vocab
    tokens = encode(heldout_text[:max_chars], vocab)  # (T,)
    if len(tokens) < 2:
        raise BadInputError(f"Held-out text has {len(tokens)} characters; bpc needs at least 2.")
    pieces = _streams(tokens, streams)  # (S, L + 1)
    nats = _sequence_nll(model, torch.from_numpy(pieces), chunk)
    targets = pieces[:, 1:].ravel()
    source = "train" if train_text is not None else "heldout"
    counts_from = encode(train_text, vocab) if train_text is not None else targets
    counts = np.bincount(counts_from, minlength=len(vocab)).astype(np.float64) + 1.0  # add-one
    log2p = np.log2(counts / counts.sum())
    return {
        "bpc": nats / len(targets) / math.log(2),
        "unigram_bpc": float(-log2p[targets].mean()),
        "unigram_source": source,
        "num_chars": len(targets),
        "vocab_size": len(vocab),
    }


def _streams(tokens: np.ndarray, streams: int) -> np.ndarray:
    """(T,) -> (S, L + 1) contiguous pieces overlapping by one token; S*L targets in all."""
    S = max(1, min(streams, (len(tokens) - 1) // 64))
    L = (len(tokens) - 1) // S
    starts = np.arange(S) * L
    return tokens[starts[:, None] + np.arange(L + 1)[None, :]]  # (S, L + 1)


def _sequence_nll(model: nn.Module, tokens: torch.Tensor, chunk: int) -> float:
    """Summed cross-entropy (nats) of tokens[:, 1:] given the prefix, state carried across chunks."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    state, total, T = None, 0.0, tokens.shape[1]
    try:
        for i in range(0, T - 1, chunk):
            j = min(i + chunk, T - 1)
            x = tokens[:, i:j].to(device)  # (S, t)
            y = tokens[:, i + 1 : j + 1].to(device)  # (S, t)
            logits, state = model(x, state)  # (S, t, V)
            total += F.cross_entropy(
                logits.flatten(0, 1).float(), y.flatten(), reduction="sum"
            ).item()
    finally:
        model.train(was_training)
    return total


def unigram_bpc(train_text: str, heldout_text: str) -> float:
    """Bits per character of ``heldout_text`` under add-one smoothed character frequencies of
    ``train_text`` (over the characters of both): the baseline any tokenizer is compared with."""
    counts = Counter(train_text)
    alphabet = sorted(set(counts) | set(heldout_text))
    freq = np.array([counts.get(ch, 0) for ch in alphabet], dtype=np.float64) + 1.0
    log2p = dict(zip(alphabet, np.log2(freq / freq.sum()), strict=True))
    return float(-sum(log2p[ch] for ch in heldout_text) / len(heldout_text))


@torch.no_grad()
def transformer_text_metrics(
    model: nn.Module,
    tokenizer: Any,
    heldout_text: str,
    *,
    max_chars: int = 50_000,
    train_text: str | None = None,
    batch: int = 16,
) -> dict[str, Any]:
    """Bits per character and perplexity of a ``TransformerLM`` on held-out text.

    The first ``max_chars`` characters are tokenized and scored after one EOS token, in
    windows of the model's context that advance by half a context: every token after the
    first window is predicted from at least half a context of text. ``bpc`` is total nats
    / ln 2 / characters (so tokenizers compare), ``perplexity`` is per token.
    ``unigram_bpc`` is ``unigram_bpc`` of the same characters, from ``train_text`` when
    given (``unigram_source: "train"``) else from the held-out text itself.
    """
    text = heldout_text[:max_chars]
    ids = [model.cfg.eos_token_id, *encode_text(tokenizer, text)]
    if len(ids) < 2:
        raise BadInputError("Held-out text is empty; bpc needs at least one character.")
    windows, first_scored = _score_windows(len(ids), model.cfg.context)
    nats = _windows_nll(model, torch.tensor(ids), windows, first_scored, batch)
    n_tokens = len(ids) - 1
    return {
        "bpc": nats / math.log(2) / len(text),
        "perplexity": math.exp(nats / n_tokens),
        "unigram_bpc": unigram_bpc(train_text if train_text is not None else text, text),
        "unigram_source": "train" if train_text is not None else "heldout",
        "num_chars": len(text),
        "num_tokens": n_tokens,
        "vocab_size": model.cfg.vocab_size,
        "tokenizer": model.cfg.tokenizer,
    }


def _score_windows(n: int, context: int) -> tuple[list[int], list[int]]:
    """Starts of windows of ``context + 1`` ids over ``n`` ids, and per window the offset of
    its first target that no earlier window scored; together they score ids 1..n-1 once."""
    stride = max(1, context // 2)
    starts, first = [0], [0]
    while starts[-1] + context + 1 < n:
        start = starts[-1] + stride
        starts.append(start)
        first.append(context - stride)  # targets before it were scored by the window before
    return starts, first


def _windows_nll(
    model: nn.Module, ids: torch.Tensor, starts: list[int], first: list[int], batch: int
) -> float:
    """Summed cross-entropy (nats) of the targets each window owns; windows run in batches,
    a short last window padded (its padding is not scored)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, T = 0.0, model.cfg.context + 1
    padded = torch.cat((ids, ids.new_zeros(T)))  # (n + T,)
    try:
        for b in range(0, len(starts), batch):
            s = torch.tensor(starts[b : b + batch])  # (N,)
            x = padded[s[:, None] + torch.arange(T)[None, :]].to(device)  # (N, T)
            logits, _ = model(x[:, :-1])  # (N, T-1, V)
            nll = F.cross_entropy(logits.transpose(1, 2).float(), x[:, 1:], reduction="none")
            pos = torch.arange(T - 1)[None, :]  # (1, T-1): target j is ids[start + 1 + j]
            lo = torch.tensor(first[b : b + batch])[:, None]
            keep = (pos >= lo) & (s[:, None] + 1 + pos < len(ids))  # (N, T-1)
            total += float(nll[keep.to(device)].sum())
    finally:
        model.train(was_training)
    return total


# ----------------------------------------------------------------------------- checkpoints


def evaluate_checkpoint(
    path: str | os.PathLike, *, data: str | None = None, n: int = 1000, seed: int = 1234
) -> dict[str, Any]:
    """Metrics of a generator checkpoint, plus ``kind``, ``step`` and ``data``.

    The data source is ``data`` when given, else the ``"data"`` key the training loop
    stores in the checkpoint metadata. Images are compared with the whole data set
    (subsampled to ``n``); ``ar`` models are scored on the held-out tail of the text
    (``split_text``), with the unigram baseline estimated on the training part.
    """
    check_count("eval -n", n, MAX_EVAL_SAMPLES, "evaluation keeps every sample in memory")
    info = read_checkpoint_info(path)
    src = data or info.meta.get("data")
    if not src:
        raise BadInputError(
            f"Checkpoint '{path}' does not record its training data.",
            hint="Pass the data it was trained on, e.g. `genedge eval CKPT --data digits`.",
        )
    model, cfg = load_checkpoint(path)
    if info.kind == "ar" and info.meta.get("arch") == "transformer":
        train_text, heldout = split_text(load_text_data(src).text)
        tokenizer = tokenizer_from_json(info.meta.get("tokenizer", ""))
        metrics = transformer_text_metrics(model, tokenizer, heldout, train_text=train_text)
    elif info.kind == "ar":
        train_text, heldout = split_text(load_text_data(src).text)
        metrics = text_metrics(model, heldout, train_text=train_text)
    else:
        real = load_image_data(src, image_size=cfg.image_size)
        if real.channels != cfg.channels:
            raise BadInputError(
                f"Data '{src}' has {real.channels} channel(s); the checkpoint generates {cfg.channels}.",
                hint="Evaluate against the data the model was trained on.",
            )
        metrics = evaluate_generator(model, cfg, real, n=n, seed=seed)
    return {"kind": info.kind, "step": info.step, "data": src, **metrics}

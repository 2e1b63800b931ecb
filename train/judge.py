"""The judge: a small CNN trained on a labelled dataset's own labels, to score generators.

Conditional accuracy, Frechet distance and k-NN precision/recall of labelled data are
measured with it (DESIGN.md section 8): its logits classify generated images, its 64-d
penultimate layer is the feature space. It is trained once per dataset, on a stratified
split (``JudgeTraining.holdout`` of every class held out), and its accuracy on the held-out
images is reported beside every score, so a user knows how far to trust them.

Cache: ``cache_root()/judges/judge-<key>.safetensors`` (``$XDG_CACHE_HOME/genedge`` by
default), where the key hashes the data (image and label bytes, so the image size too),
the architecture and the training settings. The file holds the weights; its metadata the
config, the held-out accuracy, the data hash and a hash of the weights. A file that fails
to parse, or whose hashes or config do not match, is retrained and rewritten atomically,
never trusted.

Training is deterministic for a given seed (its own RNGs, a fixed thread count) and
bounded by images seen (``max_images_seen``), not by wall time, so the same data gives
the same judge on a slow machine too: seconds for the bundled digits, about a minute of
one core for 60 000 MNIST-size images (two epochs). One thread, because results differ in
the last bits between thread counts, and a net this small gains little from more.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genedge.atomic import atomic_path
from genedge.errors import GenedgeError, printable
from genedge.readback import (
    JUDGE_CACHE_BYTES,
    MissingFileError,
    ReadbackError,
    read_bytes,
    safetensors_metadata,
    warn_ignored,
)

from .data import ImageData
from .features import cache_root, classify, resize_square

JUDGE_FORMAT = "genedge.judge"
JUDGE_VERSION = "1"  # bump when training or architecture change in a way the settings don't show
MAX_INPUT_SIZE = 32  # larger images are shrunk to this before the judge sees them
MIN_IMAGES = 50  # fewer labelled images cannot train a judge worth reporting
MIN_HELDOUT = 20  # fewer held-out images cannot say how far to trust it

Say = Callable[[str], None]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class JudgeConfig:
    """Architecture, sized to the data: one conv stage per halving down to about 4x4."""

    channels: int
    image_size: int
    num_classes: int
    feature_dim: int = 64

    @property
    def input_size(self) -> int:
        return min(self.image_size, MAX_INPUT_SIZE)

    @property
    def widths(self) -> tuple[int, ...]:
        stages = min(3, max(1, int(math.log2(max(self.input_size, 8) / 4))))
        return (16, 32, 64)[:stages]

    @property
    def final_size(self) -> int:
        """Side of the last feature map: 4 to 7 (4 for 16x16 digits, 7 for 28x28 MNIST)."""
        return self.input_size // 2 ** len(self.widths)


@dataclass(frozen=True)
class JudgeTraining:
    holdout: float = 0.15  # of every class
    max_epochs: int = 15
    max_images_seen: int = 120_000  # bounds the time on large data (2 MNIST epochs)
    batch_size: int = 128
    lr: float = 5e-3
    warmup: float = 0.3  # share of the steps spent warming the learning rate up
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 1  # fixed, so the result does not depend on the machine's core count


class Judge(nn.Module):
    """(B, C, H, W) in [-1, 1] -> logits (B, K); ``features`` gives the penultimate layer."""

    def __init__(self, cfg: JudgeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        chans = (cfg.channels, *cfg.widths)
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:], strict=True)
        )
        self.fc = nn.Linear(cfg.widths[-1] * cfg.final_size**2, cfg.feature_dim)
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = resize_square(x, self.cfg.input_size)  # (B, C, S, S)
        for conv in self.convs:
            h = F.max_pool2d(F.relu(conv(h)), 2)  # (B, W_i, S / 2^i, S / 2^i)
        return F.relu(self.fc(h.flatten(1)))  # (B, W * F * F) -> (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class TrainedJudge:
    model: Judge
    heldout_accuracy: float
    train_images: int
    heldout_images: int
    path: Path
    source: str  # "trained", "cache" (read from disk) or "memory" (this process)


# ----------------------------------------------------------------------------- entry point


def judge_unavailable_reason(data: ImageData) -> str | None:
    """Why no judge can be trained on ``data`` (None when one can)."""
    if data.labels is None:
        return "unlabelled data"
    if len(np.unique(data.labels)) < 2:
        return "a single class"
    if len(data) < MIN_IMAGES:
        return f"{len(data)} labelled images, fewer than {MIN_IMAGES}"
    held = len(stratified_split(data.labels, JudgeTraining().holdout, 0)[1])
    if held < MIN_HELDOUT:
        return f"{held} images to hold out (too few per class), fewer than {MIN_HELDOUT}"
    return None


_MEMO: dict[str, TrainedJudge] = {}


def judge_for(
    data: ImageData, training: JudgeTraining = JudgeTraining(), *, say: Say = _stderr
) -> TrainedJudge:
    """The judge of labelled ``data``: from this process, else the cache, else trained now.

    ``say`` receives progress lines while a judge trains (default: stderr).
    """
    reason = judge_unavailable_reason(data)
    assert reason is None, reason  # callers check judge_unavailable_reason first
    cfg = JudgeConfig(data.channels, data.image_size, int(data.labels.max()) + 1)
    data_hash = data_sha256(data)
    key = judge_key(cfg, training, data_hash)
    if key in _MEMO:
        return _MEMO[key]
    path = judges_dir() / f"judge-{key}.safetensors"
    judge = load_judge(path, cfg, data_hash)
    if judge is None:
        judge = _train_and_cache(data, cfg, training, data_hash, path, say)
    _MEMO[key] = replace(judge, source="memory")
    return judge


def judges_dir() -> Path:
    return cache_root() / "judges"


def judge_key(cfg: JudgeConfig, training: JudgeTraining, data_hash: str) -> str:
    spec = {
        "config": asdict(cfg),
        "training": asdict(training),
        "data": data_hash,
        "version": JUDGE_VERSION,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


_HASHES: dict[tuple[int, int], tuple[weakref.ref, weakref.ref, str]] = {}


def data_sha256(data: ImageData) -> str:
    """sha256 of the images' and labels' dtypes, shapes and bytes (memoised per array pair:
    training evaluates the same arrays again and again)."""
    images, labels = data.images, data.labels
    known = _HASHES.get((id(images), id(labels)))
    if known is not None and known[0]() is images and known[1]() is labels:
        return known[2]
    h = hashlib.sha256()
    for arr in (images, labels):
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    digest = h.hexdigest()
    _HASHES[(id(images), id(labels))] = (weakref.ref(images), weakref.ref(labels), digest)
    return digest


# ----------------------------------------------------------------------------- training


def stratified_split(
    labels: np.ndarray, holdout: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, heldout) sorted indices; ``round(holdout * n_k)`` of each class k held out
    (at least one when the class has two or more images)."""
    rng = np.random.default_rng(seed)
    held = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        n = min(len(idx) - 1, max(1, round(holdout * len(idx))))
        held.append(rng.permutation(idx)[:n])
    heldout = np.sort(np.concatenate(held))
    train = np.setdiff1d(np.arange(len(labels)), heldout)
    return train, heldout


def train_judge(
    data: ImageData, training: JudgeTraining = JudgeTraining(), *, say: Say = _stderr
) -> tuple[Judge, float, int, int]:
    """Train on ``data``'s stratified train split; (judge, held-out accuracy, n_train, n_heldout)."""
    cfg = JudgeConfig(data.channels, data.image_size, int(data.labels.max()) + 1)
    train_idx, held_idx = stratified_split(data.labels, training.holdout, training.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(training.threads)
    try:
        model = _fit(cfg, data, train_idx, training, say)
        accuracy = float(np.mean(classify(model, data.images[held_idx]) == data.labels[held_idx]))
    finally:
        torch.set_num_threads(threads)
    return model, accuracy, len(train_idx), len(held_idx)


def _fit(
    cfg: JudgeConfig, data: ImageData, idx: np.ndarray, training: JudgeTraining, say: Say
) -> Judge:
    x = torch.cat(  # (N, C, S, S), resized in chunks to bound the peak memory
        [
            resize_square(torch.from_numpy(data.images[idx[i : i + 4096]]), cfg.input_size)
            for i in range(0, len(idx), 4096)
        ]
    )
    y = torch.from_numpy(data.labels[idx])
    epochs = max(1, min(training.max_epochs, training.max_images_seen // len(x)))
    say(
        f"judge: training a classifier on the labels of '{printable(data.name)}' "
        f"({len(x)} images, {cfg.num_classes} classes, {cfg.input_size}x{cfg.input_size}, "
        f"{epochs} epochs; once per dataset, then cached)"
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(training.seed)
        model = Judge(cfg)
        opt = torch.optim.AdamW(
            model.parameters(), lr=training.lr, weight_decay=training.weight_decay
        )
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            training.lr,
            total_steps=epochs * -(-len(x) // training.batch_size),
            pct_start=training.warmup,
        )
        rng = np.random.default_rng(training.seed)
        max_shift = max(1, cfg.input_size // 14)  # 1 px at 16x16, 2 px at 28x28
        ticker = _Ticker(say, epochs * len(x))
        model.train()
        for _ in range(epochs):
            for xb, yb in _batches(x, y, rng, training.batch_size):
                loss = F.cross_entropy(model(_random_shift(xb, rng, max_shift)), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                ticker.tick(len(xb), loss.item())
    return model.eval()


def _batches(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, batch_size: int):
    perm = torch.from_numpy(rng.permutation(len(x)))
    for i in range(0, len(x), batch_size):
        idx = perm[i : i + batch_size]
        yield x[idx], y[idx]


class _Ticker:
    """A progress line every ``every_s`` seconds: share of the images done, recent loss."""

    def __init__(self, say: Say, total: int, every_s: float = 10.0) -> None:
        self.say, self.total, self.every_s = say, total, every_s
        self.done, self.loss = 0, float("nan")
        self.t0 = self.last = time.perf_counter()

    def tick(self, n: int, loss: float) -> None:
        self.done += n
        self.loss = loss if math.isnan(self.loss) else 0.9 * self.loss + 0.1 * loss
        now = time.perf_counter()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            self.say(
                f"judge: {100 * self.done / self.total:.0f}% "
                f"({self.done}/{self.total} images), loss {self.loss:.3f}, {now - self.t0:.0f} s"
            )


def _random_shift(x: torch.Tensor, rng: np.random.Generator, m: int) -> torch.Tensor:
    """Translate each image by up to ``m`` pixels each way, filling with background (-1)."""
    shifts = rng.integers(-m, m + 1, size=(len(x), 2))  # (B, 2) dy, dx
    padded = F.pad(x, (m, m, m, m), value=-1.0)  # (B, C, H+2m, W+2m)
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    for dy, dx in {(int(a), int(b)) for a, b in shifts}:
        sel = torch.from_numpy((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
        out[sel] = padded[sel, :, m + dy : m + dy + h, m + dx : m + dx + w]
    return out


# ----------------------------------------------------------------------------- cache


def _train_and_cache(
    data: ImageData,
    cfg: JudgeConfig,
    training: JudgeTraining,
    data_hash: str,
    path: Path,
    say: Say,
) -> TrainedJudge:
    t0 = time.perf_counter()
    model, accuracy, n_train, n_held = train_judge(data, training, say=say)
    judge = TrainedJudge(model, accuracy, n_train, n_held, path, "trained")
    try:
        save_judge(judge, data_hash)
        where = f"cached in {printable(path, None)}"  # $GENEDGE_CACHE: any characters
    except (GenedgeError, OSError) as e:  # a read-only cache costs a retrain next time, no more
        where = f"not cached ({printable(str(e))})"
    say(
        f"judge: held-out accuracy {accuracy:.3f} on {n_held} images "
        f"after {time.perf_counter() - t0:.1f} s; {where}"
    )
    return judge


def _weights_hash(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def save_judge(judge: TrainedJudge, data_hash: str) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in judge.model.state_dict().items()}
    meta = {
        "format": JUDGE_FORMAT,
        "version": JUDGE_VERSION,
        "config": json.dumps(asdict(judge.model.cfg), sort_keys=True),
        "heldout_accuracy": repr(judge.heldout_accuracy),
        "train_images": str(judge.train_images),
        "heldout_images": str(judge.heldout_images),
        "data_sha256": data_hash,
        "weights_sha256": _weights_hash(state),
    }
    with atomic_path(judge.path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def load_judge(path: Path, cfg: JudgeConfig, data_hash: str) -> TrainedJudge | None:
    """The cached judge at ``path``, or None when it is missing or does not check out (a
    file that is not a regular file, too large or not a safetensors file: one warning)."""
    from safetensors.torch import load

    try:
        data = read_bytes(path, what="Judge cache", limit=JUDGE_CACHE_BYTES)
        meta = safetensors_metadata(data, what="Judge cache", path=path)
    except MissingFileError:
        return None
    except ReadbackError as e:
        warn_ignored(path, e)
        return None
    try:
        state = load(data)
        ok = (
            meta.get("format") == JUDGE_FORMAT
            and meta.get("version") == JUDGE_VERSION
            and meta.get("config") == json.dumps(asdict(cfg), sort_keys=True)
            and meta.get("data_sha256") == data_hash
            and meta.get("weights_sha256") == _weights_hash(state)
        )
        accuracy = float(meta["heldout_accuracy"])
        if not ok or not 0.0 <= accuracy <= 1.0:
            return None
        model = Judge(cfg)
        model.load_state_dict(state, strict=True)
        counts = int(meta["train_images"]), int(meta["heldout_images"])
    except Exception:  # any failure means "retrain": the cache is ours to regenerate
        return None
    return TrainedJudge(model.eval(), accuracy, *counts, path, "cache")

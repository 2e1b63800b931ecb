"""Feature extractors for image metrics (DESIGN.md section 8).

Two feature spaces, both working on float32 (N, C, H, W) images in [-1, 1]:

- ``DigitsClassifier``: a small CNN trained on scikit-learn's bundled digits (train split)
  at 16x16, deterministic, cached as safetensors under ``$GENEDGE_CACHE`` (default
  ``~/.cache/genedge``) keyed by a hash of architecture + training settings + size. Its
  64-d penultimate layer is the feature space; its logits give conditional accuracy.
  Inputs of any size are resized (area/antialiased) to 16x16 before classification.
- ``RandomConvFeatures``: a fixed-seed, randomly initialised conv net for everything that is
  not digits-like (other channel counts, RGB, unlabeled folders). Nothing is downloaded.
  FID proper uses ImageNet Inception-v3 pool features; its weights need a network fetch and
  Inception on 16x16 grayscale digits is meaningless (it expects 299x299 natural photos).
  Random conv features still separate distributions well (Naeem et al. 2020 report that
  randomly initialised embeddings give usable fidelity/diversity metrics), but numbers in
  this space are comparable only between runs on the same data, size and seed, never with
  published FIDs.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genedge.atomic import atomic_path

from .data import ImageData, load_image_data, split_images

CLASSIFIER_SIZE = 16
CLASSIFIER_SPLIT_SEED = 0
CLASSIFIER_HOLDOUT = 0.2
CLASSIFIER_VERSION = "1"  # bump when the training code changes in a way the settings don't show


@dataclass(frozen=True)
class ClassifierTraining:
    epochs: int = 15
    batch_size: int = 128
    lr: float = 5e-3
    weight_decay: float = 1e-4
    max_shift: int = 1  # random translation augmentation, pixels at 16x16
    seed: int = 0


class DigitsClassifier(nn.Module):
    """(B, 1, 16, 16) in [-1, 1] -> logits (B, 10); ``features`` gives the 64-d penultimate layer."""

    feature_dim = 64

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, self.feature_dim)
        self.head = nn.Linear(self.feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = _resize(x, CLASSIFIER_SIZE)  # (B, 1, 16, 16)
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 16, 8, 8)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (B, 32, 4, 4)
        return F.relu(self.fc(h.flatten(1)))  # (B, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class RandomConvFeatures(nn.Module):
    """(B, C, H, W) in [-1, 1], H, W >= 8 -> 128-d features from fixed random weights."""

    feature_dim = 128

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream alone
            torch.manual_seed(seed)
            self.convs = nn.Sequential(
                nn.Conv2d(channels, 32, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(64, 32, 3, stride=2, padding=1),
                nn.ReLU(),
            )
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x)  # (B, 32, H/4, W/4)
        return F.adaptive_avg_pool2d(h, 2).flatten(1)  # (B, 128)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


# ----------------------------------------------------------------------------- classifier cache


def cache_dir() -> Path:
    return Path(os.environ.get("GENEDGE_CACHE") or Path.home() / ".cache" / "genedge")


def classifier_key(settings: ClassifierTraining = ClassifierTraining()) -> str:
    """Hash of architecture, training settings, input size and data split."""
    spec = {
        "arch": repr(DigitsClassifier()),
        "training": asdict(settings),
        "size": CLASSIFIER_SIZE,
        "split": [CLASSIFIER_HOLDOUT, CLASSIFIER_SPLIT_SEED],
        "version": CLASSIFIER_VERSION,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def digits_classifier_split() -> tuple[ImageData, ImageData]:
    """(train, test) split of the 16x16 digits the classifier is trained and tested on."""
    digits = load_image_data("digits", image_size=CLASSIFIER_SIZE)
    return split_images(digits, CLASSIFIER_HOLDOUT, CLASSIFIER_SPLIT_SEED)


_LOADED: dict[Path, DigitsClassifier] = {}


def digits_classifier(settings: ClassifierTraining = ClassifierTraining()) -> DigitsClassifier:
    """The cached digits classifier (eval mode, CPU); trained and cached on first use.

    A cache file that fails to load, or whose weights hash does not match the one recorded
    in its metadata, is retrained and rewritten atomically rather than trusted.
    """
    path = cache_dir() / f"digits-classifier-{classifier_key(settings)}.safetensors"
    if path in _LOADED:
        return _LOADED[path]
    model = _load_cached(path)
    if model is None:
        model = train_digits_classifier(settings)
        _save_cached(model, path)
    _LOADED[path] = model.eval()
    return model


def _weights_hash(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _save_cached(model: DigitsClassifier, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"weights_sha256": _weights_hash(state)})


def _load_cached(path: Path) -> DigitsClassifier | None:
    if not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        if meta.get("weights_sha256") != _weights_hash(state):
            return None
        model = DigitsClassifier()
        model.load_state_dict(state, strict=True)
        return model
    except Exception:  # any failure means "rebuild": the cache is ours to regenerate
        return None


def train_digits_classifier(
    settings: ClassifierTraining = ClassifierTraining(),
) -> DigitsClassifier:
    """Train on the digits train split, deterministically (a few seconds on one CPU core)."""
    train, _ = digits_classifier_split()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny net: threads only add contention (and reduction-order noise)
    try:
        return _fit(train, settings)
    finally:
        torch.set_num_threads(threads)


def _fit(train: ImageData, settings: ClassifierTraining) -> DigitsClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = DigitsClassifier()
        opt = torch.optim.AdamW(
            model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
        )
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, settings.lr, total_steps=settings.epochs * -(-len(train) // settings.batch_size)
        )
        x = torch.from_numpy(train.images)
        y = torch.from_numpy(train.labels)
        rng = np.random.default_rng(settings.seed)
        model.train()
        for _ in range(settings.epochs):
            _train_epoch(model, opt, sched, x, y, rng, settings)
    return model.eval()


def _train_epoch(model, opt, sched, x, y, rng, settings: ClassifierTraining) -> None:
    perm = torch.from_numpy(rng.permutation(len(x)))
    for i in range(0, len(x), settings.batch_size):
        idx = perm[i : i + settings.batch_size]
        xb = _random_shift(x[idx], rng, settings.max_shift)
        loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


def _random_shift(x: torch.Tensor, rng: np.random.Generator, m: int) -> torch.Tensor:
    """Translate each image by up to ``m`` pixels each way, filling with background (-1)."""
    if m == 0:
        return x
    shifts = rng.integers(-m, m + 1, size=(len(x), 2))  # (B, 2) dy, dx
    padded = F.pad(x, (m, m, m, m), value=-1.0)  # (B, C, H+2m, W+2m)
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    for dy, dx in {(int(a), int(b)) for a, b in shifts}:
        sel = torch.from_numpy((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
        out[sel] = padded[sel, :, m + dy : m + dy + h, m + dx : m + dx + w]
    return out


@torch.no_grad()
def classify(model: DigitsClassifier, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """float32 (N, 1, H, W) in [-1, 1] -> predicted digit, int64 (N,)."""
    out = [
        model(torch.from_numpy(np.ascontiguousarray(images[i : i + batch], np.float32))).argmax(1)
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out).numpy().astype(np.int64)


@torch.no_grad()
def extract_features(net: nn.Module, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """float32 (N, C, H, W) in [-1, 1] -> float64 (N, D) features from ``net.features``."""
    out = [
        net.features(torch.from_numpy(np.ascontiguousarray(images[i : i + batch], np.float32)))
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out).double().numpy()

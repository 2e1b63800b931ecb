"""Latent caching, labels and latent walks over the shared seeded latents (``genedge.latents``).

The same seed gives the same latent on every backend and in the torch reference: the
definition lives once, in the core, and export, eval and bench use it too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from genedge.errors import BadInputError
from genedge.latents import check_seed, check_truncation, default_labels, is_int, seeded_latents

WALKS = ("lerp", "slerp", "circle")
MAX_WALK_FRAMES = 100_000  # frames a walk returns in one array; longer walks stream instead
_CACHE_SIZE = 256
_CACHE_MAX_ELEMENTS = 1 << 14  # per entry: at most 64 KiB; the whole cache stays under 16 MiB
_cache: OrderedDict[tuple[int, int, int, float], np.ndarray] = OrderedDict()


def cached_latents(n: int, dim: int, seed: int = 0, truncation: float = 1.0) -> np.ndarray:
    """``seeded_latents`` through a small LRU cache (small batches); do not modify the result.

    Building a ``default_rng`` costs tens of microseconds, a sizeable share of a tiny
    generator's run, and real-time users revisit the same seeds (walk endpoints, UIs).
    """
    if type(seed) is not int or seed < 0:
        seed = check_seed(seed)
    if type(truncation) is not float:  # 1, np.float32(0.5): validated, then one key per value
        truncation = check_truncation(truncation)
    key = (n, dim, seed, truncation)
    z = _cache.get(key)
    if z is None:
        z = seeded_latents(n, dim, seed, truncation)
        if z.size > _CACHE_MAX_ELEMENTS:  # big batches: the model dominates, do not hold memory
            return z
        z.flags.writeable = False
        _cache[key] = z
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return z


def make_labels(
    n: int, num_classes: int, labels: int | Sequence[int] | np.ndarray | None = None
) -> np.ndarray | None:
    """int64 (n,) labels: the default ``arange(n) % K``, one class for all, or the given ones.

    Returns ``None`` for unconditional models (``num_classes == 0``) and refuses labels there.
    """
    if num_classes <= 0:
        if labels is not None:
            raise BadInputError(
                "This bundle's model is unconditional (num_classes 0); it takes no labels.",
                hint="Drop --label / labels=.",
            )
        return None
    if labels is None:
        return default_labels(n, num_classes)
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":  # 3.7, "3", True: refused rather than guessed at
        raise BadInputError(
            f"labels {labels!r}: received {y.dtype} values; expected class ids "
            f"(integers 0..{num_classes - 1})."
        )
    if y.ndim != 0 and y.shape != (n,):
        raise BadInputError(
            f"labels: received {y.dtype} array of shape {y.shape}; expected one class "
            f"id or {n} of them, shape ({n},)."
        )
    if y.size and (y.min() < 0 or y.max() >= num_classes):  # before any cast: 2^63 wraps
        raise BadInputError(
            f"labels span [{y.min()}, {y.max()}]; this model has classes 0..{num_classes - 1}."
        )
    if y.ndim == 0:
        return np.full(n, int(y), dtype=np.int64)
    return y.astype(np.int64, copy=False)


def lerp(a: np.ndarray, b: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Linear interpolation: a, b (..., Z), t scalar or (..., 1) -> (..., Z)."""
    return a + (b - a) * np.float32(t) if np.ndim(t) == 0 else a + (b - a) * t


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation row by row (a, b: (B, Z) float32); falls back to lerp when parallel."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = (
        np.linalg.norm(a64, axis=-1, keepdims=True),
        np.linalg.norm(b64, axis=-1, keepdims=True),
    )
    cos = np.clip((a64 * b64).sum(-1, keepdims=True) / np.maximum(na * nb, 1e-12), -1.0, 1.0)
    omega = np.arccos(cos)
    so = np.sin(omega)
    safe = so > 1e-6
    wa = np.where(safe, np.sin((1 - t) * omega) / np.where(safe, so, 1), 1 - t)
    wb = np.where(safe, np.sin(t * omega) / np.where(safe, so, 1), t)
    return (wa * a64 + wb * b64).astype(np.float32)


def circle_basis(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Make ``b`` orthogonal to ``a`` with the same norm, row by row (B, Z).

    Then ``z(theta) = a cos(theta) + b sin(theta)`` keeps ``|z| = |a|`` exactly and loops
    after ``2 pi``: a seamless animation that stays on the prior's typical shell.
    """
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    aa = (a64 * a64).sum(-1, keepdims=True)
    b64 = b64 - (a64 * b64).sum(-1, keepdims=True) / np.maximum(aa, 1e-12) * a64
    b64 *= np.sqrt(aa) / np.maximum(np.linalg.norm(b64, axis=-1, keepdims=True), 1e-12)
    return a64.astype(np.float32), b64.astype(np.float32)


def walk_latents(
    seeds: Sequence[int], steps: int, dim: int, *, kind: str = "slerp", truncation: float = 1.0
) -> np.ndarray:
    """A walk through one latent per seed: float32 (segments * steps (+1), dim).

    ``lerp``/``slerp``: ``steps`` frames per segment between consecutive seeds, the last
    seed's latent appended. ``circle``: one loop of ``steps`` frames on the circle through
    the first two seeds (the last frame is not the first again, so it loops seamlessly).
    """
    if kind not in WALKS:
        raise BadInputError(f"walk {kind!r} is not one of {WALKS}.")
    if not is_int(steps) or not 1 <= steps <= MAX_WALK_FRAMES:
        raise BadInputError(f"steps {steps!r}: expected an integer in [1, {MAX_WALK_FRAMES}].")
    if isinstance(seeds, str | bytes) or not hasattr(seeds, "__len__"):
        raise BadInputError(f"seeds {seeds!r}: expected a list of seeds such as [0, 1, 2].")
    if len(seeds) * steps > MAX_WALK_FRAMES:
        raise BadInputError(
            f"A walk of {len(seeds)} seeds x {steps} steps is more than {MAX_WALK_FRAMES} frames.",
            hint="Use Sampler.stream for long walks: it renders frame by frame.",
        )
    zs = [seeded_latents(1, dim, s, truncation) for s in seeds]
    if kind == "circle":
        if len(zs) < 2 or check_seed(seeds[0]) == check_seed(seeds[1]):
            raise BadInputError(
                f"A circular walk needs two different seeds; got {list(seeds)[:2]}."
            )
        a, b = circle_basis(zs[0], zs[1])
        theta = 2 * np.pi * np.arange(steps, dtype=np.float64)[:, None] / steps
        return (a * np.cos(theta) + b * np.sin(theta)).astype(np.float32)
    if len(zs) < 2:
        raise BadInputError(f"A {kind} walk needs at least two seeds.")
    frames = []
    for za, zb in zip(zs[:-1], zs[1:], strict=True):
        for i in range(steps):
            t = i / steps
            frames.append(slerp(za, zb, t) if kind == "slerp" else lerp(za, zb, t))
    frames.append(zs[-1])
    return np.concatenate(frames, axis=0)


class LatentPath:
    """Latent for frame ``i`` of an endless walk, written into a caller buffer (B, Z).

    ``circle``: a loop of ``period`` frames through seeds ``seed`` and ``seed + 1``;
    ``lerp``/``slerp``: segment ``k`` goes from seed ``seed + k`` to ``seed + k + 1`` in
    ``period`` frames. Each of the B batch rows is a separate walk (row j of the seeded
    batch). Endpoints are cached, so a frame costs a few small numpy operations.
    """

    def __init__(
        self,
        kind: str,
        batch: int,
        dim: int,
        *,
        seed: int = 0,
        period: int = 120,
        truncation: float = 1.0,
    ) -> None:
        if kind not in WALKS:
            raise BadInputError(f"walk {kind!r} is not one of {WALKS}.")
        self.kind, self.batch, self.dim, self.seed = kind, batch, dim, seed
        self.period, self.truncation = max(int(period), 2), truncation
        self._segment = -1
        self._a = self._b = np.zeros((batch, dim), np.float32)
        if kind == "circle":
            self._a, self._b = circle_basis(self._z(0), self._z(1))

    def _z(self, k: int) -> np.ndarray:
        return cached_latents(self.batch, self.dim, self.seed + k, self.truncation)

    def at(self, i: int, out: np.ndarray) -> np.ndarray:
        """Write frame ``i``'s latent into ``out`` float32 (B, Z) and return it."""
        if self.kind == "circle":
            theta = 2 * np.pi * (i % self.period) / self.period
            np.multiply(self._a, np.float32(np.cos(theta)), out=out)
            out += self._b * np.float32(np.sin(theta))
            return out
        k, r = divmod(i, self.period)
        if k != self._segment:
            self._segment, self._a, self._b = k, self._z(k), self._z(k + 1)
        t = r / self.period
        out[...] = slerp(self._a, self._b, t) if self.kind == "slerp" else lerp(self._a, self._b, t)
        return out

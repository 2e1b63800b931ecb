"""Seeded latents and default labels: the one definition every stage shares (docs/bundle.md).

``z = numpy.random.default_rng(seed).standard_normal((n, Z), dtype=float32)``; with
truncation ``t < 1`` every value with ``|z| > 2`` is redrawn from the same generator
(in C order, repeatedly, until none is left), then ``z *= t``. Labels default to
``arange(n) % num_classes``. Training eval, export (calibration, parity, quality gate),
the runtime and bench all call these, so the same seed is the same latent everywhere.
"""

from __future__ import annotations

import numpy as np

from genedge.errors import BadInputError

TRUNCATION_BOUND = 2.0


def check_truncation(truncation: float) -> float:
    t = float(truncation)
    if not 0.0 < t <= 1.0:
        raise BadInputError(f"truncation {truncation!r} is outside (0, 1]; 1.0 means no truncation.")
    return t


def seeded_latents(n: int, dim: int, seed: int = 0, truncation: float = 1.0) -> np.ndarray:
    """The bundle's seeded latents: float32 (n, dim), a fresh array."""
    if n < 1 or dim < 1:
        raise BadInputError(f"Cannot draw {n} latents of size {dim}; both must be >= 1.")
    t = check_truncation(truncation)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, dim), dtype=np.float32)  # (n, Z)
    if t < 1.0:
        bad = np.abs(z) > TRUNCATION_BOUND
        while (k := int(np.count_nonzero(bad))) > 0:
            z[bad] = rng.standard_normal(k, dtype=np.float32)
            bad = np.abs(z) > TRUNCATION_BOUND
        z *= np.float32(t)
    return z


def default_labels(n: int, num_classes: int) -> np.ndarray:
    """int64 (n,) labels ``arange(n) % K``: every class in turn."""
    return np.arange(n, dtype=np.int64) % num_classes

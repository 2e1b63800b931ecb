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
    if not is_real(truncation):
        raise BadInputError(f"truncation {truncation!r}: expected a number in (0, 1].")
    t = float(truncation)
    if not 0.0 < t <= 1.0:
        raise BadInputError(
            f"truncation {truncation!r} is outside (0, 1]; 1.0 means no truncation."
        )
    return t


def is_int(x: object) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def is_real(x: object) -> bool:
    """A Python or numpy int/float, not a bool (finite or not: callers decide)."""
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(
        x, bool | np.bool_
    )


def check_seed(seed: object) -> int:
    """A seed is a non-negative integer (Python or numpy); anything else is exit 2."""
    if not is_int(seed) or int(seed) < 0:
        raise BadInputError(f"seed {seed!r}: expected a non-negative integer such as 0 or 1234.")
    return int(seed)


def check_count(n: object, what: str = "n") -> int:
    """A number of images: an integer >= 1."""
    if not is_int(n) or int(n) < 1:
        raise BadInputError(f"{what} {n!r}: expected an integer >= 1 (the number of images).")
    return int(n)


def seeded_latents(n: int, dim: int, seed: int = 0, truncation: float = 1.0) -> np.ndarray:
    """The bundle's seeded latents: float32 (n, dim), a fresh array."""
    n = check_count(n)
    if not is_int(dim) or dim < 1:
        raise BadInputError(f"Cannot draw latents of size {dim!r}; it must be an integer >= 1.")
    seed = check_seed(seed)
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

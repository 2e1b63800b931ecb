"""Limits on what one request may ask for, checked before any work starts.

A value past a limit is almost always a typo (``--threads 1000000``, a prompt pasted
from the wrong file); accepting it would hang the process, exhaust memory or spin up
a million threads before anything useful happened. Each check raises
``BadInputError`` (exit 2) naming the limit and why it exists. docs/security.md lists
every limit. stdlib only.
"""

from __future__ import annotations

import math
import numbers
import os

from genedge.errors import BadInputError

THREADS_PER_CPU = 4  # more threads than this per CPU only add switching and stacks
MAX_PROMPT_CHARS = 65_536  # a char model feeds the prompt one step per character
MAX_NEW_TOKENS = 100_000  # characters one generation may produce
MAX_CALIB_SAMPLES = 16_384  # calibration / quality samples; ranges settle within a few thousand
MIN_OPSET, MAX_OPSET = 17, 20  # torch's TorchScript ONNX exporter writes opsets up to 20
MAX_REQUEST_BYTES = 4 << 30  # buffers one call allocates up front (images, rings, batches)
MAX_BATCH = 4096  # one engine profile or benchmark batch; buffers are sized for it up front
MAX_EVAL_SAMPLES = 50_000  # evaluation keeps every sample (and its features) in memory
MAX_IMAGE_PIXELS = 1 << 24  # one image a file declares (4096 x 4096); decoded as float32 later
MAX_IMAGE_FILE_BYTES = 256 << 20  # one image file read from a folder
MAX_DECODED_BYTES = 256 << 20  # an IDX array a file declares (MNIST's training images: 47 MB)
MAX_GRID_PIXELS = 1 << 26  # the one PNG `sample --out` writes (8192 x 8192; encoding copies it)
MAX_OUTPUT_PIXELS = 1 << 20  # one image of an imported generator (1024 x 1024)
MAX_LATENT_SIZE = 1 << 16  # values of one latent an imported generator declares


def cpu_count() -> int:
    """CPUs of this machine (``os.cpu_count()``, at least 1)."""
    return max(os.cpu_count() or 1, 1)


def max_threads() -> int:
    """The most threads any one thread-count option accepts on this machine."""
    return THREADS_PER_CPU * cpu_count()


def check_threads(name: str, value: object) -> int | None:
    """``value`` as a thread count (None: the library's default), or ``BadInputError``.

    Refused: anything but an integer >= 1, and more than ``THREADS_PER_CPU`` threads per
    CPU of this machine.
    """
    if value is None:
        return None
    if type(value) is not int or value < 1:  # not bool, not numpy: backends take plain ints
        raise BadInputError(
            f"{name} {value!r}: expected an integer >= 1, or nothing for the default."
        )
    cap = max_threads()
    if value > cap:
        raise BadInputError(
            f"{name} {value}: more than {cap} threads ({THREADS_PER_CPU} per CPU, "
            f"{cpu_count()} CPUs here); more threads than CPUs only add switching and memory.",
            hint=f"Pass at most {cap}, or leave it unset for the default.",
        )
    return value


def check_count(name: str, value: object, limit: int, reason: str, *, low: int = 1) -> int:
    """An integer in ``[low, limit]``, or ``BadInputError`` naming the limit and ``reason``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise BadInputError(f"{name} {value!r}: expected an integer >= {low}.")
    if value > limit:
        raise BadInputError(f"{name} {value}: the limit is {limit:,} ({reason}).")
    return int(value)


def check_prompt(prompt: str) -> None:
    """Refuse a prompt longer than ``MAX_PROMPT_CHARS`` characters before any step runs."""
    if len(prompt) > MAX_PROMPT_CHARS:
        raise BadInputError(
            f"prompt: {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,} (the model "
            "reads the prompt one step per character).",
            hint="Pass the last part of the text only; the model's state summarises the rest.",
        )


def check_finite(name: str, value: object, *, low: float | None = None) -> float:
    """A finite real number (``>= low`` when given), or ``BadInputError``; NaN and inf refused."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (low is not None and value < low):
        bound = f" >= {low:g}" if low is not None else ""
        raise BadInputError(f"{name} {value!r}: expected a finite number{bound}.")
    return float(value)


def check_bytes(what: str, nbytes: int, hint: str) -> None:
    """Refuse a request whose up-front buffers would exceed ``MAX_REQUEST_BYTES``."""
    if nbytes > MAX_REQUEST_BYTES:
        raise BadInputError(
            f"{what} needs {nbytes / 2**30:.1f} GiB of buffers up front; the limit is "
            f"{MAX_REQUEST_BYTES / 2**30:g} GiB per call.",
            hint=hint,
        )


def check_declared(
    what: str, declared: str, size: int, limit: int, hint: str, unit: str = "bytes"
) -> None:
    """Refuse a size a file or request *declares* (image dimensions, an array's shape) past
    ``limit`` before anything is decoded or allocated: a few kB of header can claim gigabytes."""
    if size > limit:
        raise BadInputError(
            f"{what} declares {declared} ({size:,} {unit}); the limit is {limit:,} {unit}.",
            hint=hint,
        )

"""One exception hierarchy for genedge, mapped to the CLI's exit codes (DESIGN.md section 7).

    0 ok; 1 internal error (a bug: traceback); 2 bad input or corrupt artifact;
    3 incompatible environment; 4 integrity or security refusal.

Every user-facing error carries what was received, what was expected and how to fix
it, so the CLI can print one line with no traceback. Anything that is not a
``GenedgeError`` is a bug and crashes loudly with exit code 1.
"""

from __future__ import annotations

SHOWN_CHARS = 120  # how much of one value from a file a message shows
MESSAGE_CHARS = 4096  # the most any one message or hint shows


def printable(value: object, limit: int | None = SHOWN_CHARS) -> str:
    """``value`` as a message or a log may show it: one line, no control bytes, bounded.

    Text read from a file (a manifest's file names and hashes, checkpoint metadata,
    training data) may carry terminal escape sequences (``\\x1b[31m``, ``\\x07``) or be
    megabytes long. Every character that ``str.isprintable`` rejects (C0/C1 controls,
    newlines, bidi overrides, lone surrogates) is written as its Python escape
    (``\\x1b``, ``\\n``, ``\\u202e``), so it can neither drive the terminal nor split
    a log line; beyond ``limit`` characters the text is cut and ends in ``...``.
    """
    text = value if isinstance(value, str) else str(value)
    cut = limit is not None and len(text) > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return text + "..." if cut else text


class GenedgeError(Exception):
    """Base of every error genedge raises on purpose.

    The message and hint pass through ``printable``: whatever a caller interpolated,
    the text that reaches a terminal or a log is one line with no control bytes.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = printable(message, MESSAGE_CHARS)
        hint = None if hint is None else printable(hint, MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class BadInputError(GenedgeError, ValueError):
    """The user gave us something we cannot use (a flag, a shape, a data source)."""

    exit_code = 2


class CorruptArtifactError(BadInputError):
    """A file exists but is truncated, empty, garbage or not one of ours."""

    exit_code = 2


class IncompatibleEnvironmentError(GenedgeError, RuntimeError):
    """The environment cannot do what was asked: missing extra/backend, wrong TensorRT or GPU."""

    exit_code = 3


class MissingExtraError(IncompatibleEnvironmentError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str, *, purpose: str = "") -> None:
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(
            f"Python package '{module}' is not installed{what}.",
            hint=f"Install it with: pip install 'genedge[{extra}]'",
        )
        self.module = module
        self.extra = extra
        self.purpose = purpose


class IntegrityError(GenedgeError):
    """A hash, schema or path check failed, or loading would run untrusted code."""

    exit_code = 4


class SecurityRefusal(IntegrityError):
    """We refuse to load something because doing so could execute code or escape a folder."""


def require(module: str, extra: str, *, purpose: str = ""):
    """Import an optional dependency or raise ``MissingExtraError`` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # ImportError covers ModuleNotFoundError and broken installs
        raise MissingExtraError(module.split(".")[0], extra, purpose=purpose) from e

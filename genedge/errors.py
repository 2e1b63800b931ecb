"""One exception hierarchy for genedge, mapped to the CLI's exit codes (DESIGN.md section 7).

    0 ok; 1 internal error (a bug: traceback); 2 bad input or corrupt artifact;
    3 incompatible environment; 4 integrity or security refusal.

Every user-facing error carries what was received, what was expected and how to fix
it, so the CLI can print one line with no traceback. Anything that is not a
``GenedgeError`` is a bug and crashes loudly with exit code 1.
"""

from __future__ import annotations


class GenedgeError(Exception):
    """Base of every error genedge raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
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

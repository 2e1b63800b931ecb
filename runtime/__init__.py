"""genedge.runtime: the lean, torch-free sampler (numpy + stdlib at import time).

``Sampler`` (gan/vae bundles) and ``TextGenerator`` (ar bundles) are loaded on first
access; onnxruntime / tensorrt are imported only when a backend opens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sampler import Sampler
    from .text import TextGenerator

__all__ = ["Sampler", "TextGenerator"]
_LAZY = {"Sampler": ".sampler", "TextGenerator": ".text"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

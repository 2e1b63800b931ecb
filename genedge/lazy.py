"""Heavy third-party modules declared at the top of a file, imported on first use.

    torch = lazy_import("torch")      # nothing is imported here
    ...
    x = torch.zeros(3)                # torch is imported now, once

The idea is Polygraphy's ``lazy_import`` (``polygraphy/mod/importer.py``): a file says at
its top what it depends on, while importing it stays cheap (``genedge --help``, the torch-free
runtime, option errors answered before torch loads). Sibling modules of genedge are imported
plainly at the top; only the packages of ``MODULE_EXTRAS`` are worth declaring this way. A
package that is not installed raises ``MissingExtraError`` (exit 3) naming the extra that
installs it, at the first attribute access.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from genedge.errors import MissingExtraError

# an optional package (top-level import name) -> the extra that installs it (pyproject.toml)
MODULE_EXTRAS: dict[str, str] = {
    "torch": "train",
    "sklearn": "train",
    "cv2": "train",
    "safetensors": "train",
    "rich": "train",
    "matplotlib": "train",
    "onnx": "export",
    "onnxslim": "export",
    "onnxconverter_common": "export",
    "transformers": "export",
    "tokenizers": "cpu",
    "onnxruntime": "cpu",
    "openvino": "openvino",
    "tensorrt": "trt",
    "cuda": "trt",
}


class LazyModule:
    """Stands for module ``name`` and imports it at the first attribute access.

    Every public name reads through to the module (``onnx.load``, ``torch.load``), so the
    stand-in's own methods are private; ``load`` and ``is_loaded`` below reach them."""

    __slots__ = ("_extra", "_module", "_name")

    def __init__(self, name: str, extra: str) -> None:
        self._name = name
        self._extra = extra
        self._module: ModuleType | None = None

    def _load(self) -> ModuleType:
        if self._module is None:
            try:
                self._module = importlib.import_module(self._name)
            except ImportError as e:  # not installed, or an install too broken to import
                raise MissingExtraError(self._name.split(".")[0], self._extra) from e
        return self._module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state}; extra {self._extra!r})>"


def load(module: LazyModule) -> ModuleType:
    """The module ``module`` stands for, imported now if it was not yet; ``MissingExtraError``
    naming the extra when it is not installed."""
    return module._load()


def is_loaded(module: LazyModule) -> bool:
    """Whether ``module`` has been imported through this stand-in."""
    return module._module is not None


def lazy_import(name: str, extra: str | None = None) -> LazyModule:
    """``name`` (``"torch"``, ``"onnx.numpy_helper"``), imported at its first use; ``extra``
    defaults to the one ``MODULE_EXTRAS`` names for its top-level package."""
    top = name.split(".")[0]
    extra = extra or MODULE_EXTRAS.get(top)
    if extra is None:
        raise ValueError(f"lazy_import({name!r}): no extra known for {top!r}; pass extra=...")
    return LazyModule(name, extra)

"""genedge.train: generators (gan, vae, ar), data sources, the training loop, checkpoints, eval.

Needs the ``train`` extra (torch, scikit-learn, opencv, safetensors, rich, matplotlib).
"""

from typing import Any

from .options import TrainOptions

_LAZY = {  # imported on first use: option and flag errors are answered before torch loads
    "load_checkpoint": "checkpoint",
    "read_checkpoint_info": "checkpoint",
    "save_checkpoint": "checkpoint",
    "train_run": "trainer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TrainOptions",
    "load_checkpoint",
    "read_checkpoint_info",
    "save_checkpoint",
    "train_run",
]

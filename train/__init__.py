"""genedge.train: generators (gan, vae, ar), data sources, the training loop, checkpoints, eval.

Needs the ``train`` extra (torch, scikit-learn, opencv, safetensors, rich, matplotlib).
"""

from .checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from .options import TrainOptions
from .trainer import train_run

__all__ = [
    "TrainOptions",
    "load_checkpoint",
    "read_checkpoint_info",
    "save_checkpoint",
    "train_run",
]

"""genedge's per-user cache folder: ``$GENEDGE_CACHE``, else ``$XDG_CACHE_HOME/genedge``,
else ``~/.cache/genedge``.

One rule for every cache genedge keeps outside a bundle (datasets, feature extractors'
weights, tunings, ONNX Runtime's TensorRT engines). A relative ``XDG_CACHE_HOME`` is ignored,
as the XDG base-directory specification asks. The folder may not exist yet; ``Path.home()``
raises ``RuntimeError`` where no home can be found, which each caller handles as it needs.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache(*parts: str) -> Path:
    """The cache folder, or ``parts`` below it."""
    if os.environ.get("GENEDGE_CACHE"):
        root = Path(os.environ["GENEDGE_CACHE"])
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
        root = base / "genedge"
    return root.joinpath(*parts)

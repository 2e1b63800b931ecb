"""genedge: generative models from training to real-time sampling on the edge.

The core package (this folder) is stdlib + numpy only: version, errors, the bundle
manifest, atomic file writing, PNG writing and the CLI. The stages live in
``genedge.train``, ``genedge.export``, ``genedge.runtime`` and ``genedge.bench``.
"""

__version__ = "0.1.0"

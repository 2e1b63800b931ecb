"""genedge: generative models from training to real-time sampling on the edge.

The core package (this folder) is stdlib + numpy only: version, errors, the bundle
manifest, atomic file writing, PNG writing and the CLI. The stages live in
``genedge.train``, ``genedge.export``, ``genedge.runtime`` and ``genedge.bench``.

Logging: every module logs under the ``genedge`` logger (``logging.getLogger("genedge")``;
the runtime on its child ``genedge.runtime``). At INFO it reports what ``backend="auto"``
and ``precision=None`` chose and why; warnings (an artifact that failed its checks but was
asked for) are WARNING. genedge adds no handler: like any library's INFO lines, they
appear once the application configures logging, e.g. ``logging.basicConfig(level="INFO")``
or ``logging.getLogger("genedge").setLevel("INFO")`` beside a handler.
"""

__version__ = "0.1.0"

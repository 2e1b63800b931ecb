"""genedge.bench: honest latency benchmarking of bundles against the tools users would otherwise pick.

``run_bench(BenchOptions(bundle=...)) -> BenchReport``; ``genedge bench BUNDLE`` is the CLI.
Imports numpy and the core only; onnxruntime, torch, matplotlib and rich are imported
where they are used.
"""

from .options import BenchOptions
from .report import BenchReport
from .suite import run_bench

__all__ = ["BenchOptions", "BenchReport", "run_bench"]

"""The environment recorded beside every number: CPU, cores, GPU, library versions, bundle hash.

Library versions come from package metadata, so recording them never imports torch or
TensorRT.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from genedge import __version__
from genedge.cpu_load import load_average, usable_cpus
from genedge.manifest import MANIFEST_NAME, sha256_file
from genedge.runtime.machine import cpu_model, physical_cores

from .memory import gpu_memory

LIBRARIES = ("numpy", "onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", "cuda-python")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"genedge": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment(bundle: str | os.PathLike, argv: list[str] | None = None) -> dict[str, Any]:
    """Everything a reader needs to compare two benchmark runs."""
    manifest = Path(bundle) / MANIFEST_NAME
    return {
        "timestamp_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(argv) if argv else None,  # the equivalent `genedge bench` command
        "process_argv": shlex.join(sys.argv),  # what was actually started (e.g. `genedge demo`)
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "physical_cores": physical_cores(),
        "os_cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "load_average": load_average(),
        "gpus": gpu_memory(),
        "libraries": library_versions(),
        "bundle": str(Path(bundle).resolve()),
        "manifest_sha256": sha256_file(manifest) if manifest.is_file() else None,
    }

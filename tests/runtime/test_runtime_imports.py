"""The runtime imports with torch absent and loads no backend library at import time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    import genedge.runtime as rt
    names = [m.name for m in pkgutil.iter_modules(rt.__path__)]
    for name in names:
        importlib.import_module("genedge.runtime." + name)
    rt.Sampler, rt.TextGenerator
    heavy = [m for m in ("torch", "onnxruntime", "tensorrt", "cuda", "cv2", "onnx") if sys.modules.get(m) is not None]
    print("modules", len(names), "heavy", heavy)
    assert not heavy, heavy
    """
)


def test_runtime_imports_without_torch_or_backends() -> None:
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert "heavy []" in res.stdout

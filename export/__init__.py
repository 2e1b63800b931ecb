"""genedge.export: checkpoint -> verified bundle (ONNX fp32/fp16/int8, TensorRT engines, Triton).

The public entry points are importable from here (``from genedge.export import
export_generator``); each is imported on first use, so nothing heavy loads with the package:

- ``export_bundle(ExportOptions) -> Path``: a genedge checkpoint (``bundle.py``)
- ``ExportOptions`` / ``validate_export_options`` / ``parse_profiles`` (``options.py``)
- ``export_generator(module, out, *, latent_dim, ...) -> Path``: your own PyTorch generator
  (``routes/byo.py``); ``export_onnx_file``: an ONNX one (``routes/source_onnx.py``);
  ``export_hf_folder``: a Hugging Face causal LM folder (``routes/text_source.py``)
- ``onnx_from_checkpoint(ckpt, out_dir) -> {graph: Path}`` (``routes/onnx_export.py``)
- ``fp16_from_onnx`` / ``int8_from_onnx`` / ``engine_from_onnx`` (GPU) /
  ``write_triton_repository`` (``stages/``)
- ``evaluate_bundle(path) -> dict``: ``genedge eval BUNDLE`` (``checks/evaluate.py``)

The rooms: ``routes/`` what comes in, ``stages/`` what goes out, ``rewrites/`` graph rewrites
for CPU kernels, ``checks/`` parity, gates and evaluation.
"""

import importlib
from typing import Any

_PUBLIC = {
    "export_bundle": "bundle",
    "ExportOptions": "options",
    "validate_export_options": "options",
    "parse_profiles": "options",
    "export_generator": "routes.byo",
    "export_onnx_file": "routes.source_onnx",
    "export_hf_folder": "routes.text_source",
    "onnx_from_checkpoint": "routes.onnx_export",
    "fp16_from_onnx": "stages.fp16",
    "int8_from_onnx": "stages.int8",
    "engine_from_onnx": "stages.tensorrt",
    "write_triton_repository": "stages.triton",
    "evaluate_bundle": "checks.evaluate",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:  # imported on first use: torch and onnx stay unimported until then
        return getattr(importlib.import_module(f"genedge.export.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'genedge.export' has no attribute {name!r}")

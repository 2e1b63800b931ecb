"""genedge.export: checkpoint -> verified bundle (ONNX fp32/fp16/int8, TensorRT engines, Triton).

Public entry points (import from their modules; nothing heavy is imported here):

- ``genedge.export.bundle.export_bundle(ExportOptions) -> Path``
- ``genedge.export.options.ExportOptions`` / ``validate_export_options`` / ``parse_profiles``
- ``genedge.export.routes.onnx_export.onnx_from_checkpoint(ckpt, out_dir) -> {graph: Path}``
- ``genedge.export.stages.fp16.fp16_from_onnx`` / ``genedge.export.stages.int8.int8_from_onnx``
- ``genedge.export.stages.tensorrt.engine_from_onnx`` (GPU) / ``genedge.export.stages.triton.write_triton_repository``
- ``genedge.export.checks.evaluate.evaluate_bundle(path) -> dict`` (``genedge eval BUNDLE``)
- ``genedge.export.export_generator(module, out, *, latent_dim, ...) -> Path``: your own PyTorch
  generator (``genedge.export.routes.byo``); ``genedge.export.routes.source_onnx.export_onnx_file``: an ONNX one
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "export_generator":  # imported on first use: torch stays unimported until then
        from genedge.export.routes.byo import export_generator

        return export_generator
    raise AttributeError(f"module 'genedge.export' has no attribute {name!r}")

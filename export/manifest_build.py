"""Assembling ``manifest.json`` from what an export built (docs/bundle.md).

``manifest_dict`` is the whole record: the model config, every graph's I/O, the artifact
records the stages appended, producer versions and the source record (with the artifact
key of every stage and the precisions skipped, and why).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from genedge import __version__
from genedge.export.context import BuildContext
from genedge.manifest import FORMAT, SCHEMA_VERSION


def model_section(kind: str, cfg: Any, output_format: str) -> dict[str, Any]:
    """The manifest ``model`` record of docs/bundle.md."""
    d = dataclasses.asdict(cfg)
    if kind == "ar":
        d.update(
            vocab_size=cfg.vocab_size,
            state_names=list(cfg.state_names),
            state_shape=[cfg.layers, "B", cfg.hidden],
        )
        return d
    d.update(output_format=output_format, latent={"distribution": "normal"})
    return d


def producer_versions() -> dict[str, str]:
    """Versions of genedge and every package that shaped the artifacts (installed ones only)."""
    from importlib import metadata

    out = {"genedge": __version__}
    for name in ("torch", "onnx", "onnxruntime", "onnxslim", "onnxconverter-common", "tensorrt"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def manifest_dict(ctx: BuildContext) -> dict[str, Any]:
    """The manifest of the bundle ``ctx`` built, as JSON-ready data."""
    source = dict(ctx.source, artifact_keys=ctx.keys, options_sha256=ctx.opts.artifact_key("all"))
    if ctx.skipped:
        source["skipped"] = dict(ctx.skipped)
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "kind": ctx.kind,
        "model": model_section(ctx.kind, ctx.cfg, ctx.opts.output_format),
        "graphs": {spec.name: spec.to_dict() for spec, _ in ctx.graphs},
        "artifacts": _artifacts(ctx),
        "producer": producer_versions(),
        "source": source,
    }


def _artifacts(ctx: BuildContext) -> list[dict[str, Any]]:
    """The artifact records; a reused fp32 record keeps a bf16 gate only when bf16 was asked
    this time (the record says what this export checked)."""
    if "bf16" in ctx.opts.precisions:
        return ctx.artifacts
    return [{k: v for k, v in a.items() if k != "inference_precisions"} for a in ctx.artifacts]

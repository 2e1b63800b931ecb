"""The state one export shares between its stages: options, the loaded generator, artifacts.

``BuildContext`` is frozen: its fields never change during an export. What the stages add
lives in its containers (``artifacts``, ``keys``, ``skipped``) and in its typed caches
(calibration and held-out feeds per graph, the fp32 runner per graph file stem, the fp32
task metrics per graph), each computed once per export.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from genedge.atomic import atomic_write_bytes
from genedge.export.checks.parity import onnx_runner
from genedge.export.options import ExportOptions
from genedge.export.routes.graph_spec import GraphSpec
from genedge.export.stages.calibration import (
    CalibrationSpec,
    image_calibration_feeds,
    image_feed,
    split_feed,
    text_calibration_feeds,
)
from genedge.imageio import to_uint8
from genedge.manifest import Manifest, artifact_record

if TYPE_CHECKING:
    from genedge.export.checks.parity import ArtifactRunner

Log = Callable[[str], None]
Feed = dict[str, np.ndarray]


def silent(msg: str) -> None:
    """A ``Log`` that drops every line."""


@dataclass(frozen=True)
class LoadedModel:
    """What the stages need from a generator, wherever it came from (checkpoint, user module,
    ONNX file): the model (calibration), its config (manifest ``model``), kind, every graph
    with its wrapper (main graph first), and the data it was trained on, if known."""

    model: Any  # torch module, or a source's own stand-in; read by calibration only
    cfg: Any  # the model config dataclass of ``kind``
    kind: str
    graphs: list[tuple[GraphSpec, Any]]  # (spec, wrapper with ``reference()``)
    data: str | None = None


@dataclass(frozen=True)
class BuildContext:
    """One export: what it builds from (fields) and what its stages add (containers, caches).

    ``tmp`` is the new bundle folder being filled; ``previous`` the bundle already at
    ``opts.out`` (None when there is none or it is not a valid bundle); ``source`` the
    manifest's source record; ``real`` reference data for task metrics (image kinds).
    """

    opts: ExportOptions
    tmp: Path
    loaded: LoadedModel
    source: dict[str, Any]
    previous: Manifest | None
    log: Log
    real: Any = None  # genedge.train.data.ImageData, or None
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # manifest records, in order
    keys: dict[str, str] = field(default_factory=dict)  # stage -> artifact key
    skipped: dict[str, str] = field(default_factory=dict)  # precision -> why no artifact
    calibration: dict[str, list[Feed]] = field(default_factory=dict)  # graph name -> feeds
    held_out: dict[str, list[Feed]] = field(default_factory=dict)  # graph name -> feeds
    runners: dict[str, ArtifactRunner] = field(default_factory=dict)  # file stem -> fp32 runner
    fp32_metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # graph name ->

    @property
    def model(self) -> Any:
        return self.loaded.model

    @property
    def cfg(self) -> Any:
        return self.loaded.cfg

    @property
    def kind(self) -> str:
        return self.loaded.kind

    @property
    def graphs(self) -> list[tuple[GraphSpec, Any]]:
        return self.loaded.graphs

    @property
    def main(self) -> GraphSpec:
        return self.graphs[0][0]


def add_artifact(ctx: BuildContext, file: str, **fields: Any) -> dict[str, Any]:
    """Hash ``ctx.tmp/file`` and append its manifest record."""
    rec = artifact_record(ctx.tmp, file, **fields).to_dict()
    ctx.artifacts.append(rec)
    return rec


def save_bundle_file(bundle: Path, name: str, data: bytes) -> Path:
    """Write one raw file into a bundle being built (engines, caches)."""
    atomic_write_bytes(bundle / name, data)
    return bundle / name


def calibration_spec(ctx: BuildContext) -> CalibrationSpec:
    o = ctx.opts
    return CalibrationSpec(o.calib_method, o.calib_samples, o.seed, o.truncation, o.calib_data)


def calibration_feeds(ctx: BuildContext, spec: GraphSpec) -> list[Feed]:
    """Calibration batches for ``spec`` (cached per graph)."""
    if spec.name in ctx.calibration:
        return ctx.calibration[spec.name]
    cs = calibration_spec(ctx)
    if spec.name == "step":
        feeds = text_calibration_feeds(ctx.model, ctx.cfg, cs)
    elif spec.name == "encoder":
        feeds = [{"image": _decoded_uint8(ctx, f)} for f in calibration_feeds(ctx, ctx.main)]
    else:
        feeds = image_calibration_feeds(ctx.model, ctx.cfg, ctx.kind, cs)
    ctx.calibration[spec.name] = feeds
    return feeds


def fp32_runner(ctx: BuildContext, spec: GraphSpec) -> ArtifactRunner:
    """The runtime's ORT CPU backend on ``spec``'s fp32 ONNX in ``ctx.tmp`` (opened once)."""
    if spec.stem not in ctx.runners:
        ctx.runners[spec.stem] = onnx_runner(ctx.tmp / f"{spec.stem}.onnx", spec)
    return ctx.runners[spec.stem]


def quality_feeds(ctx: BuildContext, spec: GraphSpec) -> list[Feed]:
    """Held-out inputs (``quality_seed``, never used for calibration), cached per graph."""
    if spec.name not in ctx.held_out:
        ctx.held_out[spec.name] = _quality_feeds(ctx, spec)
    return ctx.held_out[spec.name]


def _quality_feeds(ctx: BuildContext, spec: GraphSpec) -> list[Feed]:
    o = ctx.opts
    if spec.name == "step":
        cs = CalibrationSpec(o.calib_method, o.quality_samples, o.quality_seed, 1.0, o.calib_data)
        return text_calibration_feeds(ctx.model, ctx.cfg, cs, every_step=True)
    feed = image_feed(ctx.cfg, o.quality_samples, o.quality_seed, o.truncation)
    if spec.name == "encoder":
        return [{"image": _decoded_uint8(ctx, f)} for f in split_feed(feed, 100)]
    return split_feed(feed, 100)


def _decoded_uint8(ctx: BuildContext, feed: Feed) -> np.ndarray:
    img = fp32_runner(ctx, ctx.main).run(feed)["image"]
    return img if img.dtype == np.uint8 else to_uint8(img)

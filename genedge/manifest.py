"""The bundle manifest: the only thing the exporter and the runtime share (DESIGN.md section 4).

This module is the manifest's public face: it reads and writes ``manifest.json`` and
re-exports the records it is parsed into. The records live by concern beside it:
``genedge.manifest_model`` (the model section and the graphs' tensors),
``genedge.manifest_records`` (each artifact and its verification, engine, speed, calibration
and recipe records), ``genedge.manifest_source`` (where the bundle came from: ``source``,
``producer``), ``genedge.record_fields`` (how a record's fields are checked, parsed and
written: each key is spelled once, in its dataclass) and ``genedge.bundle_files`` (path
confinement and hashing, at the bottom of the core).

A bundle is a folder of raw artifact files plus ``manifest.json`` (written last). This
module reads and writes that JSON and performs every check that must pass before a
file is handed to a deserializer: known format and schema version, confined paths
(no ``..``, absolute paths, symlinks or hardlinks leaving the folder), no missing or
unlisted files, and the sha256 of each file. The JSON is parsed once into frozen records
(``ModelConfig``, ``GraphIO`` of ``TensorSpec``, ``Artifact`` with its ``Verification``,
``EngineRecord`` and ``Speed``) that every stage reads; a malformed or unknown field is
refused here, naming it. stdlib and numpy only.

Layout of ``manifest.json`` (schema_version 1)::

    {
      "format": "genedge.bundle", "schema_version": 1, "kind": "gan" | "vae" | "ar",
      "model":  {...model config: latent_dim, num_classes, image_size, channels, vocab...},
      "graphs": {"generator": {"inputs": [IO], "outputs": [IO]}, ...},
      "artifacts": [Artifact, ...],
      "producer": {"genedge": "...", "torch": "...", "onnx": "...", ...},
      "source": {"checkpoint": "name", "sha256": "..."}
    }
    IO       = {"name", "dtype", "shape": ["B", 16, 16, 1], "layout"?: "NHWC"}
    Artifact = {"file", "graph", "format": "onnx"|"onnx-data"|"engine"|"cache",
                "precision"?: "fp32"|"fp16"|"int8", "sha256", "size",
                "verification"?: {...}, "calibration"?: {...}, "engine"?: {...},
                "quality_approved"?: bool, "recipe"?: {...},
                "inference_precisions"?: {"bf16": {"backend": "openvino", "verification",
                                                   "quality_approved"}}}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from genedge.atomic import LOCK_NAME, TMP_PREFIX, atomic_write_text
from genedge.bundle_files import resolve_inside, sha256_file, shown, verify_file
from genedge.errors import CorruptArtifactError, IntegrityError, SecurityRefusal, printable
from genedge.manifest_model import (
    DTYPES,
    KINDS,
    LATENT_DISTRIBUTIONS,
    LAYOUTS,
    MAIN_GRAPH,
    MAX_CONTEXT,
    OUTPUT_FORMATS,
    TRANSFORMER_FAMILIES,
    TRANSFORMER_GRAPH,
    GraphIO,
    ModelConfig,
    TensorSpec,
    TransformerConfig,
    graph_io_from,
    model_config_from,
    tensor_spec_from,
    transformer_config_from,
)
from genedge.manifest_records import (
    ARTIFACT_FORMATS,
    ARTIFACT_PRECISIONS,
    INFERENCE_PRECISIONS,
    PRECISIONS,
    RUN_PRECISIONS,
    VERDICTS,
    WEIGHT_ONLY_PRECISIONS,
    Artifact,
    BatchSpeed,
    EngineRecord,
    InferencePrecision,
    InferencePrecisions,
    Speed,
    Verification,
    artifact_from,
    engine_record_from,
    inference_precisions_from,
    speed_from,
    verification_from,
)
from genedge.manifest_source import Producer, SourceRecord, producer_from, source_from
from genedge.onnx_guard import check_external_data
from genedge.readback import read_json
from genedge.record_fields import Dim, no_unknown, read_text

__all__ = [
    "ARTIFACT_FORMATS",
    "ARTIFACT_PRECISIONS",
    "DTYPES",
    "FORMAT",
    "INFERENCE_PRECISIONS",
    "KINDS",
    "LATENT_DISTRIBUTIONS",
    "LAYOUTS",
    "MAIN_GRAPH",
    "MANIFEST_NAME",
    "MAX_CONTEXT",
    "OUTPUT_FORMATS",
    "PRECISIONS",
    "RUN_PRECISIONS",
    "SCHEMA_VERSION",
    "TRANSFORMER_FAMILIES",
    "TRANSFORMER_GRAPH",
    "VERDICTS",
    "WEIGHT_ONLY_PRECISIONS",
    "Artifact",
    "BatchSpeed",
    "Dim",
    "EngineRecord",
    "GraphIO",
    "InferencePrecision",
    "InferencePrecisions",
    "Manifest",
    "ModelConfig",
    "Producer",
    "SourceRecord",
    "Speed",
    "TensorSpec",
    "TransformerConfig",
    "Verification",
    "artifact_record",
    "engine_record_from",
    "graph_io_from",
    "inference_precisions_from",
    "main_graph",
    "manifest_from_dict",
    "model_config_from",
    "read_manifest",
    "resolve_inside",
    "sha256_file",
    "speed_from",
    "tensor_spec_from",
    "transformer_config_from",
    "verification_from",
    "verify_file",
    "write_manifest",
]

FORMAT = "genedge.bundle"
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
# Files a bundle may hold without listing them: the manifest itself and export's lock.
_UNLISTED_OK = {MANIFEST_NAME, LOCK_NAME}
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def main_graph(manifest: Manifest) -> str:
    """The graph users run: ``decoder`` for a transformer language model, else ``MAIN_GRAPH``."""
    if manifest.model.transformer is not None:
        return TRANSFORMER_GRAPH
    return MAIN_GRAPH[manifest.kind]


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``root`` is the bundle folder it was read from."""

    root: Path
    kind: str
    model: ModelConfig
    graphs: Mapping[str, GraphIO]
    artifacts: tuple[Artifact, ...]
    producer: Producer
    source: SourceRecord
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.producer, dict):  # built in code: parsed as a manifest's would be
            object.__setattr__(self, "producer", producer_from(self.producer, "Manifest"))
        if isinstance(self.source, dict):
            object.__setattr__(self, "source", source_from(self.source, "Manifest"))

    def find(
        self, *, graph: str | None = None, format: str | None = None, precision: str | None = None
    ) -> list[Artifact]:
        """Artifacts matching every given field."""
        return [
            a
            for a in self.artifacts
            if (graph is None or a.graph == graph)
            and (format is None or a.format == format)
            and (precision is None or a.precision == precision)
        ]

    def path_of(self, artifact: Artifact, *, verify: bool = True) -> Path:
        """The artifact's path inside the bundle, its hash checked first when ``verify``.

        For an ONNX graph, ``verify`` also confines its external data to the bundle
        (``genedge.onnx_guard``) and checks the hash of every external file it names,
        so the path can go straight to ONNX Runtime, onnx or TensorRT's parser.
        """
        path = resolve_inside(self.root, artifact.file)
        if verify:
            verify_file(path, artifact.sha256, artifact.size)
            if artifact.format == "onnx":
                self._verify_external_data(artifact, path)
        return path

    def _verify_external_data(self, artifact: Artifact, model: Path) -> None:
        listed = {Path(a.file).as_posix(): a for a in self.artifacts}
        for rel in check_external_data(model, self.root):
            record = listed.get(rel)
            if record is None:
                raise IntegrityError(
                    f"ONNX graph '{printable(artifact.file)}' keeps tensor data in "
                    f"'{printable(rel)}', which the manifest does not list.",
                    hint="Re-export the bundle with `genedge export`.",
                )
            verify_file(resolve_inside(self.root, rel), record.sha256, record.size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": self.schema_version,
            "kind": self.kind,
            "model": self.model.to_dict(),
            "graphs": {name: g.to_dict() for name, g in self.graphs.items()},
            "artifacts": [a.to_dict() for a in self.artifacts],
            "producer": self.producer.to_dict(),
            "source": self.source.to_dict(),
        }


def _expect(cond: bool, where: Path, what: str) -> None:
    if not cond:
        raise CorruptArtifactError(
            f"Manifest '{where}' is malformed: {what}.",
            hint="Re-export the bundle with `genedge export`.",
        )


def _artifact_from(d: Any, where: Path) -> Artifact:
    file = d.get("file") if isinstance(d, dict) else None
    at = f"Manifest '{where}'" + (
        f", artifact '{printable(file)}'," if isinstance(file, str) else ""
    )
    return artifact_from(d, at)


def read_manifest(bundle: str | os.PathLike, *, check_files: bool = True) -> Manifest:
    """Read and validate ``BUNDLE/manifest.json``.

    Raises ``CorruptArtifactError`` (exit 2) for missing/garbage JSON and
    ``IntegrityError``/``SecurityRefusal`` (exit 4) for an unknown schema version,
    entries leaving the bundle, and missing or unlisted files. Hashes are checked
    later, per artifact, by ``Manifest.path_of`` right before a file is opened.
    """
    root = Path(bundle)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise CorruptArtifactError(
            f"Bundle '{root}' is not a folder.",
            hint="Pass the folder written by `genedge export CKPT --out BUNDLE`.",
        )
    if path.is_symlink():
        raise SecurityRefusal(f"'{path}' is a symlink; a bundle's manifest must be a plain file.")
    if not path.exists():
        raise CorruptArtifactError(
            f"Bundle '{root}' has no {MANIFEST_NAME}: it is incomplete or not a genedge bundle.",
            hint="Re-export it with `genedge export CKPT --out BUNDLE`.",
        )
    raw = read_json(path, what="Manifest", limit=_MAX_MANIFEST_BYTES)
    return manifest_from_dict(raw, root, check_files=check_files)


_TOP_LEVEL_KEYS = {"format", "schema_version", "kind", "model", "graphs", "artifacts"}
_TOP_LEVEL_KEYS |= {"producer", "source"}


def manifest_from_dict(raw: Any, root: str | os.PathLike, *, check_files: bool = True) -> Manifest:
    """Parse and check a manifest's JSON object into typed records (``root``: the bundle).

    Every field a stage reads is checked here, once: a missing, mistyped or unknown field
    raises ``CorruptArtifactError`` (exit 2) naming it; the rest is as ``read_manifest``.
    """
    root = Path(root)
    where = root / MANIFEST_NAME
    _expect(isinstance(raw, dict), where, "top level is not an object")
    if raw.get("format") != FORMAT:
        raise CorruptArtifactError(
            f"'{where}' has format {shown(raw.get('format'))}; expected '{FORMAT}'.",
            hint="This folder was not written by `genedge export`.",
        )
    version = raw.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:  # not True, not 1.0
        raise IntegrityError(
            f"Bundle schema_version {shown(version)} is not supported; this genedge reads version {SCHEMA_VERSION}.",
            hint="Upgrade genedge, or re-export the bundle with this version.",
        )
    kind = raw.get("kind")
    _expect(
        isinstance(kind, str) and kind in KINDS, where, f"kind {shown(kind)} is not one of {KINDS}"
    )
    _expect(
        isinstance(raw.get("model"), dict),
        where,
        "'model' (the model config) is missing or not an object",
    )
    for key in ("graphs", "producer", "source"):
        _expect(isinstance(raw.get(key, {}), dict), where, f"'{key}' is not an object")
    _expect(isinstance(raw.get("artifacts"), list), where, "'artifacts' is not a list")
    artifacts = tuple(_artifact_from(a, where) for a in raw["artifacts"])
    for a in artifacts:
        try:
            a.file.encode("utf-8")
        except UnicodeEncodeError:
            _expect(False, where, f"artifact file name {shown(a.file)} is not valid UTF-8 text")
    names = [os.path.normpath(a.file) for a in artifacts]  # "./model.onnx" is "model.onnx"
    _expect(len(set(names)) == len(names), where, "an artifact file is listed twice")
    for a in artifacts:
        resolve_inside(root, a.file)  # refuse escaping entries before anything is read
    at = f"Manifest '{where}'"
    no_unknown(at, "top-level", raw, _TOP_LEVEL_KEYS)
    model = model_config_from(raw["model"], kind, at)
    graphs = {
        read_text(at, "graph name", name): graph_io_from(g, at, f"graphs.{printable(name, 40)}")
        for name, g in raw.get("graphs", {}).items()
    }
    if check_files:
        _check_listing(root, artifacts)
    return Manifest(
        root=root.resolve(),
        kind=raw["kind"],
        model=model,
        graphs=MappingProxyType(graphs),
        artifacts=artifacts,
        producer=producer_from(raw.get("producer"), at),
        source=source_from(raw.get("source"), at),
    )


def _check_listing(root: Path, artifacts: tuple[Artifact, ...]) -> None:
    listed = {Path(a.file).as_posix() for a in artifacts}
    for a in artifacts:
        if not (root / a.file).is_file():
            raise IntegrityError(
                f"Bundle '{printable(root, None)}' lists '{printable(a.file)}' but the file is missing.",
                hint="Re-export the bundle with `genedge export`.",
            )
        size = (root / a.file).stat().st_size
        if size != a.size:  # truncated or appended to: refused before any hashing
            raise IntegrityError(
                f"Bundle file '{printable(a.file)}' has {size} bytes; the manifest records {a.size}.",
                hint="The file was modified or truncated; re-export the bundle.",
            )
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_dir() and not p.is_symlink():
            continue
        if rel in listed or rel in _UNLISTED_OK or p.name.startswith(TMP_PREFIX):
            continue
        raise IntegrityError(
            f"Bundle '{printable(root, None)}' holds '{printable(rel)}', which the manifest does not list.",
            hint="Remove the file, or re-export the bundle.",
        )


def write_manifest(bundle: str | os.PathLike, manifest: dict[str, Any] | Manifest) -> Path:
    """Write ``manifest.json`` atomically (the last file export writes)."""
    data = manifest.to_dict() if isinstance(manifest, Manifest) else manifest
    path = Path(bundle) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def artifact_record(bundle: str | os.PathLike, file: str, **fields: Any) -> Artifact:
    """Make an ``Artifact`` for a file already written in ``bundle`` (hash and size measured)."""
    path = Path(bundle) / file
    return Artifact(file=file, sha256=sha256_file(path), size=path.stat().st_size, **fields)

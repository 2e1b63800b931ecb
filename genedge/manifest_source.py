"""Where a bundle came from: the manifest's ``source`` and ``producer`` sections.

``SourceRecord`` types the keys genedge reads back (the checkpoint or module and its hash,
the training data, the artifact keys an unchanged re-export compares, the precisions
skipped and why); each export route adds its own keys, kept in ``extra``. ``Producer`` is
the version of every package that shaped the artifacts. Both are read like the JSON object
they came from too, and written back with its keys in their order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genedge.record_fields import (
    Check,
    Int,
    MappingRecord,
    Text,
    entry,
    extra_field,
    fail,
    read_object,
    record_from,
)


def _names(where: str, name: str, v: Any) -> Mapping[str, str] | None:
    """An object of name -> text (artifact keys per stage, skip reasons per precision)."""
    if v is None:
        return None
    v = read_object(where, name, v, optional=False)
    for k, x in v.items():
        if not isinstance(x, str):
            fail(where, f"{name}.{k}", x, "a string")
    return dict(v)


def _optional() -> Any:
    return entry(Text(optional=True), None, omit="none")


@dataclass(frozen=True, eq=False)
class SourceRecord(MappingRecord):
    """What was exported (docs/bundle.md ``source``): ``type`` (absent for a genedge
    checkpoint; ``checkpoint``, ``module``, ``onnx``, ``hf-folder``), the file and its
    ``sha256``, the ``artifact_keys`` of each stage and the precisions ``skipped``."""

    type: str | None = _optional()
    checkpoint: str | None = _optional()
    path: str | None = _optional()  # relative to the bundle
    sha256: str | None = _optional()
    step: int | None = entry(Int(optional=True), None, omit="none")
    data: str | None = _optional()  # the training data, for evaluation's reference
    module: str | None = _optional()  # FILE.py:NAME of a user's generator or model
    artifact_keys: Mapping[str, str] | None = entry(Check(_names, dict), None, omit="none")
    options_sha256: str | None = _optional()
    skipped: Mapping[str, str] | None = entry(Check(_names, dict), None, omit="none")
    extra: Mapping[str, Any] = extra_field()


def source_from(d: Any, where: str, name: str = "source") -> SourceRecord:
    return record_from(SourceRecord, {} if d is None else d, where, name, keep_order=True)


@dataclass(frozen=True, eq=False)
class Producer(MappingRecord):
    """Versions of genedge and of the packages that shaped the artifacts (installed ones)."""

    genedge: str | None = _optional()
    torch: str | None = _optional()
    onnx: str | None = _optional()
    onnxruntime: str | None = _optional()
    tensorrt: str | None = _optional()
    extra: Mapping[str, Any] = extra_field()


def producer_from(d: Any, where: str, name: str = "producer") -> Producer:
    return record_from(Producer, {} if d is None else d, where, name, keep_order=True)

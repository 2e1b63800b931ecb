"""Typed records read from and written to JSON, their keys spelled once: in the dataclass.

A record's field declares how its JSON value is checked and written (``entry(check, ...)``:
type, bounds, choices, whether it may be absent, when it is left out of the JSON); one
generic ``record_from`` parses a JSON object into the record, refusing a malformed field by
name (``CorruptArtifactError``, exit 2), and ``record_to_dict`` writes it back in field
order. A field named ``extra`` keeps the keys the record does not model; a record without
one refuses unknown keys. Cross-field rules go in the record's ``check(where, name)``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NoReturn

from genedge.bundle_files import shown
from genedge.errors import CorruptArtifactError, printable

Dim = int | str  # a fixed size, or a symbolic one such as "B"
HINT = "Re-export the bundle with `genedge export`."


# ---------------------------------------------------------------- value checks
def fail(where: str, name: str, value: Any, expected: str) -> NoReturn:
    raise CorruptArtifactError(
        f"{where} is malformed: {name} is {shown(value)}; expected {expected}.", hint=HINT
    )


def read_int(where: str, name: str, v: Any, *, lo: int = 0, optional: bool = False) -> Any:
    if v is None and optional:
        return None
    if type(v) is not int or v < lo:  # not True, not 1.0
        fail(where, name, v, f"an integer >= {lo}")
    return v


def read_num(where: str, name: str, v: Any) -> float | None:
    """An optional number (inf and nan included: PSNR of identical images is inf)."""
    if v is None:
        return None
    if type(v) not in (int, float):
        fail(where, name, v, "a number")
    return float(v)


def read_text(
    where: str, name: str, v: Any, choices: tuple[str, ...] | None = None, *, optional: bool = False
) -> Any:
    if v is None and optional:
        return None
    if not isinstance(v, str) or (choices is not None and v not in choices):
        fail(where, name, v, f"one of {choices}" if choices else "a string")
    return v


def read_bool(where: str, name: str, v: Any, default: bool = False) -> bool:
    if v is None:
        return default
    if type(v) is not bool:
        fail(where, name, v, "true or false")
    return v


def read_object(where: str, name: str, v: Any, *, optional: bool = True) -> dict[str, Any]:
    if v is None and optional:
        return {}
    if not isinstance(v, dict):
        fail(where, name, v, "an object")
    return v


def no_unknown(where: str, name: str, d: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(map(str, set(d) - known))
    if unknown:
        fail(
            where,
            f"{name} key {printable(unknown[0], 40)!r}",
            d.get(unknown[0]),
            f"only {sorted(known)}",
        )


def extra_of(d: dict[str, Any], known: set[str]) -> Mapping[str, Any]:
    return MappingProxyType({k: v for k, v in d.items() if k not in known})


def read_dims(where: str, name: str, v: Any) -> tuple[Dim, ...]:
    if not isinstance(v, list):
        fail(where, name, v, 'a list of sizes >= 1 or symbols such as "B"')
    for d in v:
        if not ((type(d) is int and d >= 1) or (isinstance(d, str) and d.isidentifier())):
            fail(where, name, v, 'a list of sizes >= 1 or symbols such as "B"')
    return tuple(v)


# ---------------------------------------------------------------- field checks
@dataclass(frozen=True)
class Check:
    """How one field's JSON value is read (``read(where, name, value)``) and written."""

    read: Callable[[str, str, Any], Any]
    write: Callable[[Any], Any] = lambda v: v


def Int(lo: int = 0, hi: int | None = None, *, optional: bool = False) -> Check:
    def read(where: str, name: str, v: Any) -> Any:
        v = read_int(where, name, v, lo=lo, optional=optional)
        if hi is not None and v is not None and v > hi:
            fail(where, name, v, f"at most {hi}")
        return v

    return Check(read)


def Num() -> Check:
    return Check(read_num)


def Text(
    choices: tuple[str, ...] | None = None, *, pattern: str = "", like: str = "", optional=False
) -> Check:
    """A string, one of ``choices`` or matching ``pattern`` (``like`` shows an example)."""

    def read(where: str, name: str, v: Any) -> Any:
        given = not (v is None and optional)
        if pattern and given and (not isinstance(v, str) or not re.fullmatch(pattern, v)):
            fail(where, name, v, like or f"a string matching {pattern}")
        return read_text(where, name, v, choices, optional=optional)

    return Check(read)


def Bool() -> Check:
    return Check(read_bool)


def Items(kind: type, what: str) -> Check:
    """A list of ``kind`` (``int``: not bool), kept as a tuple and written as a list."""

    def read(where: str, name: str, v: Any) -> tuple[Any, ...]:
        if not isinstance(v, list) or any(type(x) is not kind for x in v):
            fail(where, name, v, what)
        return tuple(v)

    return Check(read, list)


def NumberMap() -> Check:
    """An object of name -> optional number (task metrics)."""

    def read(where: str, name: str, v: Any) -> Mapping[str, float | None]:
        v = read_object(where, name, v)
        return MappingProxyType({str(k): read_num(where, f"{name}.{k}", x) for k, x in v.items()})

    return Check(read, dict)


def Nested(cls: type) -> Check:
    """A record inside a record, read by ``record_from``."""
    return Check(lambda where, name, v: record_from(cls, v, where, name), record_to_dict)


def entry(check: Check, default: Any = dataclasses.MISSING, *, omit: str = "never", **kw) -> Any:
    """A record field with its JSON check. ``omit``: ``"none"`` leaves a None value out of the
    JSON, ``"empty"`` also an empty list or object, ``"never"`` writes it always."""
    meta = {"check": check, "omit": omit}
    if isinstance(default, (dict, MappingProxyType)):
        frozen = MappingProxyType(dict(default))
        return field(default_factory=lambda: frozen, metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


EMPTY: Mapping[str, Any] = MappingProxyType({})


def extra_field() -> Any:
    """The ``extra`` field: the JSON keys a record does not model, kept as read."""
    return field(default_factory=lambda: EMPTY)


# ---------------------------------------------------------------- generic parse and write
def _entries(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "check" in f.metadata]


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def record_from(
    cls: type, d: Any, where: str, name: str, *, unknown: str = "refuse", keep_order: bool = False
) -> Any:
    """Parse the JSON object ``d`` into the record ``cls``, each field by its check.

    An absent key takes the field's default (a field without one is checked as None, so a
    required field is refused by name). Keys the record does not model go to its ``extra``
    field, or are refused (``unknown="refuse"``) or skipped (``"ignore"``) without one.
    ``keep_order``: ``record_to_dict`` writes the keys back in the order they were read.
    """
    d = read_object(where, name, d, optional=False)
    fields = _entries(cls)
    known = {f.name for f in fields}
    has_extra = "extra" in {f.name for f in dataclasses.fields(cls)}
    if not has_extra and unknown == "refuse":
        no_unknown(where, name, d, known)
    values = {}
    for f in fields:
        if f.name not in d and _has_default(f):
            continue
        values[f.name] = f.metadata["check"].read(where, f"{name}.{f.name}", d.get(f.name))
    if has_extra:
        values["extra"] = extra_of(d, known)
    record = cls(**values)
    if keep_order:
        object.__setattr__(record, "_json_order", tuple(d))
    if hasattr(record, "check"):
        record.check(where, name)
    return record


def record_to_dict(record: Any) -> dict[str, Any]:
    """The record as JSON-ready data: its fields in order, then its ``extra`` keys."""
    d: dict[str, Any] = {}
    for f in _entries(type(record)):
        v = getattr(record, f.name)
        omit = f.metadata["omit"]
        if v is None and omit != "never":
            continue
        if omit == "empty" and isinstance(v, (tuple, list, Mapping)) and not v:
            continue
        d[f.name] = None if v is None else f.metadata["check"].write(v)
    d.update(getattr(record, "extra", EMPTY))
    order = getattr(record, "_json_order", None)
    if order is not None:  # read from a file: its keys first, in the file's order
        d = {**{k: d[k] for k in order if k in d}, **d}
    return d


class MappingRecord(Mapping):
    """A record that also reads like the JSON object it came from (``rec["sha256"]``,
    ``rec.get("data")``, ``dict(rec)``), for sections whose keys vary by producer. Declare
    its dataclass with ``eq=False`` so that it compares equal to that object."""

    def to_dict(self) -> dict[str, Any]:
        return record_to_dict(self)

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

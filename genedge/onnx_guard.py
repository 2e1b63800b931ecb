"""Confine an ONNX model's external data to its bundle before any runtime opens it.

ONNX tensors may keep their bytes in another file named by ``external_data`` (a
``location`` entry). A hostile model can point that at ``../../home/u/.ssh/id_rsa``, an
absolute path, a symlink or a hardlink, and a runtime would read the secret into a
weight that the attacker then reads back through the graph's outputs. ONNX and ONNX
Runtime added checks over the years (docs/security.md lists the versions), but those
checks have been bypassed several times, so genedge checks first, itself, with no
dependency: this module reads the protobuf wire format directly (the runtime has no
``onnx`` package), walks every place a TensorProto can live, and refuses a bad location
before any external file is opened. Only ``lstat``/``stat`` touch the external files.

Field numbers (onnx/onnx.proto, proto2)::

    ModelProto:        graph=7 (GraphProto), training_info=20, functions=25
    TrainingInfoProto: initialization=1, algorithm=2 (GraphProto)
    FunctionProto:     node=7 (NodeProto), attribute_proto=11 (AttributeProto)
    GraphProto:        node=1, initializer=5 (TensorProto), sparse_initializer=15
    NodeProto:         attribute=5 (AttributeProto)
    AttributeProto:    t=5, g=6, tensors=10, graphs=11, sparse_tensor=22, sparse_tensors=23
    SparseTensorProto: values=1, indices=2 (TensorProto)
    TensorProto:       external_data=13 (StringStringEntryProto key=1, value=2)

Protobuf merges repeated occurrences of a singular message field, so every occurrence
is walked; a repeated ``key``/``value`` inside one entry is judged on every value.
"""

from __future__ import annotations

import os
from pathlib import Path

from genedge.bundle_files import resolve_inside
from genedge.errors import CorruptArtifactError, IntegrityError, SecurityRefusal, printable
from genedge.readback import read_bytes

MAX_MODEL_BYTES = 2**31 - 1  # protobuf's own hard limit for one message
MAX_DEPTH = 64  # nested messages (graphs inside If/Loop bodies); protobuf's default is 100
MAX_LOCATION_CHARS = 4096

_MODEL, _TRAINING, _FUNCTION, _GRAPH, _NODE, _ATTR, _SPARSE, _TENSOR, _ENTRY = range(9)
# message type -> {field number: message type of that (length-delimited) field}
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 20: _TRAINING, 25: _FUNCTION},
    _TRAINING: {1: _GRAPH, 2: _GRAPH},
    _FUNCTION: {7: _NODE, 11: _ATTR},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _NODE: {5: _ATTR},
    _ATTR: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
    _TENSOR: {13: _ENTRY},
    _ENTRY: {},
}


class _Malformed(Exception):
    """Internal: the wire format is broken at ``offset``; becomes CorruptArtifactError."""

    def __init__(self, what: str, offset: int) -> None:
        super().__init__(what)
        self.what = what
        self.offset = offset


def _shown(text: str, limit: int = 120) -> str:
    """A location as it may appear in a message: quoted, escaped, bounded."""
    return f"'{printable(text, limit)}'"


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    for i in range(pos, min(pos + 10, end)):
        byte = buf[i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i + 1
        shift += 7
    raise _Malformed("a varint runs past its message or is longer than 10 bytes", pos)


def _fields(buf: bytes, start: int, end: int):
    """Yield ``(field number, wire type, payload start, payload end)`` for one message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0", pos)
        if wire == 0:
            _, nxt = _varint(buf, pos, end)
        elif wire == 1:
            nxt = pos + 8
        elif wire == 5:
            nxt = pos + 4
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            nxt = pos + length
        else:  # groups (3, 4) are not used by ONNX; 6 and 7 do not exist
            raise _Malformed(f"unsupported wire type {wire}", pos)
        if nxt > end:
            raise _Malformed("a field runs past the end of its message", pos)
        yield number, wire, pos, nxt
        pos = nxt


def _entry_locations(buf: bytes, start: int, end: int) -> list[bytes]:
    """Values of a StringStringEntryProto whose key is (or was, before a repeat) "location";
    an entry with that key and no value is the empty location, as protobuf reads it."""
    keys: list[bytes] = []
    values: list[bytes] = []
    for number, wire, a, b in _fields(buf, start, end):
        if wire == 2 and number in (1, 2):
            (keys if number == 1 else values).append(bytes(buf[a:b]))
    return (values or [b""]) if b"location" in keys else []


def external_locations(buf: bytes, size: int) -> list[bytes]:
    """Every external-data ``location`` in a serialized ModelProto, in file order.

    Raises ``_Malformed`` for broken wire format, a nesting deeper than ``MAX_DEPTH``
    or a model with no graph.
    """
    found: list[bytes] = []
    has_graph = False
    stack: list[tuple[int, int, int, int]] = [(_MODEL, 0, size, 0)]  # (type, start, end, depth)
    while stack:
        kind, start, end, depth = stack.pop()
        if kind == _ENTRY:
            found.extend(_entry_locations(buf, start, end))
            continue
        children = _CHILDREN[kind]
        nested = []
        for number, wire, a, b in _fields(buf, start, end):
            child = children.get(number)
            if child is None:
                continue
            if wire != 2:
                raise _Malformed(f"field {number} should be a message but has wire type {wire}", a)
            if kind == _MODEL and child == _GRAPH:
                has_graph = True
            if depth + 1 > MAX_DEPTH:
                raise _Malformed(f"messages nest deeper than {MAX_DEPTH} levels", a)
            nested.append((child, a, b, depth + 1))
        stack.extend(reversed(nested))  # depth-first, in file order
    if not has_graph:
        raise _Malformed("the model has no graph", 0)
    return found


def _read_locations(model: Path) -> list[bytes]:
    size = model.stat().st_size
    if size == 0:
        raise CorruptArtifactError(
            f"ONNX model '{model}' is empty (0 bytes).",
            hint="The file is truncated; re-export the bundle with `genedge export`.",
        )
    if size > MAX_MODEL_BYTES:
        raise CorruptArtifactError(
            f"ONNX model '{model}' has {size} bytes, more than protobuf's 2 GiB limit.",
            hint="Store large weights as external data (`*.onnx.data`).",
        )
    # read(), not mmap: a file truncated by someone else while mapped would SIGBUS us; and
    # no more than the file holds (a read of MAX_MODEL_BYTES would reserve 2 GiB first)
    buf = read_bytes(model, what="ONNX model", limit=MAX_MODEL_BYTES, follow_symlinks=True)
    try:
        return external_locations(buf, len(buf))
    except _Malformed as e:
        raise CorruptArtifactError(
            f"ONNX model '{model}' is not a valid ONNX protobuf: {e.what} (byte {e.offset}).",
            hint="The file is truncated or corrupt; re-export the bundle with `genedge export`.",
        ) from None


def _check_location(raw: bytes, model_rel: Path, root: Path, model: Path) -> str:
    """Refuse one location (exit 4) unless it names a plain file inside the bundle."""
    try:
        location = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecurityRefusal(
            f"ONNX model '{model}' names an external data file that is not valid UTF-8; refused."
        ) from None
    where = f"ONNX model '{model}' keeps tensor data in {_shown(location)}"
    if not location or len(location) > MAX_LOCATION_CHARS or "\x00" in location:
        raise SecurityRefusal(f"{where}: not a usable file name; refused.")
    if location.startswith(("/", "\\")) or os.path.isabs(location) or ":" in location.split("/")[0]:
        raise SecurityRefusal(
            f"{where}: an absolute path; external data must stay inside the bundle."
        )
    if ".." in location.replace("\\", "/").split("/"):
        raise SecurityRefusal(
            f"{where}: a path with '..'; external data must stay inside the bundle."
        )
    rel = (model_rel.parent / location).as_posix()
    try:
        path = resolve_inside(root, rel)
    except SecurityRefusal as e:
        raise SecurityRefusal(f"{where}: {e.message}", hint=e.hint) from None
    if not path.is_file():
        raise IntegrityError(
            f"{where}, which is missing or not a regular file.",
            hint="Re-export the bundle with `genedge export`.",
        )
    return rel


def check_external_data(model_path: str | os.PathLike, bundle_root: str | os.PathLike) -> list[str]:
    """Check every external-data location of an ONNX model; return the files (relative to root).

    Call this before ``onnx.load``/``onnxruntime.InferenceSession``/TensorRT's parser
    open ``model_path`` by path (a model loaded from bytes resolves its locations against
    the working directory, so always load by path). Nothing but the model is read.

    Raises ``SecurityRefusal`` (exit 4) for a model outside ``bundle_root`` or a location
    that is absolute, contains ``..``, is or passes through a symlink, is hardlinked or
    resolves outside the bundle; ``IntegrityError`` (exit 4) for a missing external file;
    ``CorruptArtifactError`` (exit 2) for a file that is not a valid ONNX protobuf.
    """
    root = Path(os.path.abspath(bundle_root))
    model = Path(model_path)
    try:  # lexical, so that resolve_inside still sees every symlink on the way
        model_rel = Path(os.path.relpath(os.path.abspath(model), root))
    except ValueError:  # another drive on Windows
        model_rel = Path("..")
    if model_rel.parts[:1] == ("..",) or model_rel.is_absolute():
        raise SecurityRefusal(f"ONNX model '{model}' is not inside the bundle '{root}'; refused.")
    checked = resolve_inside(root, model_rel.as_posix())
    if not checked.is_file():
        raise CorruptArtifactError(f"ONNX model '{model}' does not exist or is not a file.")
    try:
        locations = _read_locations(checked)
    except OSError as e:
        raise CorruptArtifactError(
            f"ONNX model '{model}' could not be read ({e.strerror})."
        ) from None
    files: list[str] = []
    for raw in locations:
        rel = _check_location(raw, model_rel, root, model)
        if rel not in files:
            files.append(rel)
    return files

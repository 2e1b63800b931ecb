"""The bundle manifest: the only thing the exporter and the runtime share (DESIGN.md section 4).

A bundle is a folder of raw artifact files plus ``manifest.json`` (written last). This
module reads and writes that JSON and performs every check that must pass before a
file is handed to a deserializer: known format and schema version, confined paths
(no ``..``, absolute paths, symlinks or hardlinks leaving the folder), no missing or
unlisted files, and the sha256 of each file. stdlib only.

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
                "quality_approved"?: bool, "recipe"?: {...}}
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genedge.atomic import TMP_PREFIX, atomic_write_text
from genedge.errors import CorruptArtifactError, IntegrityError, SecurityRefusal, printable

FORMAT = "genedge.bundle"
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
KINDS = ("gan", "vae", "ar")
# the graph each kind's users run: the image graph of gan/vae, the text model's step
MAIN_GRAPH = {"gan": "generator", "vae": "decoder", "ar": "step"}
PRECISIONS = ("fp32", "fp16", "int8")
ARTIFACT_FORMATS = ("onnx", "onnx-data", "engine", "cache")
# Files a bundle may hold without listing them: the manifest itself and export's lock.
_UNLISTED_OK = {MANIFEST_NAME, ".genedge.lock"}
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_MAX_NAME_BYTES = 255  # NAME_MAX on Linux, macOS and Windows file systems
_MAX_ENTRY_CHARS = 1024


@dataclass(frozen=True)
class Artifact:
    """One file of a bundle, as the manifest records it."""

    file: str
    graph: str
    format: str
    sha256: str
    size: int
    precision: str | None = None
    verification: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    engine: dict[str, Any] | None = None
    quality_approved: bool = False
    recipe: dict[str, Any] | None = None
    speed: dict[str, Any] | None = None  # CPU latency measured at export (docs/bundle.md)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if v is not None}
        return d


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``root`` is the bundle folder it was read from."""

    root: Path
    kind: str
    model: dict[str, Any]
    graphs: dict[str, Any]
    artifacts: tuple[Artifact, ...]
    producer: dict[str, Any]
    source: dict[str, Any]
    schema_version: int = SCHEMA_VERSION

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
        from genedge.onnx_guard import check_external_data  # imports this module

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
            "model": self.model,
            "graphs": self.graphs,
            "artifacts": [a.to_dict() for a in self.artifacts],
            "producer": self.producer,
            "source": self.source,
        }


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _shown(value: Any, limit: int = 80) -> str:
    """A value from a file, as a message may show it: quoted, escaped, bounded."""
    return printable(repr(value), limit)


def resolve_inside(root: str | os.PathLike, relpath: str) -> Path:
    """Resolve ``relpath`` inside ``root`` or refuse (exit 4) before anything is read.

    Refused: absolute paths, ``..`` components, symlinks anywhere on the way, files with
    more than one hard link (a hardlink can point at a secret outside the folder), and
    anything whose resolved path leaves ``root``. A name longer than file systems allow
    is corrupt (exit 2).
    """
    root = Path(root).resolve()
    if not isinstance(relpath, str) or not relpath or "\x00" in relpath or not Path(relpath).parts:
        raise SecurityRefusal(f"Bundle entry {_shown(relpath)} is not a valid relative file name.")
    rel = Path(relpath)
    shown = _shown(relpath)
    if rel.is_absolute() or relpath.startswith(("/", "\\")) or ":" in rel.parts[0]:
        raise SecurityRefusal(
            f"Bundle entry {shown} is an absolute path; bundle files must stay inside the bundle."
        )
    if any(part in ("..", "") for part in rel.parts) or "\\" in relpath:
        raise SecurityRefusal(f"Bundle entry {shown} leaves the bundle folder ('..').")
    if len(relpath) > _MAX_ENTRY_CHARS or any(
        len(part.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES for part in rel.parts
    ):
        raise CorruptArtifactError(
            f"Bundle entry {shown} ({len(relpath)} characters) is longer than a file name may be: "
            f"at most {_MAX_NAME_BYTES} bytes per folder or file name, {_MAX_ENTRY_CHARS} in all.",
            hint="Re-export the bundle with `genedge export`.",
        )
    try:
        return _walk_inside(root, rel, shown)
    except OSError as e:  # e.g. ENAMETOOLONG on a file system with shorter names
        raise CorruptArtifactError(
            f"Bundle entry {shown} cannot be looked up ({printable(e.strerror)}).",
            hint="Re-export the bundle with `genedge export`.",
        ) from None


def _walk_inside(root: Path, rel: Path, shown: str) -> Path:
    cur = root
    for part in rel.parts:
        cur = cur / part
        if cur.is_symlink():
            raise SecurityRefusal(
                f"Bundle entry {shown} is or passes through a symlink; symlinks are refused."
            )
    if cur.exists():
        st = cur.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            raise SecurityRefusal(
                f"Bundle entry {shown} has {st.st_nlink} hard links; hardlinked files are refused."
            )
    resolved = cur.resolve()
    if root != resolved and root not in resolved.parents:
        raise SecurityRefusal(f"Bundle entry {shown} resolves outside the bundle.")
    return resolved


def verify_file(path: Path, sha256: str, size: int | None = None) -> None:
    """Refuse (exit 4) a file whose size or sha256 differs from the manifest's record."""
    name = printable(path.name)
    if not path.is_file():
        raise IntegrityError(
            f"Bundle file '{name}' is listed in the manifest but missing.",
            hint="Re-export the bundle with `genedge export`.",
        )
    if size is not None and path.stat().st_size != size:
        raise IntegrityError(
            f"Bundle file '{name}' has {path.stat().st_size} bytes; the manifest records {size}.",
            hint="The file was modified or truncated; re-export the bundle.",
        )
    actual = sha256_file(path)
    if actual != sha256:
        raise IntegrityError(
            f"Bundle file '{name}' fails its hash: sha256 {actual[:16]}..., "
            f"manifest records {printable(sha256, 16)}.",
            hint="The file was modified after export; re-export the bundle.",
        )


def _expect(cond: bool, where: Path, what: str) -> None:
    if not cond:
        raise CorruptArtifactError(
            f"Manifest '{where}' is malformed: {what}.",
            hint="Re-export the bundle with `genedge export`.",
        )


def _artifact_from(d: Any, where: Path) -> Artifact:
    _expect(isinstance(d, dict), where, "an artifact entry is not an object")
    for key, typ in (
        ("file", str),
        ("graph", str),
        ("format", str),
        ("sha256", str),
        ("size", int),
    ):
        _expect(
            isinstance(d.get(key), typ),
            where,
            f"artifact field '{key}' missing or not {typ.__name__}",
        )
    _expect(
        d["format"] in ARTIFACT_FORMATS, where, f"unknown artifact format {_shown(d['format'])}"
    )
    prec = d.get("precision")
    _expect(
        prec is None or (isinstance(prec, str) and prec in PRECISIONS),
        where,
        f"unknown precision {_shown(prec)}",
    )
    for key in ("verification", "calibration", "engine", "recipe", "speed"):
        _expect(d.get(key) is None or isinstance(d[key], dict), where, f"'{key}' is not an object")
    known = set(Artifact.__dataclass_fields__)
    return Artifact(**{k: v for k, v in d.items() if k in known})


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
    if not path.is_file():
        raise CorruptArtifactError(
            f"Bundle '{root}' has no {MANIFEST_NAME}: it is incomplete or not a genedge bundle.",
            hint="Re-export it with `genedge export CKPT --out BUNDLE`.",
        )
    if path.is_symlink():
        raise SecurityRefusal(f"'{path}' is a symlink; a bundle's manifest must be a plain file.")
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise CorruptArtifactError(
            f"Manifest '{path}' is larger than 16 MiB; refusing to parse it."
        )
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except (
        UnicodeDecodeError,
        json.JSONDecodeError,
        RecursionError,
        ValueError,
    ) as e:  # ValueError: 5000-digit ints
        raise CorruptArtifactError(
            f"Manifest '{path}' is not valid JSON ({type(e).__name__}).",
            hint="The file is truncated or corrupt; re-export the bundle.",
        ) from None
    return manifest_from_dict(raw, root, check_files=check_files)


def manifest_from_dict(raw: Any, root: str | os.PathLike, *, check_files: bool = True) -> Manifest:
    root = Path(root)
    where = root / MANIFEST_NAME
    _expect(isinstance(raw, dict), where, "top level is not an object")
    if raw.get("format") != FORMAT:
        raise CorruptArtifactError(
            f"'{where}' has format {_shown(raw.get('format'))}; expected '{FORMAT}'.",
            hint="This folder was not written by `genedge export`.",
        )
    version = raw.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:  # not True, not 1.0
        raise IntegrityError(
            f"Bundle schema_version {_shown(version)} is not supported; this genedge reads version {SCHEMA_VERSION}.",
            hint="Upgrade genedge, or re-export the bundle with this version.",
        )
    kind = raw.get("kind")
    _expect(
        isinstance(kind, str) and kind in KINDS, where, f"kind {_shown(kind)} is not one of {KINDS}"
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
            _expect(False, where, f"artifact file name {_shown(a.file)} is not valid UTF-8 text")
    names = [os.path.normpath(a.file) for a in artifacts]  # "./model.onnx" is "model.onnx"
    _expect(len(set(names)) == len(names), where, "an artifact file is listed twice")
    for a in artifacts:
        resolve_inside(root, a.file)  # refuse escaping entries before anything is read
    if check_files:
        _check_listing(root, artifacts)
    return Manifest(
        root=root.resolve(),
        kind=raw["kind"],
        model=raw.get("model", {}),
        graphs=raw.get("graphs", {}),
        artifacts=artifacts,
        producer=raw.get("producer", {}),
        source=raw.get("source", {}),
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

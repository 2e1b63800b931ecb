"""Bundle manifest checks: what read_manifest, Manifest.path_of and resolve_inside refuse."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from genedge.errors import CorruptArtifactError, IntegrityError, SecurityRefusal
from genedge.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    artifact_record,
    read_manifest,
    resolve_inside,
    write_manifest,
)

SECRET = "SECRET-d41d8cd98f-never-shown"


def _manifest(bundle: Path, artifacts: list[dict]) -> dict:
    return {
        "format": "genedge.bundle",
        "schema_version": SCHEMA_VERSION,
        "kind": "gan",
        "model": {"latent_dim": 8},
        "graphs": {},
        "artifacts": artifacts,
        "producer": {"genedge": "test"},
        "source": {},
    }


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    b = tmp_path / "bundle"
    (b / "sub").mkdir(parents=True)
    (b / "model.onnx").write_bytes(b"onnx-bytes" * 100)
    (b / "sub" / "model.onnx.data").write_bytes(b"\x01\x02" * 300)
    records = [
        artifact_record(
            b, "model.onnx", graph="generator", format="onnx", precision="fp32"
        ).to_dict(),
        artifact_record(b, "sub/model.onnx.data", graph="generator", format="onnx-data").to_dict(),
    ]
    write_manifest(b, _manifest(b, records))
    return b


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    p = tmp_path / "secret.txt"
    p.write_text(SECRET)
    return p


def _edit(bundle: Path, change) -> None:
    raw = json.loads((bundle / MANIFEST_NAME).read_text())
    change(raw)
    (bundle / MANIFEST_NAME).write_text(json.dumps(raw))


def _refused(bundle: Path, cls=IntegrityError, *, match: str | None = None) -> Exception:
    with pytest.raises(cls, match=match) as info:
        m = read_manifest(bundle)
        for a in m.artifacts:
            m.path_of(a)
    assert info.value.exit_code == (2 if issubclass(cls, CorruptArtifactError) else 4)
    assert SECRET not in str(info.value)
    return info.value


def test_a_valid_bundle_reads_and_verifies(bundle):
    m = read_manifest(bundle)
    assert [a.file for a in m.artifacts] == ["model.onnx", "sub/model.onnx.data"]
    assert m.path_of(m.artifacts[1]) == (bundle / "sub" / "model.onnx.data").resolve()
    assert m.find(format="onnx", precision="fp32") == [m.artifacts[0]]


@pytest.mark.parametrize("version", [0, 2, 99, "1", 1.0, True, None, [1]])
def test_an_unknown_schema_version_is_refused(bundle, version):
    _edit(bundle, lambda raw: raw.__setitem__("schema_version", version))
    e = _refused(bundle, IntegrityError, match="schema_version")
    assert "Upgrade genedge" in str(e)


def test_a_missing_schema_version_is_refused(bundle):
    _edit(bundle, lambda raw: raw.pop("schema_version"))
    _refused(bundle, IntegrityError, match="schema_version")


def test_a_missing_file_is_refused(bundle):
    (bundle / "sub" / "model.onnx.data").unlink()
    _refused(bundle, IntegrityError, match="missing")


@pytest.mark.parametrize("extra", ["extra.bin", "sub/extra.onnx", "model.onnx.bak"])
def test_an_unlisted_file_is_refused(bundle, extra):
    (bundle / extra).write_bytes(b"x")
    _refused(bundle, IntegrityError, match="does not list")


def test_an_unlisted_symlink_is_refused(bundle, secret):
    os.symlink(secret, bundle / "look.txt")
    _refused(bundle, IntegrityError, match="does not list")


def test_leftover_temps_and_the_export_lock_are_not_unlisted_files(bundle):
    (bundle / ".genedge-tmp-123-x").write_bytes(b"x")
    (bundle / ".genedge.lock").write_bytes(b"")
    assert len(read_manifest(bundle).artifacts) == 2


@pytest.mark.parametrize(
    "entry",
    [
        "../secret.txt",
        "sub/../../secret.txt",
        "sub/../model.onnx",
        "..",
        "a/..",
        "..\\secret.txt",
        "sub\\..\\..\\secret.txt",
    ],
)
def test_entries_with_dotdot_are_refused(bundle, secret, entry):
    _edit(bundle, lambda raw: raw["artifacts"][0].__setitem__("file", entry))
    _refused(bundle, SecurityRefusal)


@pytest.mark.parametrize(
    "entry", ["/etc/passwd", "//etc/passwd", "\\etc\\passwd", "C:/x", "C:x", "c:\\x"]
)
def test_absolute_entries_are_refused(bundle, entry):
    _edit(bundle, lambda raw: raw["artifacts"][0].__setitem__("file", entry))
    _refused(bundle, SecurityRefusal)


def test_an_absolute_entry_to_the_secret_is_refused(bundle, secret):
    _edit(bundle, lambda raw: raw["artifacts"][0].__setitem__("file", str(secret)))
    _refused(bundle, SecurityRefusal, match="absolute")


@pytest.mark.parametrize("entry", ["", ".", "./", "a\x00b"])
def test_empty_and_nul_entries_are_refused(bundle, entry):
    _edit(bundle, lambda raw: raw["artifacts"][0].__setitem__("file", entry))
    _refused(bundle, SecurityRefusal)


def test_a_symlinked_entry_is_refused_before_it_is_read(bundle, secret):
    (bundle / "model.onnx").unlink()
    os.symlink(secret, bundle / "model.onnx")
    _refused(bundle, SecurityRefusal, match="symlink")


def test_an_entry_through_a_symlinked_folder_is_refused(bundle, secret):
    import shutil

    shutil.rmtree(bundle / "sub")
    os.symlink(secret.parent, bundle / "sub")
    _edit(bundle, lambda raw: raw["artifacts"][1].__setitem__("file", "sub/secret.txt"))
    _refused(bundle, SecurityRefusal, match="symlink")


def test_a_hardlinked_entry_is_refused(bundle, secret):
    (bundle / "model.onnx").unlink()
    os.link(secret, bundle / "model.onnx")
    _refused(bundle, SecurityRefusal, match="hard link")


def test_a_hash_mismatch_is_refused_by_path_of(bundle):
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[10] ^= 0xFF  # same size, different content
    (bundle / "model.onnx").write_bytes(bytes(data))
    m = read_manifest(bundle)  # listing is fine; the hash is checked right before use
    with pytest.raises(IntegrityError, match="fails its hash") as info:
        m.path_of(m.artifacts[0])
    assert info.value.exit_code == 4
    assert m.path_of(m.artifacts[1]).is_file()  # the untouched file still verifies


def test_a_size_mismatch_is_refused_by_path_of(bundle):
    m = read_manifest(bundle)
    with open(bundle / "model.onnx", "ab") as f:  # modified after the manifest was read
        f.write(b"!")
    with pytest.raises(IntegrityError, match="bytes"):
        m.path_of(m.artifacts[0])


def test_a_size_mismatch_is_refused_when_the_manifest_is_read(bundle):
    with open(bundle / "model.onnx", "ab") as f:
        f.write(b"!")
    e = _refused(bundle, IntegrityError, match="1001 bytes; the manifest records 1000")
    assert "re-export" in str(e)


def test_a_manifest_without_a_model_config_is_corrupt(bundle):
    _edit(bundle, lambda raw: raw.pop("model"))
    _refused(bundle, CorruptArtifactError, match="'model'")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"\xff\xfe{}",
        b"[" * 100_000,
        b"null",
        b"[1, 2]",
        b'{"format": "genedge.bundle"',
        b"\x00" * 64,
    ],
)
def test_garbage_json_is_corrupt(bundle, payload):
    (bundle / MANIFEST_NAME).write_bytes(payload)
    e = _refused(bundle, CorruptArtifactError)
    assert MANIFEST_NAME in str(e)
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)


def test_a_huge_manifest_is_refused_without_parsing(bundle):
    with open(bundle / MANIFEST_NAME, "wb") as f:
        f.truncate(17 * 1024 * 1024)
    _refused(bundle, CorruptArtifactError, match="16 MiB")


def test_a_foreign_format_is_corrupt(bundle):
    _edit(bundle, lambda raw: raw.__setitem__("format", "x" * 10_000))
    e = _refused(bundle, CorruptArtifactError, match="format")
    assert len(str(e)) < 400  # a hostile value is not echoed in full


def test_a_symlinked_manifest_is_refused(bundle, tmp_path):
    real = tmp_path / "elsewhere.json"
    real.write_bytes((bundle / MANIFEST_NAME).read_bytes())
    (bundle / MANIFEST_NAME).unlink()
    os.symlink(real, bundle / MANIFEST_NAME)
    _refused(bundle, SecurityRefusal, match="symlink")


def test_no_manifest_and_not_a_folder_are_corrupt(bundle, tmp_path):
    (bundle / MANIFEST_NAME).unlink()
    _refused(bundle, CorruptArtifactError, match="no manifest.json")
    _refused(tmp_path / "nowhere", CorruptArtifactError, match="not a folder")


def test_a_listed_file_twice_is_corrupt(bundle):
    _edit(bundle, lambda raw: raw["artifacts"].append(dict(raw["artifacts"][0])))
    _refused(bundle, CorruptArtifactError, match="twice")


def test_escape_sequences_in_an_entry_are_not_echoed_raw(bundle):
    _edit(bundle, lambda raw: raw["artifacts"][0].__setitem__("file", "/\x1b[2J\x1b]0;pwned\x07"))
    e = _refused(bundle, SecurityRefusal)
    assert "\x1b" not in str(e)


def test_resolve_inside_accepts_a_plain_nested_file(bundle):
    assert (
        resolve_inside(bundle, "sub/model.onnx.data")
        == (bundle / "sub" / "model.onnx.data").resolve()
    )
    assert resolve_inside(bundle, "./model.onnx") == (bundle / "model.onnx").resolve()

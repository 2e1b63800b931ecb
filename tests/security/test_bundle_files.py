"""Bundle files through Manifest.path_of: ONNX external data, engines and caches."""

from __future__ import annotations

from pathlib import Path

import pytest
from security_fixtures import SECRET, set_location

from genedge.errors import CorruptArtifactError, IntegrityError, SecurityRefusal
from genedge.manifest import artifact_record, read_manifest, write_manifest

onnx = pytest.importorskip("onnx")


def _write(bundle: Path, files: dict[str, str]) -> None:
    """Manifest listing ``files`` (name -> format), hashes measured now."""
    records = [artifact_record(bundle, f, graph="generator", format=fmt,
                               precision="fp32" if fmt == "onnx" else None).to_dict()
               for f, fmt in files.items()]
    write_manifest(bundle, {"format": "genedge.bundle", "schema_version": 1, "kind": "gan",
                            "model": {}, "graphs": {}, "artifacts": records, "producer": {}, "source": {}})


@pytest.fixture
def onnx_bundle(make_bundle) -> Path:
    bundle, _ = make_bundle()
    (bundle / "model.engine").write_bytes(b"plan" * 256)
    (bundle / "calibration.cache").write_bytes(b"TRT-calib\n" * 50)
    _write(bundle, {"model.onnx": "onnx", "weights.data": "onnx-data", "model.engine": "engine",
                    "calibration.cache": "cache"})
    return bundle


def _path_of(bundle: Path, file: str) -> Path:
    m = read_manifest(bundle)
    return m.path_of(next(a for a in m.artifacts if a.file == file))


def test_a_clean_onnx_bundle_verifies_graph_and_external_data(onnx_bundle):
    assert _path_of(onnx_bundle, "model.onnx").name == "model.onnx"


def _retarget(bundle: Path, location: str, place: str = "initializer") -> None:
    """Point one tensor at ``location`` and re-record hashes, so only the guard can object."""
    from security_fixtures import tensor_places

    m = onnx.load_model(bundle / "model.onnx", load_external_data=False)
    set_location(dict(tensor_places(m))[place], location)
    (bundle / "model.onnx").write_bytes(m.SerializeToString())
    files = {a.file: a.format for a in read_manifest(bundle, check_files=False).artifacts}
    _write(bundle, files)


@pytest.mark.parametrize("place", ["initializer", "subgraph", "sparse"])
def test_path_of_refuses_an_escaping_location_even_with_matching_hashes(onnx_bundle, secret_file, place):
    _retarget(onnx_bundle, "../outside/secret.txt", place)
    with pytest.raises(SecurityRefusal) as info:
        _path_of(onnx_bundle, "model.onnx")
    assert info.value.exit_code == 4 and SECRET[:12] not in str(info.value)


def test_path_of_refuses_external_data_the_manifest_does_not_list(onnx_bundle):
    _retarget(onnx_bundle, "manifest.json")
    with pytest.raises(IntegrityError, match="does not list"):
        _path_of(onnx_bundle, "model.onnx")


def test_path_of_checks_the_hash_of_external_data(onnx_bundle):
    data = bytearray((onnx_bundle / "weights.data").read_bytes())
    data[0] ^= 1
    (onnx_bundle / "weights.data").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="weights.data"):
        _path_of(onnx_bundle, "model.onnx")


def test_a_garbage_graph_with_a_matching_hash_is_corrupt(onnx_bundle):
    (onnx_bundle / "model.onnx").write_bytes(b"\xff" * 100)
    _write(onnx_bundle, {"model.onnx": "onnx", "weights.data": "onnx-data",
                         "model.engine": "engine", "calibration.cache": "cache"})
    with pytest.raises(CorruptArtifactError) as info:
        _path_of(onnx_bundle, "model.onnx")
    assert info.value.exit_code == 2 and "model.onnx" in str(info.value)


@pytest.mark.parametrize("file", ["model.onnx", "weights.data", "model.engine", "calibration.cache"])
@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_damaged_bundle_files_are_refused_before_any_deserializer(onnx_bundle, file, damage):
    path = onnx_bundle / file
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "empty": b"",
                      "garbage": bytes(255 - b for b in data)}[damage])
    with pytest.raises(IntegrityError) as info:
        _path_of(onnx_bundle, file if file != "weights.data" else "model.onnx")
    assert info.value.exit_code == 4 and file in str(info.value)

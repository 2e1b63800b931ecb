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
    records = [
        artifact_record(
            bundle, f, graph="generator", format=fmt, precision="fp32" if fmt == "onnx" else None
        ).to_dict()
        for f, fmt in files.items()
    ]
    write_manifest(
        bundle,
        {
            "format": "genedge.bundle",
            "schema_version": 1,
            "kind": "gan",
            "model": {},
            "graphs": {},
            "artifacts": records,
            "producer": {},
            "source": {},
        },
    )


@pytest.fixture
def onnx_bundle(make_bundle) -> Path:
    bundle, _ = make_bundle()
    (bundle / "model.engine").write_bytes(b"plan" * 256)
    (bundle / "calibration.cache").write_bytes(b"TRT-calib\n" * 50)
    _write(
        bundle,
        {
            "model.onnx": "onnx",
            "weights.data": "onnx-data",
            "model.engine": "engine",
            "calibration.cache": "cache",
        },
    )
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
def test_path_of_refuses_an_escaping_location_even_with_matching_hashes(
    onnx_bundle, secret_file, place
):
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
    _write(
        onnx_bundle,
        {
            "model.onnx": "onnx",
            "weights.data": "onnx-data",
            "model.engine": "engine",
            "calibration.cache": "cache",
        },
    )
    with pytest.raises(CorruptArtifactError) as info:
        _path_of(onnx_bundle, "model.onnx")
    assert info.value.exit_code == 2 and "model.onnx" in str(info.value)


@pytest.mark.parametrize(
    "file", ["model.onnx", "weights.data", "model.engine", "calibration.cache"]
)
@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_damaged_bundle_files_are_refused_before_any_deserializer(onnx_bundle, file, damage):
    path = onnx_bundle / file
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "empty": b"", "garbage": bytes(255 - b for b in data)}[
            damage
        ]
    )
    with pytest.raises(IntegrityError) as info:
        _path_of(onnx_bundle, file if file != "weights.data" else "model.onnx")
    assert info.value.exit_code == 4 and file in str(info.value)


def _leaky_model(bundle: Path, location: str, n: int) -> None:
    """A graph whose output is an external uint8 initializer: whatever file it names leaks out."""
    from onnx import TensorProto, helper

    s = TensorProto(name="S", data_type=TensorProto.UINT8, dims=[n])
    set_location(s, location)
    for key, value in (("offset", "0"), ("length", str(n))):
        e = s.external_data.add()
        e.key, e.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Identity", ["S"], ["image"])],
        "leak",
        [],
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [n])],
        initializer=[s],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (bundle / "model.onnx").write_bytes(model.SerializeToString())


def test_a_hardlinked_secret_leaks_through_bare_onnxruntime_but_not_through_genedge(
    tmp_path, secret_file
):
    ort = pytest.importorskip("onnxruntime")
    import os

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    os.link(secret_file, bundle / "weights.data")
    n = secret_file.stat().st_size
    _leaky_model(bundle, "weights.data", n)
    # The threat is real: ORT alone reads the hard-linked secret into the graph's output.
    try:
        sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
        leaked = bytes(sess.run(None, {})[0])
        assert leaked.startswith(SECRET.encode())
    except Exception as e:  # a future ORT that refuses hard links too: all the better
        assert SECRET not in str(e)
    _write(bundle, {"model.onnx": "onnx", "weights.data": "onnx-data"})
    with pytest.raises(SecurityRefusal, match="hard link") as info:
        read_manifest(bundle)  # the listing check already refuses the hard-linked entry
    assert SECRET[:12] not in str(info.value)


def test_the_sampler_and_cli_refuse_a_leaky_bundle_without_showing_the_secret(
    tmp_path, secret_file, capsys
):
    runtime = pytest.importorskip("genedge.runtime")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("genedge.runtime.commands")
    from genedge.cli import main

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    _leaky_model(bundle, "../outside/secret.txt", secret_file.stat().st_size)
    _write(bundle, {"model.onnx": "onnx"})
    with pytest.raises(SecurityRefusal) as info:
        runtime.Sampler.open(bundle, backend="ort-cpu")
    assert SECRET[:12] not in str(info.value)
    png = tmp_path / "grid.png"
    assert main(["sample", str(bundle), "-n", "1", "--backend", "ort-cpu", "--out", str(png)]) == 4
    out = capsys.readouterr()
    assert SECRET[:12] not in out.out + out.err and not png.exists()


@pytest.mark.parametrize("payload", [b"", b"\xff" * 100, b"\x3a\x05abc"])
def test_the_cli_calls_a_garbage_graph_corrupt(tmp_path, capsys, payload):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("genedge.runtime.commands")
    from genedge.cli import main

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(payload)
    _write(bundle, {"model.onnx": "onnx"})  # the hash matches: only the content is wrong
    code = main(
        ["sample", str(bundle), "-n", "1", "--backend", "ort-cpu", "--out", str(tmp_path / "g.png")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "model.onnx" in err and "Traceback" not in err

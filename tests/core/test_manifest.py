"""Bundle manifest checks: what read_manifest, Manifest.path_of and resolve_inside refuse."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from genedge.errors import CorruptArtifactError, IntegrityError, SecurityRefusal
from genedge.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    EngineRecord,
    GraphIO,
    ModelConfig,
    Speed,
    TensorSpec,
    Verification,
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


# ---------------------------------------------------------------- typed records
GRAPHS = {
    "generator": {
        "inputs": [
            {"name": "z", "dtype": "float32", "shape": ["B", 8]},
            {"name": "label", "dtype": "int64", "shape": ["B"]},
        ],
        "outputs": [{"name": "image", "dtype": "uint8", "shape": ["B", 4, 4, 1], "layout": "NHWC"}],
    }
}
ENGINE = {
    "tensorrt_version": "10.3.0",
    "device_name": "Orin",
    "compute_capability": "8.7",
    "profiles": [[1, 8, 32]],
    "version_compatible": False,
    "dla_core": None,
}
SPEED = {
    "batch": {"1": {"p50_ms": 0.1, "speedup_vs_fp32": 1.0, "round_range": [1.0, 1.0], "rounds": 9}},
    "backend": "ort-cpu",
    "threads": None,
    "machine": "x86_64 2 cpus",
}


def _typed(bundle: Path) -> None:
    def change(raw):
        raw["model"] = {"latent_dim": 8, "num_classes": 3, "image_size": 4, "channels": 1}
        raw["model"].update(output_format="uint8", latent={"distribution": "normal"})
        raw["graphs"] = json.loads(json.dumps(GRAPHS))
        a = raw["artifacts"][0]
        a["verification"] = {"max_abs_err_vs_torch": 0.0, "seeds": [0], "verdict": "pass"}
        a["speed"] = json.loads(json.dumps(SPEED))
        raw["artifacts"][1]["engine"] = dict(ENGINE)  # any artifact may carry the record

    _edit(bundle, change)


def test_records_are_typed_and_frozen(bundle):
    _typed(bundle)
    m = read_manifest(bundle)
    assert isinstance(m.model, ModelConfig) and m.model.num_classes == 3
    assert m.model.image_shape == (4, 4, 1) and m.model.output_format == "uint8"
    g = m.graphs["generator"]
    assert isinstance(g, GraphIO) and g.input("label") == TensorSpec("label", "int64", ("B",))
    assert g.output("image").layout == "NHWC" and g.output("image").np_dtype == np.uint8
    a, data = m.artifacts
    assert isinstance(a.verification, Verification) and a.verification.passed
    assert a.speed.p50s() == {1: 0.1} and isinstance(data.engine, EngineRecord)
    assert data.engine.profiles == ((1, 8, 32),) and data.engine.compute_capability == "8.7"
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.model.num_classes = 4  # type: ignore[misc]


def test_to_dict_round_trips_the_json(bundle):
    _typed(bundle)
    raw = json.loads((bundle / MANIFEST_NAME).read_text())
    assert read_manifest(bundle).to_dict() == raw


def test_extra_model_keys_stay_readable(bundle):
    _edit(bundle, lambda raw: raw["model"].update(g_width=16, output_range=[-1, 1]))
    m = read_manifest(bundle)
    assert m.model.extra == {"g_width": 16, "output_range": [-1, 1]}


def test_a_null_or_absent_class_count_is_unconditional(bundle):
    assert read_manifest(bundle).model.num_classes == 0
    _edit(bundle, lambda raw: raw["model"].update(num_classes=None))
    assert read_manifest(bundle).model.num_classes == 0


def _set(path: str, value):
    """An edit that sets ``raw[k1][k2]...`` (ints index lists) to ``value``."""
    *keys, last = path.split("/")

    def change(raw):
        d = raw
        for k in keys:
            d = d[int(k) if isinstance(d, list) else k]
        d[int(last) if isinstance(d, list) else last] = value

    return change


@pytest.mark.parametrize(
    "path, value, named",
    [
        ("model/latent_dim", "8", "model.latent_dim"),
        ("model/latent_dim", 0, "model.latent_dim"),
        ("model/num_classes", -1, "model.num_classes"),
        ("model/num_classes", True, "model.num_classes"),
        ("model/num_classes", 2.0, "model.num_classes"),
        ("model/output_format", "png", "model.output_format"),
        ("model/latent", {"distribution": "cauchy"}, "model.latent.distribution"),
        ("graphs/generator/inputs/0/shape", ["B", -8], "graphs.generator.inputs[0].shape"),
        ("graphs/generator/inputs/0/shape", ["B", 0], "graphs.generator.inputs[0].shape"),
        ("graphs/generator/inputs/0/shape", "B,8", "graphs.generator.inputs[0].shape"),
        ("graphs/generator/inputs/0/dtype", "complex64", "graphs.generator.inputs[0].dtype"),
        ("graphs/generator/inputs/0/dtype", 1, "graphs.generator.inputs[0].dtype"),
        ("graphs/generator/outputs/0/layout", "HWC", "graphs.generator.outputs[0].layout"),
        ("graphs/generator/outputs/0/colour", "rgb", "graphs.generator.outputs[0] key"),
        ("graphs/generator/inputs", {}, "graphs.generator.inputs"),
        ("artifacts/0/precision", "fp8", "artifact.precision"),
        ("artifacts/0/size", -1, "size"),
        ("artifacts/0/quality_approved", "yes", "quality_approved"),
        ("artifacts/0/checksum", "x", "artifact key"),
        ("artifacts/0/verification/verdict", "ok", "verification.verdict"),
        ("artifacts/0/verification/psnr_vs_fp32", "40 dB", "verification.psnr_vs_fp32"),
        ("artifacts/0/verification/seeds", [0.5], "verification.seeds"),
        ("artifacts/0/verification/metrics", {"bpc": "low"}, "verification.metrics.bpc"),
        ("artifacts/0/speed/batch/1/p50_ms", -0.1, "speed.batch.1.p50_ms"),
        ("artifacts/0/speed/batch/1/p50_ms", None, "speed.batch.1.p50_ms"),
        ("artifacts/0/speed/batch/x", {"p50_ms": 1.0}, "speed.batch key"),
        ("artifacts/1/engine/profiles", [[8, 1, 32]], "engine.profiles"),
        ("artifacts/1/engine/profiles", [[1, 8]], "engine.profiles"),
        ("artifacts/1/engine/version_compatible", 1, "engine.version_compatible"),
        ("artifacts/1/engine/dla_core", -1, "engine.dla_core"),
        ("artifacts/1/engine/tensorrt_version", "", "engine.tensorrt_version"),
        ("artifacts/1/engine/tensorrt_version", 10.3, "engine.tensorrt_version"),
        ("artifacts/1/engine/tensorrt_version", "10.3\n", "engine.tensorrt_version"),
        ("artifacts/0/speed/batch/\u00b2", {"p50_ms": 1.0}, "speed.batch key"),
        ("unexpected", {}, "top-level key"),
    ],
)
def test_a_malformed_field_is_refused_by_name(bundle, path, value, named):
    _typed(bundle)
    _edit(bundle, _set(path, value))
    e = _refused(bundle, CorruptArtifactError)
    assert named in e.message, e.message


@pytest.mark.parametrize("cc", ["sm87", "87", "sm_87", 8.7, [8, 7], "8.7.0", "8.x", None, ""])
def test_only_one_compute_capability_spelling_is_read(bundle, cc):
    _typed(bundle)
    _edit(bundle, _set("artifacts/1/engine/compute_capability", cc))
    e = _refused(bundle, CorruptArtifactError)
    assert "engine.compute_capability" in e.message and "8.7" in e.message


def test_an_ar_model_needs_its_vocabulary(bundle):
    def change(raw):
        raw["kind"] = "ar"
        raw["model"] = {"vocab": "ab", "state_names": ["h"], "state_shape": [1, "B", 4]}

    _edit(bundle, change)
    m = read_manifest(bundle)
    assert m.model.vocab_size == 2 and m.model.state_names == ("h",)
    for model, named in (
        ({"state_names": ["h"]}, "model.vocab"),
        ({"vocab": "ab", "vocab_size": 3}, "model.vocab_size"),
        ({"vocab": "ab", "state_names": []}, "model.state_names"),
        ({"vocab": "ab", "state_shape": [1, "B", -4]}, "model.state_shape"),
    ):
        _edit(bundle, _set("model", model))
        assert named in _refused(bundle, CorruptArtifactError).message


def test_a_record_dict_given_to_artifact_is_parsed(bundle):
    rec = artifact_record(bundle, "model.onnx", graph="generator", format="onnx", engine=ENGINE)
    assert isinstance(rec.engine, EngineRecord) and rec.to_dict()["engine"] == ENGINE
    with pytest.raises(CorruptArtifactError, match="engine.compute_capability"):
        artifact_record(
            bundle,
            "model.onnx",
            graph="generator",
            format="onnx",
            engine={**ENGINE, "compute_capability": "sm87"},
        )


def test_one_tensor_spec_class_keeps_dtype_names():
    t = TensorSpec("z", np.dtype(np.float32), ["B", 8])
    assert t == TensorSpec("z", "float32", ("B", 8)) and t.np_dtype == np.float32
    assert t.to_dict() == {"name": "z", "dtype": "float32", "shape": ["B", 8]}


def test_an_exported_bundle_reads_into_typed_records(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "export"))
    from export_helpers import GAN_CFG, fast_options, make_checkpoint

    from genedge.export.bundle import export_bundle

    ckpt = make_checkpoint(tmp_path / "gan.safetensors", "gan", GAN_CFG)
    out = export_bundle(fast_options(ckpt, tmp_path / "b", precisions=("fp32", "int8")))
    raw = json.loads((out / MANIFEST_NAME).read_text())
    m = read_manifest(out)
    assert m.to_dict() == raw
    assert isinstance(m.model, ModelConfig) and m.model.latent_dim == GAN_CFG.latent_dim
    assert all(isinstance(g, GraphIO) for g in m.graphs.values())
    for a in m.artifacts:
        assert isinstance(a.verification, Verification) and a.verification.passed
        assert a.speed is None or isinstance(a.speed, Speed)
    (int8,) = m.find(precision="int8")
    assert int8.verification.psnr_vs_fp32 is not None and int8.calibration.method

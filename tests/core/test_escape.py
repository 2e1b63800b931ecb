"""Values read from a file reach messages escaped and bounded (genedge.errors.printable)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genedge.errors import (
    BadInputError,
    CorruptArtifactError,
    GenedgeError,
    IncompatibleEnvironmentError,
    printable,
)
from genedge.manifest import MANIFEST_NAME, artifact_record, read_manifest, write_manifest

HOSTILE = "evil\x1b[31m\x07\x1b]0;title\x07\u202e\n"
CONTROL = [chr(c) for c in range(32)] + ["\x7f", "\x9b", "\u202e"]


def _no_control(text: str) -> None:
    bad = [c for c in CONTROL if c in text]
    assert not bad, f"raw control characters {bad!r} in {text!r}"


def _bundle(tmp_path: Path, **changes) -> Path:
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "model.onnx").write_bytes(b"onnx" * 10)
    record = artifact_record(b, "model.onnx", graph="generator", format="onnx", precision="fp32")
    raw = {
        "format": "genedge.bundle",
        "schema_version": 1,
        "kind": "gan",
        "model": {"latent_dim": 8},
        "graphs": {},
        "artifacts": [{**record.to_dict(), **changes}],
        "producer": {},
        "source": {},
    }
    write_manifest(b, raw)
    return b


def _error_text(e: GenedgeError) -> str:
    return f"{e} {e.message} {e.hint or ''}"


def test_printable_escapes_every_control_character_and_bounds_length():
    shown = printable(HOSTILE + "x" * 500, 40)
    _no_control(shown)
    assert shown.startswith("evil\\x1b[31m\\x07") and shown.endswith("...")
    assert len(shown) <= 40 * 6 + 3
    assert printable("plain name.onnx") == "plain name.onnx"


def test_every_error_message_is_one_line_with_no_control_bytes():
    e = BadInputError(f"received {HOSTILE}", hint=f"try {HOSTILE}")
    _no_control(_error_text(e))
    assert len(str(BadInputError("x" * 10**6))) < 10_000


def test_a_missing_file_name_is_escaped(tmp_path):
    b = _bundle(tmp_path, file=f"m{HOSTILE}.onnx")
    with pytest.raises(GenedgeError) as info:
        read_manifest(b)
    _no_control(_error_text(info.value))


def test_a_hash_mismatch_is_escaped(tmp_path):
    b = _bundle(tmp_path, sha256=HOSTILE * 4)
    m = read_manifest(b)
    with pytest.raises(GenedgeError) as info:
        m.path_of(m.artifacts[0])
    _no_control(_error_text(info.value))
    assert "fails its hash" in info.value.message


def test_a_size_mismatch_and_an_unlisted_file_are_escaped(tmp_path):
    b = _bundle(tmp_path)
    (b / f"extra{HOSTILE}").write_bytes(b"x")
    with pytest.raises(GenedgeError) as info:
        read_manifest(b)
    _no_control(_error_text(info.value))
    assert "does not list" in info.value.message


def test_a_bad_format_kind_and_precision_are_escaped(tmp_path):
    for i, change in enumerate(({"format": HOSTILE}, {"precision": HOSTILE})):
        (tmp_path / str(i)).mkdir()
        b = _bundle(tmp_path / str(i), **change)
        with pytest.raises(CorruptArtifactError) as info:
            read_manifest(b)
        _no_control(_error_text(info.value))


def test_a_dtype_mismatch_against_the_manifest_is_escaped():
    from genedge.runtime.backend import TensorSpec
    from genedge.runtime.iospec import io_problem as _io_problem

    actual = (TensorSpec("z", "float32", ("B", 8)),)
    problem = _io_problem("inputs", [TensorSpec(HOSTILE, "float32", ("B", 8))], actual)
    assert problem is not None
    _no_control(problem)


def test_a_hostile_dtype_in_the_manifest_is_escaped(tmp_path):
    b = _bundle(tmp_path)
    raw = json.loads((b / MANIFEST_NAME).read_text())
    raw["graphs"] = {
        "generator": {"inputs": [{"name": "z", "dtype": HOSTILE, "shape": ["B", 8]}], "outputs": []}
    }
    (b / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(CorruptArtifactError) as info:
        read_manifest(b)
    _no_control(_error_text(info.value))


def test_a_model_field_from_the_manifest_is_escaped(tmp_path):
    b = _bundle(tmp_path)
    raw = json.loads((b / MANIFEST_NAME).read_text())
    raw["model"]["num_classes"] = HOSTILE
    (b / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(CorruptArtifactError) as info:
        read_manifest(b)
    _no_control(_error_text(info.value))


def test_engine_records_are_escaped():
    from genedge.manifest import engine_record_from
    from genedge.runtime.trt_backend import TrtEnvironment, check_engine_record

    for record in (  # refused where the manifest is parsed
        {"tensorrt_version": "10.3.0", "compute_capability": HOSTILE},
        {"compute_capability": "8.7", "tensorrt_version": "9.1" + HOSTILE},
    ):
        with pytest.raises(CorruptArtifactError) as info:
            engine_record_from(record, f"e{HOSTILE}")
        _no_control(_error_text(info.value))
    env = TrtEnvironment("10.3.0", "8.7", "Orin")
    rec = {"tensorrt_version": "10.3.0", "compute_capability": "8.6", "device_name": HOSTILE}
    with pytest.raises(IncompatibleEnvironmentError) as info:
        check_engine_record(engine_record_from(rec, "e"), env, file=f"e{HOSTILE}.engine")
    _no_control(_error_text(info.value))


def test_a_300_character_file_name_is_a_clean_exit_2(tmp_path):
    b = _bundle(tmp_path, file="a" * 300)
    with pytest.raises(CorruptArtifactError) as info:
        read_manifest(b)
    assert info.value.exit_code == 2
    assert "255 bytes" in info.value.message
    assert len(str(info.value)) < 600


def test_the_cli_never_prints_a_control_byte_from_a_manifest(tmp_path, capsys):
    from genedge.cli import main

    b = _bundle(tmp_path, file=f"m{HOSTILE}.onnx")
    code = main(["sample", str(b), "-n", "1", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 4
    _no_control(err.rstrip("\n"))
    assert "Traceback" not in err

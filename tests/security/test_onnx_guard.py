"""ONNX external data stays inside the bundle: genedge.onnx_guard.check_external_data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from security_fixtures import (
    PLACES,
    SECRET,
    build_model,
    ld,
    onnx_locations,
    set_location,
    varint,
)

from genedge.errors import CorruptArtifactError, IntegrityError, SecurityRefusal
from genedge.onnx_guard import MAX_DEPTH, check_external_data, external_locations

onnx = pytest.importorskip("onnx")


def _refused(model: Path, bundle: Path) -> SecurityRefusal:
    with pytest.raises(SecurityRefusal) as info:
        check_external_data(model, bundle)
    assert info.value.exit_code == 4
    assert SECRET[:12] not in str(info.value)
    return info.value


def test_a_clean_bundle_lists_its_external_file(make_bundle):
    bundle, model = make_bundle()
    assert check_external_data(model, bundle) == ["weights.data"]
    assert check_external_data(str(model), str(bundle)) == ["weights.data"]  # str paths too


def test_the_clean_model_really_runs_with_its_external_data(make_bundle):
    ort = pytest.importorskip("onnxruntime")
    bundle, model = make_bundle()
    so = ort.SessionOptions()
    # ORT 1.32's If constant folding loses the model folder for external data in branch
    # initializers ("model loaded from bytes"); the model itself is valid, as this run shows.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"X": np.ones((1, 4), np.float32)})
    assert y.shape == (1, 4) and np.isfinite(y).all()


def test_a_model_without_external_data_lists_nothing(tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    onnx.save_model(build_model(), bundle / "model.onnx")
    assert check_external_data(bundle / "model.onnx", bundle) == []


def test_external_data_in_a_subfolder_is_accepted(tmp_path):
    bundle = tmp_path / "b"
    (bundle / "sub").mkdir(parents=True)
    onnx.save_model(
        build_model(),
        bundle / "sub" / "model.onnx",
        save_as_external_data=True,
        location="w.data",
        size_threshold=0,
    )
    assert check_external_data(bundle / "sub" / "model.onnx", bundle) == ["sub/w.data"]


@pytest.mark.parametrize("place", PLACES)
def test_dotdot_is_refused_wherever_the_tensor_lives(make_bundle, secret_file, place):
    bundle, model = make_bundle(place, "../outside/secret.txt")
    e = _refused(model, bundle)
    assert "'..'" in str(e) and "model.onnx" in str(e)


@pytest.mark.parametrize(
    "location",
    [
        "sub/../../outside/secret.txt",
        "./../outside/secret.txt",
        "..\\outside\\secret.txt",
        "weights.data/../../outside/secret.txt",
    ],
)
def test_nested_dotdot_spellings_are_refused(make_bundle, secret_file, location):
    bundle, model = make_bundle("initializer", location)
    _refused(model, bundle)


@pytest.mark.parametrize("place", PLACES)
def test_an_absolute_location_is_refused(make_bundle, secret_file, place):
    bundle, model = make_bundle(place, str(secret_file))
    assert "absolute" in str(_refused(model, bundle))


def test_an_absolute_location_into_the_bundle_itself_is_refused(make_bundle):
    bundle, model = make_bundle()
    _set_and_save(model, str(bundle / "weights.data"))
    _refused(model, bundle)


def _set_and_save(model_path: Path, location: str) -> None:
    m = onnx.load_model(model_path, load_external_data=False)
    set_location(m.graph.initializer[0], location)
    model_path.write_bytes(m.SerializeToString())


@pytest.mark.parametrize("place", PLACES)
def test_a_symlinked_data_file_is_refused(make_bundle, secret_file, place):
    bundle, model = make_bundle(place, "link.data")
    os.symlink(secret_file, bundle / "link.data")
    assert "symlink" in str(_refused(model, bundle))


def test_a_symlink_to_a_file_inside_the_bundle_is_refused_too(make_bundle):
    bundle, model = make_bundle("initializer", "alias.data")
    os.symlink(bundle / "weights.data", bundle / "alias.data")
    _refused(model, bundle)


def test_a_symlinked_folder_on_the_way_is_refused(make_bundle, secret_file):
    bundle, model = make_bundle("initializer", "dir/secret.txt")
    os.symlink(secret_file.parent, bundle / "dir")
    assert "symlink" in str(_refused(model, bundle))


@pytest.mark.parametrize("place", PLACES)
def test_a_hardlinked_data_file_is_refused(make_bundle, secret_file, place):
    bundle, model = make_bundle(place, "hard.data")
    os.link(secret_file, bundle / "hard.data")
    assert "hard link" in str(_refused(model, bundle))


@pytest.mark.parametrize("location", ["", "a\x00b", "x" * 5000, "C:/Windows/win.ini", "C:secret"])
def test_unusable_names_are_refused(make_bundle, location):
    bundle, model = make_bundle("initializer", location)
    _refused(model, bundle)


def test_escape_sequences_in_a_location_are_not_echoed_raw(make_bundle):
    bundle, model = make_bundle("initializer", "\x1b[2J\x1b]0;pwned\x07.data")
    with pytest.raises(IntegrityError) as info:  # a missing file: refused, exit 4
        check_external_data(model, bundle)
    assert "\x1b" not in str(info.value) and info.value.exit_code == 4


def test_a_missing_external_file_is_an_integrity_error(make_bundle):
    bundle, model = make_bundle()
    (bundle / "weights.data").unlink()
    with pytest.raises(IntegrityError, match="missing") as info:
        check_external_data(model, bundle)
    assert info.value.exit_code == 4


def test_a_folder_as_external_data_is_refused(make_bundle):
    bundle, model = make_bundle("initializer", "sub")
    (bundle / "sub").mkdir()
    with pytest.raises(IntegrityError):
        check_external_data(model, bundle)


def test_a_model_outside_the_bundle_is_refused(make_bundle, tmp_path):
    bundle, model = make_bundle()
    other = tmp_path / "elsewhere"
    other.mkdir()
    with pytest.raises(SecurityRefusal, match="not inside the bundle"):
        check_external_data(model, other)


def test_a_symlinked_model_is_refused(make_bundle, tmp_path):
    bundle, model = make_bundle()
    os.symlink(model, bundle / "alias.onnx")
    with pytest.raises(SecurityRefusal, match="symlink"):
        check_external_data(bundle / "alias.onnx", bundle)


def test_a_repeated_location_key_is_judged_on_every_value(make_bundle, secret_file):
    """Protobuf keeps the last of a repeated string; the guard must not judge only the first."""
    bundle, model = make_bundle()
    m = onnx.load_model(model, load_external_data=False)
    data = m.SerializeToString()
    # Append a second initializer whose entry repeats 'value': first benign, last hostile.
    entry = ld(1, b"location") + ld(2, b"weights.data") + ld(2, b"../outside/secret.txt")
    tensor = ld(8, b"evil") + ld(13, entry) + bytes([14 << 3, 1])
    graph_extra = ld(5, tensor)
    model.write_bytes(data + ld(7, graph_extra))  # a second 'graph' field merges into the first
    parsed = onnx.load_model_from_string(model.read_bytes())
    assert len(parsed.graph.initializer) == len(m.graph.initializer) + 1  # onnx sees the merge
    _refused(model, bundle)


# ---- malformed files: exit 2, file named, no raw trace --------------------------------------


def _corrupt(model: Path, bundle: Path) -> CorruptArtifactError:
    with pytest.raises(CorruptArtifactError) as info:
        check_external_data(model, bundle)
    assert info.value.exit_code == 2 and str(model) in str(info.value)
    e = info.value
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)  # no raw trace
    return info.value


def test_an_empty_model_is_corrupt(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"")
    assert "empty" in str(_corrupt(tmp_path / "model.onnx", tmp_path))


@pytest.mark.parametrize("payload", [b"\xff" * 64, b"not an onnx model at all\n", b"\x0f", b"\x08"])
def test_garbage_is_corrupt(tmp_path, payload):
    (tmp_path / "model.onnx").write_bytes(payload)
    _corrupt(tmp_path / "model.onnx", tmp_path)


def test_a_model_with_no_graph_is_corrupt(tmp_path):
    (tmp_path / "model.onnx").write_bytes(ld(2, b"producer"))
    assert "no graph" in str(_corrupt(tmp_path / "model.onnx", tmp_path))


def test_every_truncation_inside_the_graph_is_corrupt(make_bundle):
    bundle, model = make_bundle()
    data = model.read_bytes()
    graph_start = data.index(b"\x3a")  # tag of field 7, wire type 2: the graph
    cuts = np.linspace(graph_start + 1, len(data) - 1, 40).astype(int)
    for cut in cuts:
        model.write_bytes(data[:cut])
        _corrupt(model, bundle)


def test_deep_nesting_is_refused_without_recursion(tmp_path):
    # graph -> node -> attribute g -> graph -> node -> ... far deeper than MAX_DEPTH
    graph = b""
    for _ in range(400):
        attr = ld(1, b"g") + ld(6, graph)
        graph = ld(1, ld(5, attr))
    (tmp_path / "model.onnx").write_bytes(ld(7, graph))
    assert f"deeper than {MAX_DEPTH}" in str(_corrupt(tmp_path / "model.onnx", tmp_path))


def test_a_wrong_wire_type_for_a_message_field_is_corrupt(tmp_path):
    (tmp_path / "model.onnx").write_bytes(varint(7 << 3 | 0) + b"\x01")
    _corrupt(tmp_path / "model.onnx", tmp_path)


def test_a_huge_declared_length_is_corrupt_not_allocated(tmp_path):
    (tmp_path / "model.onnx").write_bytes(varint(7 << 3 | 2) + varint(2**62) + b"\x00" * 8)
    _corrupt(tmp_path / "model.onnx", tmp_path)


def test_parser_agrees_with_onnx_on_a_real_model(make_bundle):
    bundle, model = make_bundle("sparse", "weights.data")
    data = model.read_bytes()
    ours = external_locations(data, len(data))
    theirs = onnx_locations(onnx.load_model_from_string(data))
    assert len(theirs) >= 5  # W, cond, C, T twice, sparse values
    assert sorted(x.decode() for x in ours) == sorted(theirs)


def test_locations_in_functions_and_training_info_are_checked(make_bundle, secret_file):
    from onnx import helper

    for where in ("function", "training"):
        bundle, model = make_bundle(name=f"b-{where}")
        m = onnx.load_model(model, load_external_data=False)
        t = helper.make_tensor("k", onnx.TensorProto.FLOAT, [1], [1.0])
        set_location(t, "../outside/secret.txt")
        if where == "function":
            node = helper.make_node("Constant", [], ["k"], value=t)
            m.functions.append(helper.make_function("local", "f", [], ["k"], [node], []))
        else:
            init = helper.make_graph([], "init", [], [], initializer=[t])
            m.training_info.add().initialization.CopyFrom(init)
        model.write_bytes(m.SerializeToString())
        assert "../outside/secret.txt" in onnx_locations(
            onnx.load_model_from_string(model.read_bytes())
        )
        _refused(model, bundle)


def test_a_location_key_without_a_value_is_the_empty_location_and_refused(tmp_path):
    """protobuf reads a missing string as "": onnx lists such an entry's location as "",
    so the guard lists it too, and refuses it as no usable file name."""
    m = build_model()
    w = m.graph.initializer[0]
    w.data_location = onnx.TensorProto.EXTERNAL
    w.external_data.add().key = "location"  # the value never set
    data = m.SerializeToString()
    assert external_locations(data, len(data)) == [b""]
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(data)
    with pytest.raises(SecurityRefusal, match="not a usable file name"):
        check_external_data(bundle / "model.onnx", bundle)

"""Property-based fuzzing of the manifest reader and bundle checks: only GenedgeError comes out.

Short runs by default (~200 examples each); the ``slow`` variants run many more.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genedge.errors import GenedgeError
from genedge.manifest import (
    MANIFEST_NAME,
    Manifest,
    artifact_record,
    manifest_from_dict,
    read_manifest,
    resolve_inside,
    write_manifest,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=4000, deadline=None, suppress_health_check=list(HealthCheck))

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)
# names that matter to the checks, so mutations hit real branches rather than random keys
interesting_text = st.sampled_from(
    [
        "model.onnx",
        "sub/model.onnx.data",
        "../secret",
        "/etc/passwd",
        "a/../../b",
        ".",
        "",
        "C:x",
        "a\\b",
        "a\x00b",
        "gan",
        "vae",
        "ar",
        "fp16",
        "int9",
        "onnx",
        "engine",
        "genedge.bundle",
        "0" * 64,
        "manifest.json",
        ".genedge.lock",
    ]
)
value = st.one_of(json_like, interesting_text, st.integers(-2, 3))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, dict]:
    b = tmp_path_factory.mktemp("fuzz") / "bundle"
    (b / "sub").mkdir(parents=True)
    (b / "model.onnx").write_bytes(b"onnx" * 64)
    (b / "sub" / "model.onnx.data").write_bytes(b"data" * 64)
    raw = {
        "format": "genedge.bundle",
        "schema_version": 1,
        "kind": "gan",
        "model": {"latent_dim": 8},
        "graphs": {"generator": {"inputs": [], "outputs": []}},
        "artifacts": [
            artifact_record(
                b, "model.onnx", graph="generator", format="onnx", precision="fp32"
            ).to_dict(),
            artifact_record(
                b, "sub/model.onnx.data", graph="generator", format="onnx-data"
            ).to_dict(),
        ],
        "producer": {},
        "source": {},
    }
    write_manifest(b, raw)
    assert isinstance(read_manifest(b), Manifest)  # the seed is valid
    return b, raw


def _only_genedge_errors(call) -> None:
    try:
        result = call()
    except GenedgeError:
        return
    if isinstance(result, Manifest):  # accepted: every entry must still resolve inside the bundle
        for a in result.artifacts:
            resolve_inside(result.root, a.file)


def _mutate(data, raw: dict):
    """Replace, delete or add one value somewhere inside ``raw`` (a deep copy)."""
    raw = copy.deepcopy(raw)
    node = raw
    for _ in range(data.draw(st.integers(0, 4))):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        children = [(k, v) for k, v in children if isinstance(v, (dict, list)) and v]
        if not children:
            break
        node = data.draw(st.sampled_from(children))[1]
    keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
    action = data.draw(st.sampled_from(["set", "delete", "add"]))
    if action == "set" and keys:
        node[data.draw(st.sampled_from(keys))] = data.draw(value)
    elif action == "delete" and keys:
        del node[data.draw(st.sampled_from(keys))]
    elif isinstance(node, dict):
        node[data.draw(st.one_of(interesting_text, st.text(max_size=8)))] = data.draw(value)
    else:
        node.append(data.draw(value))
    return raw


def _check_dict(bundle, d) -> None:
    root, _ = bundle
    _only_genedge_errors(lambda: manifest_from_dict(d, root))
    _only_genedge_errors(lambda: manifest_from_dict(d, root, check_files=False))


def _check_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / MANIFEST_NAME).write_bytes(data)
        _only_genedge_errors(lambda: read_manifest(d))


@settings(FAST, max_examples=100)
@given(d=json_like)
def test_random_json_like_values(bundle, d):
    _check_dict(bundle, d)


@FAST
@given(st.data())
def test_mutations_of_a_valid_manifest(bundle, data):
    _, raw = bundle
    d = raw
    for _ in range(data.draw(st.integers(1, 3))):
        d = _mutate(data, d)
    _check_dict(bundle, d)
    m = None
    try:
        m = manifest_from_dict(d, bundle[0])
    except GenedgeError:
        pass
    if m is not None:  # hash checks of whatever was accepted: still only our errors
        for a in m.artifacts:
            _only_genedge_errors(lambda a=a: m.path_of(a))


@FAST
@given(st.binary(max_size=256))
def test_random_bytes_as_manifest(data):
    _check_bytes(data)


@FAST
@given(st.data())
def test_mutated_manifest_bytes(bundle, data):
    text = bytearray(json.dumps(bundle[1]).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text) - 1))
        text[pos] = data.draw(st.integers(0, 255))
    _check_bytes(bytes(text))


@pytest.mark.slow
@LONG
@given(st.data())
def test_mutations_of_a_valid_manifest_long(bundle, data):
    d = bundle[1]
    for _ in range(data.draw(st.integers(1, 6))):
        d = _mutate(data, d)
    _check_dict(bundle, d)


@pytest.mark.slow
@LONG
@given(st.binary(max_size=4096))
def test_random_bytes_as_manifest_long(data):
    _check_bytes(data)

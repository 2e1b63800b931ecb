"""Fuzz the ONNX guard: random bytes and mutated real models give a list or a genedge error.

And where onnx's own parser accepts a mutated model, every external location it sees is
one the guard saw too (the guard may see more: it judges every value of a repeated key).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_fixtures import build_model, onnx_locations, set_location

from genedge.errors import GenedgeError
from genedge.onnx_guard import _Malformed, check_external_data, external_locations

onnx = pytest.importorskip("onnx")

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _real_model_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.onnx"
        onnx.save_model(
            build_model(),
            path,
            save_as_external_data=True,
            location="weights.data",
            size_threshold=0,
        )
        m = onnx.load_model(path, load_external_data=False)
    set_location(m.graph.sparse_initializer[0].values, "weights.data")
    return m.SerializeToString()


REAL = _real_model_bytes()

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(REAL) - 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(REAL) - 1), st.integers(0, 64)),
    st.tuples(st.just("insert"), st.integers(0, len(REAL)), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("dup"), st.integers(0, len(REAL) - 1), st.integers(1, 200)),
    st.tuples(st.just("truncate"), st.integers(0, len(REAL)), st.just(0)),
)


def _mutate(data: bytes, ops: list) -> bytes:
    buf = bytearray(data)
    for op, pos, arg in ops:
        pos = min(pos, len(buf))
        if op == "flip" and pos < len(buf):
            buf[pos] ^= arg
        elif op == "cut":
            del buf[pos : pos + arg]
        elif op == "insert":
            buf[pos:pos] = arg
        elif op == "dup":
            buf[pos:pos] = buf[pos : pos + arg]
        elif op == "truncate":
            del buf[pos:]
    return bytes(buf)


def _parser_outcome(data: bytes) -> list[bytes] | None:
    """The guard's locations, or None when it calls the bytes malformed (nothing else may escape)."""
    try:
        return external_locations(data, len(data))
    except _Malformed:
        return None


def _onnx_locations(data: bytes) -> list[bytes] | None:
    try:
        m = onnx.load_model_from_string(data)
        return [s.encode() for s in onnx_locations(m)]
    except Exception:  # onnx rejects it: nothing to compare
        return None


def _check_agreement(data: bytes) -> None:
    ours = _parser_outcome(data)
    theirs = _onnx_locations(data)
    if ours is not None and theirs is not None:
        assert set(theirs) <= set(ours), (theirs, ours)


def _check_whole(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "model.onnx").write_bytes(data)
        (Path(d) / "weights.data").write_bytes(b"\0" * 64)
        try:
            files = check_external_data(Path(d) / "model.onnx", d)
        except GenedgeError:
            return
        assert all(not f.startswith(("/", "..")) for f in files)


def test_the_seed_model_agrees_with_onnx():
    assert _onnx_locations(REAL) and set(_onnx_locations(REAL)) == set(_parser_outcome(REAL))


@FAST
@given(st.binary(max_size=512))
def test_random_bytes(data):
    _parser_outcome(data)
    _check_agreement(data)


@FAST
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_real_models(ops):
    data = _mutate(REAL, ops)
    _check_agreement(data)
    _check_whole(data)


@pytest.mark.slow
@LONG
@given(st.lists(mutation, min_size=1, max_size=8))
def test_mutated_real_models_long(ops):
    data = _mutate(REAL, ops)
    _check_agreement(data)
    _check_whole(data)


@pytest.mark.slow
@LONG
@given(st.binary(max_size=4096))
def test_random_bytes_long(data):
    _check_agreement(data)
    _check_whole(data)

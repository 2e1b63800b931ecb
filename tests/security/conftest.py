"""Fixtures for the security tests: real ONNX bundles and a planted secret."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from security_fixtures import SECRET, build_model, set_location, tensor_places


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A file outside every bundle that must never be read or shown."""
    outside = tmp_path / "outside"
    outside.mkdir()
    p = outside / "secret.txt"
    p.write_text(SECRET * 8)
    return p


@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """Write ``bundle/model.onnx`` with every tensor in ``weights.data``; optionally edit one location.

    Returns ``(bundle folder, model path)``.
    """
    import onnx

    def make(place: str | None = None, location: str | None = None, name: str = "bundle"):
        bundle = tmp_path / name
        bundle.mkdir()
        model = build_model()
        path = bundle / "model.onnx"
        onnx.save_model(
            model,
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="weights.data",
            size_threshold=0,
        )
        if place is not None:
            model = onnx.load_model(path, load_external_data=False)
            tensors = dict(tensor_places(model))
            set_location(tensors[place], location)
            path.write_bytes(model.SerializeToString())
        return bundle, path

    return make


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory) -> dict[str, Path]:
    """Tiny exported bundles and their checkpoints (``hostile_corpus.build_tiny_bundles``)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from hostile_corpus import build_tiny_bundles

    return build_tiny_bundles(tmp_path_factory.mktemp("tiny"))

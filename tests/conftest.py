"""Shared test fixtures (kept minimal)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def genedge_cache(tmp_path_factory):
    """Point ``$GENEDGE_CACHE`` at a session temp dir for every test, so judges (classifiers
    trained on a dataset's labels, ``genedge.train.judge``) are trained once per test session
    and never written to the user's real cache."""
    path = tmp_path_factory.mktemp("genedge-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENEDGE_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def digits16():
    """The built-in digits at 16x16 (ImageData)."""
    from genedge.train.data import load_image_data

    return load_image_data("digits")

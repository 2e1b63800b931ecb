"""genedge.user_cache: one rule for every per-user cache, and every cache follows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from genedge.user_cache import user_cache


def test_genedge_cache_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("GENEDGE_CACHE", str(tmp_path / "g"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert user_cache("tune") == tmp_path / "g" / "tune"


def test_xdg_cache_home_when_absolute(monkeypatch, tmp_path):
    monkeypatch.delenv("GENEDGE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert user_cache() == tmp_path / "x" / "genedge"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # invalid per the XDG spec
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache("a", "b") == tmp_path / "home" / ".cache" / "genedge" / "a" / "b"


def test_every_cache_lives_under_it(monkeypatch, tmp_path):
    """Tunings, ORT's TensorRT engines and the training caches: the same root (an
    XDG_CACHE_HOME once sent the engines to ~/.cache while the tunings went to XDG)."""
    from genedge.runtime import tune_cache
    from genedge.runtime.ort_backend import trt_ep_cache_dir

    monkeypatch.delenv("GENEDGE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    root = tmp_path / "x" / "genedge"
    assert tune_cache.cache_dir() == root / "tune"
    engines = trt_ep_cache_dir("ab" * 32)
    assert engines is not None and Path(engines).parent == root / "ort-trt"
    pytest.importorskip("torch")
    from genedge.train.datasets import cache_root as datasets_root
    from genedge.train.features import cache_root

    assert cache_root() == root and datasets_root() == root / "datasets"

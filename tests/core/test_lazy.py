"""``genedge.lazy``: a declared module is imported at its first use, and a missing one names
the extra that installs it."""

from __future__ import annotations

import sys
import types

import pytest

from genedge.errors import MissingExtraError
from genedge.lazy import MODULE_EXTRAS, is_loaded, lazy_import, load


def test_declaring_imports_nothing_and_first_use_imports_once(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    colorsys = lazy_import("colorsys", extra="train")
    assert "colorsys" not in sys.modules and not is_loaded(colorsys)
    assert "not imported yet" in repr(colorsys)
    assert colorsys.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert is_loaded(colorsys) and load(colorsys) is sys.modules["colorsys"]


def test_a_missing_package_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    monkeypatch.setitem(sys.modules, "onnx.numpy_helper", None)  # and so does the submodule
    onnx = lazy_import("onnx.numpy_helper")
    with pytest.raises(MissingExtraError) as e:
        _ = onnx.to_array  # the first attribute access imports
    assert (e.value.module, e.value.extra) == ("onnx", MODULE_EXTRAS["onnx"])
    assert f"pip install 'genedge[{MODULE_EXTRAS['onnx']}]'" in e.value.hint
    assert e.value.exit_code == 3


def test_a_package_without_a_known_extra_must_name_one():
    with pytest.raises(ValueError, match="no extra known"):
        lazy_import("somethingelse")
    assert lazy_import("somethingelse", extra="cpu")._extra == "cpu"


def test_the_modules_own_names_read_through(monkeypatch):
    """``onnx.load`` and ``torch.load`` are the module's, not the stand-in's."""
    fake = types.ModuleType("genedge_fake_heavy")
    fake.load = lambda path: f"loaded {path}"
    fake.loaded = "the module's"
    monkeypatch.setitem(sys.modules, "genedge_fake_heavy", fake)
    mod = lazy_import("genedge_fake_heavy", extra="cpu")
    assert mod.load("m.onnx") == "loaded m.onnx" and mod.loaded == "the module's"
    assert load(mod) is fake


def test_require_and_lazy_import_name_the_same_extras():
    """``require(module, extra)`` names its extra by hand; ``lazy_import`` reads
    ``MODULE_EXTRAS``. Every call in the source must agree with the table, and every extra
    of the table must be one pyproject.toml defines."""
    import ast
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[2]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(MODULE_EXTRAS.values()) <= set(extras)
    calls = []
    for folder in ("genedge", "export", "runtime", "train", "bench"):
        for path in (root / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                f = getattr(node, "func", None)
                if (
                    isinstance(node, ast.Call)
                    and getattr(f, "id", getattr(f, "attr", "")) == "require"
                ):
                    args = [a.value for a in node.args[:2] if isinstance(a, ast.Constant)]
                    if len(args) == 2:
                        calls.append((path.relative_to(root), *args))
    assert len(calls) >= 10  # the walk found the calls
    wrong = [c for c in calls if MODULE_EXTRAS.get(c[1].split(".")[0]) != c[2]]
    assert not wrong, wrong

"""The published layout (``train/ export/ runtime/ bench/`` at the root, the core in
``genedge/``) and the import names agree: every source file is the module its path says, and
every folder of modules is a package the wheel ships."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from test_architecture import STAGES  # the stage folders and their import names

REPO = Path(__file__).resolve().parents[2]

SCRIPTS = {"bench/results"}  # scripts that remake committed results, run by path: not modules


def module_name(path: Path) -> str:
    """``export/routes/byo.py`` -> ``genedge.export.routes.byo``."""
    rel = path.relative_to(REPO)
    parts = [STAGES[rel.parts[0]], *rel.parts[1:-1]]
    if rel.stem != "__init__":
        parts.append(rel.stem)
    return ".".join(parts)


def source_files() -> list[Path]:
    files = (p for stage in STAGES for p in (REPO / stage).rglob("*.py"))
    return sorted(p for p in files if str(p.parent.relative_to(REPO)) not in SCRIPTS)


def test_module_name_of_a_path():
    assert module_name(REPO / "export/routes/byo.py") == "genedge.export.routes.byo"
    assert module_name(REPO / "genedge/manifest.py") == "genedge.manifest"
    assert module_name(REPO / "runtime/__init__.py") == "genedge.runtime"


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_file_is_the_module_its_path_names(path: Path):
    spec = importlib.util.find_spec(module_name(path))
    assert spec is not None and spec.origin is not None, module_name(path)
    assert Path(spec.origin).resolve() == path.resolve()


def test_every_folder_of_modules_is_a_shipped_package():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = set(config["tool"]["setuptools"]["packages"])
    folders = {p.parent for p in source_files()}
    for folder in folders:
        assert (folder / "__init__.py").is_file(), f"{folder.relative_to(REPO)} has no __init__"
    packages = {module_name(folder / "__init__.py") for folder in folders}
    assert packages == shipped, (sorted(packages - shipped), sorted(shipped - packages))
    dirs = config["tool"]["setuptools"]["package-dir"]
    assert {name: REPO / path for name, path in dirs.items()} == {
        name: REPO / stage for stage, name in STAGES.items()
    }

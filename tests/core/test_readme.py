"""The README's Python snippets run as written.

Each ```python block of README.md runs, unedited, in a folder that holds the bundles it names:
``gan-bundle`` (a conditional GAN, as the tour exports) and ``ar-bundle`` (a text model), both
exported from tiny random-weight checkpoints. Names a snippet writes itself (``dcgan-bundle``)
land in the same folder. The blocks run in README order in one namespace, as a reader pasting
them into one session would.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

README = Path(__file__).parents[2] / "README.md"
EXPORT_TESTS = Path(__file__).parents[1] / "export"


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every ```python fenced block in ``text``."""
    return [
        (text.count("\n", 0, m.start(1)) + 1, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)
    ]


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory) -> Path:
    """A folder holding the bundles the README names, exported from tiny checkpoints."""
    from genedge.export.bundle import export_bundle

    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXPORT_TESTS))
        from export_helpers import GAN_CFG, GRU_CFG, fast_options, make_checkpoint

    root = tmp_path_factory.mktemp("readme")
    gan = make_checkpoint(root / "gan.safetensors", "gan", GAN_CFG)  # 4 classes: label 3 exists
    export_bundle(fast_options(gan, root / "gan-bundle", precisions=("fp32", "int8")))
    ar = make_checkpoint(root / "ar.safetensors", "ar", GRU_CFG)
    export_bundle(fast_options(ar, root / "ar-bundle", precisions=("fp32",)))
    return root


def test_the_readme_has_python_snippets():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 2 and all(code.strip() for _, code in blocks)


def test_every_python_snippet_runs_as_written(readme_folder, genedge_cache, monkeypatch, capsys):
    monkeypatch.chdir(readme_folder)
    namespace: dict = {"__name__": "__readme__"}
    for line, code in python_blocks(README.read_text()):
        exec(compile(code, f"README.md (block at line {line})", "exec"), namespace)
    out = capsys.readouterr().out
    assert "Sampler(" in out and "tok/s" in out  # the snippets' own prints ran
    assert namespace["images"].dtype.name == "uint8"
    assert (readme_folder / "dcgan-bundle" / "manifest.json").is_file()

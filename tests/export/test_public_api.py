"""``genedge.export``'s public names: each resolves to the function its room defines, and the
package itself imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import pytest

import genedge.export as export


@pytest.mark.parametrize("name", export.__all__)
def test_every_public_name_resolves_to_its_room(name):
    obj = getattr(export, name)
    assert obj.__name__ == name
    assert obj.__module__ == f"genedge.export.{export._PUBLIC[name]}"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'export_everything'"):
        export.export_everything  # noqa: B018


def test_the_package_imports_nothing_heavy():
    code = (
        "import sys, genedge.export\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

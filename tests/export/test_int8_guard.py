"""No silent nonsense: an int8 that quantizes no main op is not written; collapsed models fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from export_helpers import GAN_CFG, fast_options

from genedge.errors import CorruptArtifactError
from genedge.manifest import MANIFEST_NAME, read_manifest


def _graph(tmp_path: Path, op: str) -> Path:
    """z (B, 4) -> one weighted ``op`` -> y: the smallest graph the quantizer sees."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if op == "ConvTranspose":
        inits = [
            numpy_helper.from_array(np.array([-1, 4, 1, 1], np.int64), "shape"),
            numpy_helper.from_array(rng.standard_normal((4, 2, 2, 2)).astype(np.float32), "W"),
        ]
        nodes = [
            helper.make_node("Reshape", ["z", "shape"], ["x"]),
            helper.make_node("ConvTranspose", ["x", "W"], ["y"], name="up", strides=[2, 2]),
        ]
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 2, 2, 2])
    else:
        inits = [numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "W")]
        nodes = [helper.make_node("MatMul", ["z", "W"], ["y"], name="mm")]
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 8])
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", 4])], [out], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / f"{op}.onnx"
    onnx.save(model, str(path))
    return path


def test_quantized_weight_nodes_tells_an_int8_graph_from_a_float_one(tmp_path):
    import onnx

    from genedge.export.stages.int8 import int8_from_onnx, quantized_weight_nodes

    feeds = [{"z": np.random.default_rng(1).standard_normal((16, 4)).astype(np.float32)}]
    mm = int8_from_onnx(_graph(tmp_path, "MatMul"), tmp_path / "mm.int8.onnx", feeds)
    assert quantized_weight_nodes(onnx.load(str(mm))) == ["mm"]
    assert quantized_weight_nodes(onnx.load(str(_graph(tmp_path, "MatMul")))) == []
    ct = int8_from_onnx(_graph(tmp_path, "ConvTranspose"), tmp_path / "ct.int8.onnx", feeds)
    # the strided ConvTranspose is quantized as its four phase convolutions
    assert quantized_weight_nodes(onnx.load(str(ct))) == [
        f"up/phase{r}{q}" for r in "01" for q in "01"
    ]


def test_an_int8_that_quantizes_nothing_is_skipped_with_a_reason(ckpts, tmp_path, monkeypatch):
    import genedge.export.stages.int8 as int8
    from genedge.export.bundle import export_bundle

    def quantizes_nothing(src, out, feeds, **kw):
        shutil.copyfile(src, out)
        return Path(out)

    monkeypatch.setattr(int8, "int8_from_onnx", quantizes_nothing)
    lines: list[str] = []
    out = export_bundle(
        fast_options(ckpts["gan"], tmp_path / "b", precisions=("fp32", "int8")), log=lines.append
    )
    assert not (out / "model.int8.onnx").exists()
    assert read_manifest(out).find(precision="int8") == []
    skipped = json.loads((out / MANIFEST_NAME).read_text())["source"]["skipped"]
    assert "int8" in skipped and "ConvTranspose" in skipped["int8"]
    assert any(line.startswith("int8 skipped:") for line in lines)


@pytest.mark.parametrize("bias", [100.0, -100.0])
def test_a_collapsed_generator_fails_the_export_check(tmp_path, bias):
    from genedge.export.bundle import export_bundle
    from genedge.train.checkpoint import save_checkpoint
    from genedge.train.gan import Generator

    torch.manual_seed(0)
    g = Generator(GAN_CFG).eval()
    with torch.no_grad():
        g.to_img.weight.zero_()
        g.to_img.bias.fill_(bias)  # tanh(+-100): every pixel 255 (or 0)
    ckpt = save_checkpoint(tmp_path / "collapsed.safetensors", g, GAN_CFG, kind="gan")
    with pytest.raises(CorruptArtifactError, match="ends of its output range") as info:
        export_bundle(fast_options(ckpt, tmp_path / "b", precisions=("fp32",)))
    assert info.value.exit_code == 2
    assert not (tmp_path / "b").exists()

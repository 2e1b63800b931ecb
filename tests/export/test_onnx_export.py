"""ONNX graphs: names, dtypes, dynamic batch, fused post-processing, torch parity per graph."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from genedge.export.checks.parity import (
    onnx_runner,
    parity_feed,
    step_sequence_error,
    torch_outputs,
)
from genedge.export.routes.onnx_export import load_generator, onnx_from_module, save_onnx
from genedge.export.routes.wrappers import graphs_for

ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.INT64: "int64",
}


def _io(model) -> dict[str, tuple[str, list]]:
    out = {}
    for vi in list(model.graph.input) + list(model.graph.output):
        t = vi.type.tensor_type
        out[vi.name] = (ONNX_DTYPES[t.elem_type], [d.dim_param or d.dim_value for d in t.shape.dim])
    return out


def _export(ckpt, tmp_path, output_format="uint8"):
    model, cfg, kind = load_generator(ckpt)
    graphs = graphs_for(kind, model, cfg, output_format)
    paths = [
        save_onnx(onnx_from_module(w, spec), tmp_path / f"{spec.stem}.onnx")[0]
        for spec, w in graphs
    ]
    return model, cfg, kind, graphs, paths


def test_gan_io_names_dtypes_dynamic_batch(ckpts, tmp_path):
    model, cfg, kind, graphs, (path,) = _export(ckpts["gan"], tmp_path)
    m = onnx.load(str(path))
    assert m.opset_import[0].version >= 17
    assert _io(m) == {
        "z": ("float32", ["B", 16]),
        "label": ("int64", ["B"]),
        "image": ("uint8", ["B", 8, 8, 1]),
    }
    runner, (spec, wrapper) = onnx_runner(path), graphs[0]
    for n in (1, 5):  # dynamic batch
        feed = parity_feed(spec, cfg, kind, seed=3, n=n)
        out = runner.run(feed)["image"]
        assert out.shape == (n, 8, 8, 1) and out.dtype == np.uint8
        ref = torch_outputs(wrapper, spec, feed)["image"]
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_uint8_output_is_denormalised_in_graph(ckpts, tmp_path):
    model, cfg, kind, graphs, (path,) = _export(ckpts["gan"], tmp_path)
    feed = parity_feed(graphs[0][0], cfg, kind, seed=1, n=4)
    with torch.no_grad():
        x = model(
            torch.from_numpy(feed["z"]), torch.from_numpy(feed["label"])
        ).numpy()  # (B, C, H, W)
    expected = np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    got = onnx_runner(path).run(feed)["image"]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_float_output_format_is_nchw(ckpts, tmp_path):
    model, cfg, kind, graphs, (path,) = _export(ckpts["gan"], tmp_path, "float")
    assert _io(onnx.load(str(path)))["image"] == ("float32", ["B", 1, 8, 8])
    spec, wrapper = graphs[0]
    feed = parity_feed(spec, cfg, kind, seed=2, n=3)
    got, ref = onnx_runner(path).run(feed)["image"], torch_outputs(wrapper, spec, feed)["image"]
    assert np.abs(got - ref).max() < 1e-4 and got.min() >= -1 and got.max() <= 1


def test_vae_decoder_and_encoder_graphs(ckpts, tmp_path):
    model, cfg, kind, graphs, paths = _export(ckpts["vae"], tmp_path)
    assert [s.name for s, _ in graphs] == ["decoder", "encoder"]
    assert _io(onnx.load(str(paths[0]))) == {
        "z": ("float32", ["B", 8]),
        "image": ("uint8", ["B", 8, 8, 1]),
    }
    assert _io(onnx.load(str(paths[1]))) == {
        "image": ("uint8", ["B", 8, 8, 1]),
        "mu": ("float32", ["B", 8]),
        "logvar": ("float32", ["B", 8]),
    }
    spec, wrapper = graphs[1]
    feed = parity_feed(spec, cfg, kind, seed=0, n=5)
    got, ref = onnx_runner(paths[1]).run(feed), torch_outputs(wrapper, spec, feed)
    assert max(np.abs(got[k] - ref[k]).max() for k in ("mu", "logvar")) < 1e-4
    with (
        torch.no_grad()
    ):  # the wrapper's uint8 -> [-1, 1] matches the encoder's own input convention
        x = torch.from_numpy(feed["image"]).permute(0, 3, 1, 2).float() / 127.5 - 1
        mu, _ = model.encode(x)
    assert np.abs(got["mu"] - mu.numpy()).max() < 1e-4


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_ar_step_graph_matches_torch_over_steps(ckpts, tmp_path, name):
    model, cfg, kind, graphs, (path,) = _export(ckpts[name], tmp_path)
    state = ["h"] if name == "gru" else ["h", "c"]
    io = _io(onnx.load(str(path)))
    assert io["token"] == ("int64", ["B"]) and io["logits"] == ("float32", ["B", 7])
    for s in state:
        assert io[s] == ("float32", [2, "B", 16]) and io[f"{s}_out"] == ("float32", [2, "B", 16])
    spec, wrapper = graphs[0]
    assert step_sequence_error(wrapper, onnx_runner(path), spec, cfg, seed=0, steps=10) < 1e-4


def test_external_data_for_large_weights(ckpts, tmp_path):
    model, cfg, kind = load_generator(ckpts["gan"])
    spec, wrapper = graphs_for(kind, model, cfg, "uint8")[0]
    files = save_onnx(
        onnx_from_module(wrapper, spec), tmp_path / "model.onnx", external_threshold=0
    )
    assert [f.name for f in files] == ["model.onnx", "model.onnx.data"]
    assert files[1].stat().st_size > files[0].stat().st_size
    feed = parity_feed(spec, cfg, kind, seed=0, n=2)
    ref = torch_outputs(wrapper, spec, feed)["image"]
    assert np.abs(onnx_runner(files[0]).run(feed)["image"].astype(int) - ref.astype(int)).max() <= 1

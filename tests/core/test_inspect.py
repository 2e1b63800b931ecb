"""`genedge inspect`: a bundle, a foreign ONNX file and a checkpoint described; bad files refused."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest

from genedge.cli import main
from genedge.manifest import MANIFEST_NAME, artifact_record, read_manifest, write_manifest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

EXPORT_TESTS = Path(__file__).parents[1] / "export"
ENGINE = {
    "tensorrt_version": "10.3.0",
    "device_name": "Orin",
    "compute_capability": "8.7",
    "profiles": [[1, 8, 32]],
    "version_compatible": False,
    "dla_core": None,
}


@pytest.fixture(scope="module")
def helpers():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXPORT_TESTS))
        import export_helpers

        yield export_helpers


@pytest.fixture(scope="module")
def checkpoint(helpers, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "gan.safetensors"
    return helpers.make_checkpoint(path, "gan", helpers.GAN_CFG)


@pytest.fixture(scope="module")
def bundle(helpers, checkpoint, tmp_path_factory) -> Path:
    from genedge.export.bundle import export_bundle

    out = tmp_path_factory.mktemp("bundle") / "gan"
    return export_bundle(helpers.fast_options(checkpoint, out, precisions=("fp32", "int8")))


@pytest.fixture(scope="module")
def foreign_onnx(tmp_path_factory) -> Path:
    """Someone else's graph: their own tensor names, a symbolic batch `N`, one weight."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((8, 12), np.float32), "W")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["noise", "W"], ["h"]),
            helper.make_node("Tanh", ["h"], ["pic"]),
        ],
        "theirs",
        [helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("pic", TensorProto.FLOAT, ["N", 12])],
        [w],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="their-tool"
    )
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "theirs.onnx"
    onnx.save(model, str(path))
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["inspect", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- a bundle
def test_bundle_report_shows_io_precisions_verdicts_speed_and_hashes(bundle, capsys):
    code, out, err = _run(capsys, bundle)
    assert code == 0, err
    m = read_manifest(bundle)
    assert "(kind gan, schema 1)" in out
    assert "in  z      float32  [B, 16]" in out and "in  label  int64    [B]" in out
    assert "out image  uint8    [B, 8, 8, 1]  NHWC" in out
    int8 = m.find(precision="int8")[0]
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("int8 "))
    assert int8.verification.verdict in line and "dB" in line
    if int8.speed is not None:  # recorded latency at batch 1, with its ratio to fp32
        assert f"{int8.speed.batch[1].p50_ms:.3f} ms" in line
    for a in m.artifacts:
        assert a.sha256[:16] in out
    assert "TensorRT engines\n  none" in out
    source = next(ln for ln in out.splitlines() if ln.startswith("source "))
    assert m.source["path"] in source  # where the checkpoint is, relative to the bundle
    assert max(len(ln) for ln in out.splitlines()) < 100 + len(str(bundle))


def test_bundle_json_carries_the_manifest_records(bundle, capsys):
    code, out, _ = _run(capsys, bundle / MANIFEST_NAME, "--json")
    assert code == 0
    d = json.loads(out)
    m = read_manifest(bundle)
    assert d["type"] == "bundle" and d["kind"] == "gan"
    assert d["graphs"]["generator"]["inputs"][0] == {
        "name": "z",
        "dtype": "float32",
        "shape": ["B", 16],
        "layout": None,
    }
    assert {p["precision"] for p in d["precisions"]} == {"fp32", "int8"}
    for p in d["precisions"]:
        a = next(a for a in m.artifacts if a.file == p["file"])
        assert p["verdict"] == a.verification.verdict
        assert p["quality_approved"] == a.quality_approved
        assert p["speed"] == (
            None
            if a.speed is None
            else {
                "backend": a.speed.backend,
                "machine": a.speed.machine,
                "threads": a.speed.threads,
                "batch": {
                    str(b): {"p50_ms": s.p50_ms, "speedup_vs_fp32": s.speedup_vs_fp32}
                    for b, s in sorted(a.speed.batch.items())
                },
                "others": {
                    k: {str(b): ms for b, ms in sorted(v.items())}
                    for k, v in a.speed.others.items()
                },
                "busy": a.speed.busy,
            }
        )
    assert {f["file"]: f["sha256"] for f in d["files"]} == {a.file: a.sha256 for a in m.artifacts}
    assert d["source"] == m.source and d["engines"] == []


def test_engines_show_the_tensorrt_version_and_gpu_they_need(bundle, tmp_path, capsys):
    copy = shutil.copytree(bundle, tmp_path / "b")
    name = "model.int8.sm87.trt10.3.engine"
    m = read_manifest(copy)
    (copy / name).write_bytes(b"plan")
    engine = artifact_record(
        copy, name, graph="generator", format="engine", precision="int8", engine=ENGINE
    )
    write_manifest(copy, dataclasses.replace(m, artifacts=(*m.artifacts, engine)))
    code, out, _ = _run(capsys, copy)
    assert code == 0
    assert f"{name}  int8: TensorRT 10.3.0, sm 8.7 (Orin), batch 1:8:32" in out
    code, out, _ = _run(capsys, copy, "--json")
    (e,) = json.loads(out)["engines"]
    assert e["compute_capability"] == "8.7" and e["profiles"] == [[1, 8, 32]]


# ---------------------------------------------------------------- ONNX files
def test_foreign_onnx_shows_its_own_names_dims_and_opsets(foreign_onnx, capsys):
    code, out, err = _run(capsys, foreign_onnx)
    assert code == 0, err
    assert "in  noise  float32  [N, 8]" in out and "out pic    float32  [N, 12]" in out
    assert "ai.onnx 17" in out and "MatMul x1" in out and "96 parameters" in out
    assert "their-tool" in out
    code, out, _ = _run(capsys, foreign_onnx, "--json")
    d = json.loads(out)
    assert d["type"] == "onnx" and d["reader"] == "onnx" and d["parameters"] == 96
    assert [t["name"] for t in d["inputs"]] == ["noise"]  # the weight is not an input


def test_onnx_without_the_onnx_package_is_read_by_onnxruntime(foreign_onnx, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)
    code, out, err = _run(capsys, foreign_onnx, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["reader"] == "onnxruntime"
    assert d["inputs"] == [{"name": "noise", "dtype": "float32", "shape": ["N", 8], "layout": None}]


def test_onnx_without_onnx_or_onnxruntime_names_the_extras(foreign_onnx, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, out, err = _run(capsys, foreign_onnx)
    assert code == 3 and out == ""
    assert "genedge[export]" in err and "genedge[cpu]" in err and "Traceback" not in err


def test_a_bundle_graph_reads_as_an_onnx_file(bundle, capsys):
    code, out, _ = _run(capsys, bundle / "model.onnx")
    assert code == 0 and "in  z      float32  [B, 16]" in out


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_shows_kind_config_call_and_hash(checkpoint, helpers, capsys):
    from genedge.manifest import sha256_file

    code, out, err = _run(capsys, checkpoint)
    assert code == 0, err
    cfg = helpers.GAN_CFG
    assert out.splitlines()[1].startswith("kind       gan, step 0")
    assert f"latent_dim {cfg.latent_dim}" in out and "in  labels  int64    [B]" in out
    assert f"out image   float32  [B, {cfg.channels}, {cfg.image_size}, {cfg.image_size}]" in out
    code, out, _ = _run(capsys, checkpoint, "--json")
    d = json.loads(out)
    assert d["type"] == "checkpoint" and d["config"] == dataclasses.asdict(cfg)
    assert d["sha256"] == sha256_file(checkpoint) and d["parameters"] > 0
    assert d["dtypes"] == ["float32"] or "float32" in d["dtypes"]


def test_checkpoint_without_torch_names_the_train_extra(checkpoint, monkeypatch, capsys):
    import genedge

    monkeypatch.setitem(sys.modules, "torch", None)
    # the re-import below rebinds genedge.train (and its submodules' attributes) to new module
    # objects; put the originals back afterwards, as later tests resolve names through them
    monkeypatch.setattr(genedge, "train", sys.modules.get("genedge.train"), raising=False)
    before = set(sys.modules)
    for name in [m for m in sys.modules if m.startswith("genedge.train")]:
        monkeypatch.delitem(sys.modules, name)
    try:
        code, _, err = _run(capsys, checkpoint)
    finally:  # modules first imported here would hang off the discarded package object
        for name in [m for m in sys.modules if m.startswith("genedge.train") and m not in before]:
            del sys.modules[name]
    assert code == 3 and "pip install 'genedge[train]'" in err and "torch" in err


# ---------------------------------------------------------------- bad files
@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.onnx", b"", "is empty"),
        ("garbage.onnx", b"\xff\xfe not a protobuf \x00" * 4, "not a valid ONNX model"),
        ("garbage.safetensors", b"\x00" * 4, "truncated"),
        ("text.safetensors", b"not a safetensors file at all", "not a readable safetensors"),
        ("weights.pt", b"PK\x03\x04", "not something genedge inspects"),
        ("missing.onnx", None, "does not exist"),
    ],
)
def test_bad_files_are_one_line_exit_2(tmp_path, capsys, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code, out, err = _run(capsys, path)
    assert code == 2 and out == "" and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_folder_without_manifest_is_exit_2(tmp_path, capsys):
    code, _, err = _run(capsys, tmp_path)
    assert code == 2 and "no manifest.json" in err


def test_a_damaged_bundle_is_refused_as_elsewhere(bundle, tmp_path, capsys):
    copy = shutil.copytree(bundle, tmp_path / "b")
    raw = json.loads((copy / MANIFEST_NAME).read_text())
    (copy / MANIFEST_NAME).write_text(json.dumps({**raw, "schema_version": 99}))
    code, _, err = _run(capsys, copy)
    assert code == 4 and "schema_version 99" in err
    (copy / MANIFEST_NAME).write_text("{ truncated")
    code, _, err = _run(capsys, copy)
    assert code == 2 and "not valid JSON" in err

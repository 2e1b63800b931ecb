"""Strings from files reach the terminal escaped: every field, every record, every command.

A manifest, an ONNX file, a checkpoint's metadata, a vocabulary and ``$GENEDGE_CACHE`` may
carry terminal escapes (``\\x1b[31m``, BEL, an OSC title, ``\\u202e``, ``\\r``).
``genedge.errors.printable`` is the one sanitizer between them and a terminal. The walks
below are driven by the files themselves (every string value and every key, found by
walking the JSON or the protobuf), so a field added later is covered without a new test:
whatever a command does with it (show it, refuse it), no raw control or bidi character may
reach stdout or stderr, and no command may crash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hostile_corpus import (
    HOSTILE,
    object_paths,
    raw_controls,
    string_places,
    with_hostile,
    with_key,
    write_json,
)

from genedge.cli import main
from genedge.errors import GenedgeError
from genedge.manifest import MANIFEST_NAME, read_manifest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ENGINE_FILE = "model.int8.sm87.trt10.3.engine"
ENGINE = {
    "tensorrt_version": "10.3.0",
    "device_name": "Orin",
    "compute_capability": "8.7",
    "profiles": [[1, 8, 32]],
    "version_compatible": False,
    "dla_core": None,
    "built_from": "model.int8.onnx",
}
FREE_FORM = ("producer", "source")  # manifest sections whose keys are names, not fields
BF16 = {"backend": "openvino", "verification": {"verdict": "pass", "reason": "ok"}}


def _run(capsys, *argv: str) -> tuple[int, str]:
    """``genedge ARGV`` in this process: (exit code, stdout + stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    out = capsys.readouterr()
    return code, out.out + out.err


def _loads(bundle: Path) -> bool:
    try:
        m = read_manifest(bundle)
        for a in m.artifacts:
            if a.format == "onnx":
                m.path_of(a)
    except GenedgeError:
        return False
    return True


def _runs(bundle: Path) -> bool:
    from genedge.runtime import Sampler

    if not _loads(bundle):
        return False
    try:
        with Sampler.open(bundle, backend="ort-cpu", precision="fp32") as s:
            s.sample(2, seed=0)
    except GenedgeError:
        return False
    return True


@pytest.fixture(scope="module")
def rich_bundle(tiny_bundles, tmp_path_factory) -> tuple[Path, dict]:
    """The tiny GAN bundle with every record type its manifest can hold: an engine entry,
    an inference-precision record, and an unknown key in every object that keeps it."""
    b = tmp_path_factory.mktemp("rich") / "gan"
    shutil.copytree(tiny_bundles["gan"], b)
    doc = json.loads((b / MANIFEST_NAME).read_text())
    plan = b"plan" * 8
    (b / ENGINE_FILE).write_bytes(plan)
    doc["artifacts"].append(
        {
            "file": ENGINE_FILE,
            "graph": "generator",
            "format": "engine",
            "sha256": hashlib.sha256(plan).hexdigest(),
            "size": len(plan),
            "precision": "int8",
            "engine": ENGINE,
        }
    )
    fp32 = next(a for a in doc["artifacts"] if a.get("precision") == "fp32")
    fp32["inference_precisions"] = {"bf16": BF16}
    doc.setdefault("source", {})["skipped"] = {"fp16": "not asked for"}
    write_json(b / MANIFEST_NAME, doc)
    assert _runs(b)
    # an unknown key in every object whose reader keeps it (forward-compatible records)
    for at in list(object_paths(doc)):
        trial = with_key(doc, at)
        write_json(b / MANIFEST_NAME, trial)
        if _runs(b):
            doc = trial
    write_json(b / MANIFEST_NAME, doc)
    assert _runs(b)
    return b, doc


def test_every_manifest_string_reaches_inspect_escaped(rich_bundle, tmp_path, capsys):
    """Each string value and key of a manifest holding every record type, made hostile one
    at a time: `inspect` (text and --json) shows it escaped or refuses it in one line."""
    src, doc = rich_bundle
    b = tmp_path / "b"
    shutil.copytree(src, b)
    places = list(string_places(doc))
    assert len(places) > 100  # the walk reaches the records, not only the top level
    leaks, crashes, shown = [], [], 0
    for place in places:
        write_json(b / MANIFEST_NAME, with_hostile(doc, place))
        for flags in ((), ("--json",)):
            code, out = _run(capsys, "inspect", b, *flags)
            if raw_controls(out):
                leaks.append((place, flags, raw_controls(out)))
            if code not in (0, 2, 4) or "Traceback" in out or "internal error" in out:
                crashes.append((place, flags, code, out[-300:]))
            shown += code == 0 and ("\\x1b" in out or "\\u001b" in out)
    assert not leaks, leaks[:5]
    assert not crashes, crashes[:5]
    assert shown > len(places) // 4  # many are shown (escaped), not all refused


@pytest.fixture(scope="module")
def hostile_bundle(rich_bundle, tmp_path_factory) -> Path:
    """The rich bundle with every string made hostile that still lets it load and sample."""
    src, doc = rich_bundle
    b = tmp_path_factory.mktemp("hostile") / "gan"
    shutil.copytree(src, b)
    kept = 0
    for place in reversed(list(string_places(doc))):  # children before a key is renamed
        what, at = place
        if what == "key" and not (at[-1] == "x_unknown" or at[0] in FREE_FORM):
            continue  # a known key renamed is a missing field: refused, shown by inspect above
        trial = with_hostile(doc, place)
        write_json(b / MANIFEST_NAME, trial)
        if _runs(b):
            doc, kept = trial, kept + 1
    write_json(b / MANIFEST_NAME, doc)
    assert _runs(b) and kept >= 20, kept
    return b


@pytest.mark.parametrize(
    "argv",
    [
        ("inspect", "{b}"),
        ("inspect", "{b}", "--json"),
        ("sample", "{b}", "-n", "4", "--out", "{tmp}/s.png"),
        ("sample", "{b}", "-n", "2", "--backend", "ort-cpu", "--out", "{tmp}/t.png"),
        ("live", "{b}", "--seconds", "0.3", "--fps", "10", "--json", "{tmp}/live.json"),
        ("tune", "{b}", "--seconds", "0.2", "--batch", "1", "--backends", "ort-cpu"),
        (
            "bench", "{b}", "--iters", "2", "--warmup", "0", "--batch", "1", "--baselines",
            "ort", "--cold-runs", "0", "--rounds", "1", "--json", "{tmp}/bench.json",
        ),
        ("eval", "{b}", "-n", "8", "--precision", "fp32"),
    ],
    ids=lambda a: "-".join(x for x in a if not x.startswith("{"))[:40],
)  # fmt: skip
def test_every_command_shows_a_hostile_bundle_escaped(argv, hostile_bundle, tmp_path, capsys):
    args = [a.format(b=hostile_bundle, tmp=tmp_path) for a in argv]
    code, out = _run(capsys, *args)
    assert code == 0, out[-2000:]
    assert not raw_controls(out), (raw_controls(out), out[-2000:])
    if argv[0] == "inspect":  # the hostile fields are there to see, escaped
        assert out.count("\\x1b" if len(argv) == 2 else "\\u001b") >= 10


def test_an_onnx_files_strings_reach_inspect_escaped(tmp_path, capsys):
    """Names, symbolic dimensions, producer, domains and op types of a foreign ONNX file."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    def model():
        w = numpy_helper.from_array(np.ones((8, 12), np.float32), "W")
        g = helper.make_graph(
            [helper.make_node("MatMul", ["noise", "W"], ["h"], name="mm"),
             helper.make_node("Tanh", ["h"], ["pic"], name="t")],
            "theirs",
            [helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["N", 8])],
            [helper.make_tensor_value_info("pic", TensorProto.FLOAT, ["N", 12])],
            [w],
        )  # fmt: skip
        m = helper.make_model(
            g, opset_imports=[helper.make_opsetid("", 17)], producer_name="their-tool"
        )
        m.producer_version = "1.0"
        m.ir_version = 8
        return m

    setters = {
        "producer_name": lambda m: setattr(m, "producer_name", HOSTILE),
        "producer_version": lambda m: setattr(m, "producer_version", HOSTILE),
        "graph_name": lambda m: setattr(m.graph, "name", HOSTILE),
        "input_name": lambda m: setattr(m.graph.input[0], "name", HOSTILE),
        "output_name": lambda m: setattr(m.graph.output[0], "name", HOSTILE),
        "dim_param": lambda m: setattr(
            m.graph.input[0].type.tensor_type.shape.dim[0], "dim_param", HOSTILE
        ),
        "output_dim_param": lambda m: setattr(
            m.graph.output[0].type.tensor_type.shape.dim[0], "dim_param", HOSTILE
        ),
        "op_type": lambda m: setattr(m.graph.node[1], "op_type", HOSTILE),
        "opset_domain": lambda m: m.opset_import.append(helper.make_opsetid(HOSTILE, 1)),
        "initializer_name": lambda m: setattr(m.graph.initializer[0], "name", HOSTILE),
        "doc_string": lambda m: setattr(m, "doc_string", HOSTILE),
        "metadata": lambda m: helper.set_model_props(m, {HOSTILE: HOSTILE}),
    }
    leaks = []
    for name, setter in setters.items():
        m = model()
        setter(m)
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(m.SerializeToString())
        for flags in ((), ("--json",)):
            code, out = _run(capsys, "inspect", path, *flags)
            assert code in (0, 2) and "Traceback" not in out, (name, out[-500:])
            if raw_controls(out):
                leaks.append((name, flags, raw_controls(out)))
    assert not leaks, leaks


def test_checkpoint_metadata_reaches_inspect_escaped(tiny_bundles, tmp_path, capsys):
    """Every metadata string of a checkpoint, and every string of its config, made hostile."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    src = tiny_bundles["ar_ckpt"]
    with safe_open(str(src), framework="np") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    config = json.loads(meta["config"])
    variants = [("meta", k) for k in meta if k != "config"] + [("config", k) for k in config]
    leaks = []
    for where, key in variants:
        m, c = dict(meta), dict(config)
        if where == "meta":
            m[key] = HOSTILE + m[key]
        elif isinstance(c[key], str):
            c[key] = HOSTILE + c[key] if key != "vocab" else "\x1b\x07\u202e\r\x9ba "[: len(c[key])]
        else:
            continue
        m["config"] = json.dumps(c)
        path = tmp_path / f"{where}-{key}.safetensors"
        save_file(tensors, str(path), metadata=m)
        for flags in ((), ("--json",)):
            code, out = _run(capsys, "inspect", path, *flags)
            assert code in (0, 2) and "Traceback" not in out, (where, key, out[-500:])
            if raw_controls(out):
                leaks.append((where, key, flags, raw_controls(out)))
    assert len(variants) >= 6
    assert not leaks, leaks


def test_generated_text_from_a_hostile_vocabulary_is_escaped(tiny_bundles, capsys):
    """A char model whose vocabulary is escape characters: `generate` prints them escaped
    (newlines and tabs of real text stay as they are)."""
    code, out = _run(
        capsys, "generate", tiny_bundles["evil_ar"], "--prompt", "a",
        "--max-new-tokens", "200", "--temperature", "1.5", "--seed", "3",
    )  # fmt: skip
    assert code == 0, out[-1000:]
    assert not raw_controls(out), raw_controls(out)
    assert "\\x1b" in out or "\\x07" in out or "\\u202e" in out  # generated, then escaped


def test_generate_keeps_newlines_and_tabs():
    from genedge.runtime.commands import shown_text

    assert shown_text("def f():\n\treturn 1\n") == "def f():\n\treturn 1\n"
    assert shown_text("a\x1b[31mb\rc") == "a\\x1b[31mb\\rc"


def test_a_hostile_cache_path_reaches_the_terminal_escaped(
    tiny_bundles, tmp_path, monkeypatch, capsys
):
    """$GENEDGE_CACHE with escapes in its name: the line that says where tune cached its
    result shows the path escaped, and a cache that cannot be written is one clean warning."""
    monkeypatch.setenv("GENEDGE_CACHE", str(tmp_path / f"cache{HOSTILE}"))
    argv = (
        "tune",
        tiny_bundles["gan"],
        "--seconds",
        "0.2",
        "--batch",
        "1",
        "--backends",
        "ort-cpu",
    )
    code, out = _run(capsys, *argv)
    assert code == 0, out[-1000:]
    assert "cached in" in out and "\\x1b" in out, out[-1000:]
    assert not raw_controls(out), raw_controls(out)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENEDGE_CACHE", str(blocker / f"cache{HOSTILE}"))
    code, out = _run(capsys, *argv)
    assert code == 0 and "not cached" in out, out[-1000:]
    assert not raw_controls(out), raw_controls(out)


def test_rich_tables_show_markup_from_files_as_text(tiny_bundles, tmp_path):
    """A file named like rich markup is shown as named in export's summary table."""
    import io

    from rich.console import Console

    from genedge.export.commands import summary_table

    b = tmp_path / "b"
    shutil.copytree(tiny_bundles["ar"], b)
    name = "[bold]m[red].onnx"  # markup needs no closing tag
    (b / "model.onnx").rename(b / name)
    doc = json.loads((b / MANIFEST_NAME).read_text())
    doc["artifacts"][0]["file"] = name
    write_json(b / MANIFEST_NAME, doc)
    text = io.StringIO()
    Console(file=text, width=200).print(summary_table(read_manifest(b)))
    assert name in text.getvalue(), text.getvalue()


def test_onnx_runtimes_own_log_never_shows_a_hostile_node_name(tmp_path, capfd):
    """A graph that loads but fails to run, its node named with terminal escapes: genedge's
    one-line error is all that reaches the terminal. ONNX Runtime's logger writes to the
    process's stderr itself (below Python), so this reads the file descriptors."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(
        [helper.make_node("Reshape", ["z", "shape"], ["r"], name=HOSTILE),
         helper.make_node("Tanh", ["r"], ["y"], name="t")],
        "runs-at-batch-1-only",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 1, 4, 4])],
        [numpy_helper.from_array(np.array([1, 1, 4, 4], np.int64), "shape")],
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "model.onnx"
    path.write_bytes(m.SerializeToString())
    code = main(["export", str(path), "--out", str(tmp_path / "out")])
    out, err = capfd.readouterr()
    assert code == 2 and "error:" in err
    assert "[E:onnxruntime" not in err and not raw_controls(out + err), err[-1500:]
    assert not (tmp_path / "out").exists()

"""Hostile inputs, each run as a real ``genedge`` command under a time and a memory bound.

``CASES`` is the corpus: one row per hostile input of issue 23's classes (graphs genedge will
not run, user modules that exit, values that used to end in "internal error", messages,
strings from files). Every row runs ``genedge ARGV`` in a child process with
``RLIMIT_AS`` = 2 GiB and a 60 s timeout, and must end with its documented exit code,
no traceback, no "internal error", no raw control or bidi character in stdout or stderr,
one ``error:`` line when it fails, and every corpus file byte-for-byte as it was.

To add a case: build its file in ``corpus`` (small, written by the test) under a new
placeholder name, then add a ``Case`` row; ``{tmp}`` is a fresh folder per case for
outputs, ``{blocked}`` a ``PYTHONPATH`` entry that hides OpenVINO. Rows run three at a time
(process start-up dominates); the file takes about three minutes on two busy cores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hostile_corpus import HOSTILE, raw_controls, write_json

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

GENEDGE = [sys.executable, "-m", "genedge"]
MEMORY_BYTES = 2 << 30  # RLIMIT_AS per case
TIME_S = 60
WORKERS = 3  # cases at once: most of a case is process start-up and imports
TRIPS_2_62 = 1 << 62


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    argv: str  # genedge's arguments; {placeholders} are corpus files, {tmp} a fresh folder
    code: int  # the documented exit code (DESIGN.md section 7)
    says: str = ""  # a phrase the output must hold: the message names the problem
    never: str = ""  # a phrase the output must not hold
    env: tuple[tuple[str, str], ...] = ()


CASES: list[Case] = [
    # graphs genedge will not run: loops whose trips are not static and small
    Case("loop-2^62-trips", "export {loop_huge} --out {tmp}/b", 2, "4,611,686,018,427,387,904 trips"),
    Case("loop-trips-from-input", "export {loop_dynamic} --out {tmp}/b", 2, "computed at run time"),
    Case("loops-nested-past-bound", "export {loop_nested} --out {tmp}/b", 2, "enclosing loops"),
    # user modules that exit or interrupt while imported or called
    Case("module-sys-exit-0-on-import", "export --module {exit_on_import}:G --weights none --latent-dim 4 --out {tmp}/b", 2, "sys.exit(0)"),
    Case("module-keyboardinterrupt-on-import", "export --module {interrupt_on_import}:G --weights none --latent-dim 4 --out {tmp}/b", 2, "KeyboardInterrupt"),
    Case("module-systemexit-in-constructor", "export --module {exit_in_call}:Exits --weights none --latent-dim 4 --out {tmp}/b", 2, "sys.exit(5)"),
    Case("module-systemexit-in-forward", "export --module {exit_in_call}:G --weights none --latent-dim 4 --out {tmp}/b", 2, "sys.exit(3)"),
    Case("module-args-nested-deep", "export --module {exit_in_call}:G --weights none --latent-dim 4 --module-args {deep_json} --out {tmp}/b", 2, "deeper than 32"),
    # values that ended in "internal error"
    Case("label-2^63", "sample {gan} -n 4 --label 9223372036854775808 --out {tmp}/s.png", 2, "labels span"),
    Case("npz-object-array", "train gan --data {npz_object} --out {tmp}/r --steps 1", 2, "allow_pickle"),
    Case("npz-labels-2^40", "train gan --data {npz_labels_2_40} --conditional --out {tmp}/r --steps 1", 2, "at most 100,000"),
    Case("onnx-element-type-999", "inspect {onnx_type_999}", 2, "element type 999"),
    # messages
    Case("output-range-as-documented", "export --module {tmp}/none.py:G --weights none --latent-dim 4 --output-range -1,1 --out {tmp}/b", 2, "does not exist", "expected one argument"),
    Case("tune-openvino-not-installed", "tune {gan} --backends openvino", 3, "not installed", env=(("PYTHONPATH", "{blocked}"),)),
    Case("tune-backend-unknown", "tune {gan} --backends warp-drive", 2, "not a backend"),
    Case("bench-rounds-1e9", "bench {gan} --rounds 1e9", 2, "the limit is 1,000"),
    Case("bench-cold-runs-1e6", "bench {gan} --cold-runs 1e6", 2, "the limit is 100"),
    Case("bench-iters-1e12", "bench {gan} --iters 1e12", 2, "the limit is 10,000,000"),
    Case("usage-error-is-one-line", "sample {gan} --no-such-flag", 2, "see genedge sample --help"),
    # strings from files reach the terminal escaped
    Case("inspect-onnx-hostile-names", "inspect {onnx_hostile}", 0, "\\x1b"),
    Case("inspect-onnx-hostile-names-json", "inspect {onnx_hostile} --json", 0, "\\u001b"),
    Case("inspect-bundle-hostile-unknown-keys", "inspect {gan_hostile_keys}", 0, "\\x1b"),
    Case("sample-bundle-hostile-unknown-keys", "sample {gan_hostile_keys} -n 2 --out {tmp}/s.png", 0),
    Case("inspect-checkpoint-hostile-metadata", "inspect {ckpt_hostile}", 0, "\\x1b"),
    Case("eval-checkpoint-hostile-metadata", "eval {ckpt_hostile} --data {text} -n 16", 0, "bpc"),
    Case("generate-hostile-prompt", "generate {evil_ar} --prompt {hostile} --max-new-tokens 5", 0, "\\x1b"),
    Case("generate-hostile-vocabulary", "generate {evil_ar} --prompt a --max-new-tokens 60 --temperature 1.5", 0),
    Case("cache-path-hostile", "tune {gan} --seconds 0.2 --batch 1 --backends ort-cpu", 0, "cached in", env=(("GENEDGE_CACHE", "{tmp}/cache" + HOSTILE),)),
]  # fmt: skip


# ---------------------------------------------------------------- the corpus
def _loop_model(path: Path, trips: int | None, *, dynamic: bool = False, nested: int = 0) -> Path:
    """``z (B, 16)`` through a Loop whose body passes z on, then ``image (B, 1, 4, 4)``.

    ``trips``: the trip count as an initializer (None: no trip count, only the condition);
    ``dynamic``: the count is computed from the input's shape; ``nested``: an inner loop of
    that many trips inside the body.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    body_nodes = [
        helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        helper.make_node("Identity", ["acc_in"], ["acc_mid"]),
    ]
    body_inits = []
    if nested:
        inner = helper.make_graph(
            [helper.make_node("Identity", ["c2"], ["c2o"]), helper.make_node("Identity", ["a2"], ["a2o"])],
            "inner",
            [helper.make_tensor_value_info("j", TensorProto.INT64, []),
             helper.make_tensor_value_info("c2", TensorProto.BOOL, []),
             helper.make_tensor_value_info("a2", TensorProto.FLOAT, ["B", 16])],
            [helper.make_tensor_value_info("c2o", TensorProto.BOOL, []),
             helper.make_tensor_value_info("a2o", TensorProto.FLOAT, ["B", 16])],
        )  # fmt: skip
        body_inits.append(numpy_helper.from_array(np.array(nested, np.int64), "inner_trips"))
        body_nodes.append(
            helper.make_node("Loop", ["inner_trips", "cond_in", "acc_mid"], ["acc_out"], body=inner)
        )
    else:
        body_nodes.append(helper.make_node("Identity", ["acc_mid"], ["acc_out"]))
    body = helper.make_graph(
        body_nodes,
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, ["B", 16])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, ["B", 16])],
        initializer=body_inits,
    )  # fmt: skip
    inits = [
        numpy_helper.from_array(np.array(True), "cond"),
        numpy_helper.from_array(np.array([-1, 1, 4, 4], np.int64), "shape"),
    ]
    nodes = []
    if dynamic:
        nodes += [
            helper.make_node("Shape", ["z"], ["z_shape"]),
            helper.make_node("ReduceProd", ["z_shape"], ["M"], keepdims=0),
        ]
    elif trips is not None:
        inits.append(numpy_helper.from_array(np.array(trips, np.int64), "M"))
    nodes += [
        helper.make_node("Loop", ["M" if trips is not None or dynamic else "", "cond", "z"], ["zl"], body=body),
        helper.make_node("Reshape", ["zl", "shape"], ["r"]),
        helper.make_node("Tanh", ["r"], ["image"]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", 16])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["B", 1, 4, 4])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


USER_MODULES = {
    "exit_on_import": "import sys\nsys.exit(0)\n",
    "interrupt_on_import": "raise KeyboardInterrupt\n",
    "exit_in_call": (
        "import sys\nimport torch\n\n\n"
        "class G(torch.nn.Module):\n"
        "    def __init__(self, **kw):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(4, 64)\n\n"
        "    def forward(self, z):\n"
        "        raise SystemExit(3)\n\n\n"
        "def Exits(**kw):\n"
        "    sys.exit(5)\n"
    ),
}


def _hostile_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Tanh", ["noise" + HOSTILE], ["pic"], name="n" + HOSTILE)],
        "g" + HOSTILE,
        [helper.make_tensor_value_info("noise" + HOSTILE, TensorProto.FLOAT, [HOSTILE, 8])],
        [helper.make_tensor_value_info("pic", TensorProto.FLOAT, ["N" + HOSTILE, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.producer_name = "tool" + HOSTILE
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _type_999_onnx(path: Path) -> Path:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["b"])],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph)
    model.graph.input[0].type.tensor_type.elem_type = 999
    path.write_bytes(model.SerializeToString())
    return path


def _hostile_checkpoint(src: Path, dst: Path) -> Path:
    """``src`` (a checkpoint whose vocabulary is escape characters) with hostile metadata."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(src), framework="np") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta["genedge"] = HOSTILE
    meta["note" + HOSTILE] = HOSTILE
    save_file(tensors, str(dst), metadata=meta)
    return dst


def _hostile_keys_bundle(src: Path, dst: Path) -> Path:
    """A copy of ``src`` whose manifest carries hostile unknown keys and producer names."""
    import shutil

    shutil.copytree(src, dst)
    doc = json.loads((dst / "manifest.json").read_text())
    doc["producer"]["tool" + HOSTILE] = HOSTILE
    doc["source"]["note" + HOSTILE] = HOSTILE
    write_json(dst / "manifest.json", doc)
    return dst


@pytest.fixture(scope="module")
def corpus(tiny_bundles, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("corpus")
    files: dict[str, Path] = {
        "loop_huge": _loop_model(root / "loop_huge.onnx", TRIPS_2_62),
        "loop_dynamic": _loop_model(root / "loop_dynamic.onnx", None, dynamic=True),
        "loop_nested": _loop_model(root / "loop_nested.onnx", 100, nested=100),
        "onnx_hostile": _hostile_onnx(root / "hostile.onnx"),
        "onnx_type_999": _type_999_onnx(root / "type999.onnx"),
        "gan_hostile_keys": _hostile_keys_bundle(tiny_bundles["gan"], root / "gan_hostile"),
    }
    for name, text in USER_MODULES.items():
        files[name] = root / f"{name}.py"
        files[name].write_text(text)
    files["ckpt_hostile"] = _hostile_checkpoint(
        tiny_bundles["evil_ar_ckpt"], root / "evil.safetensors"
    )
    files["text"] = root / "text.txt"
    files["text"].write_text("abc de " * 300)
    rng = np.random.default_rng(0)
    images = rng.random((24, 8, 8), dtype=np.float32)
    np.savez(root / "object.npz", x=np.array([{"a": 1}, 2], dtype=object))
    np.savez(root / "labels_2_40.npz", x=images, y=np.full(24, 1 << 40, np.int64))
    files["npz_object"] = root / "object.npz"
    files["npz_labels_2_40"] = root / "labels_2_40.npz"
    blocked = root / "blocked"
    blocked.mkdir()  # imports run sitecustomize: OpenVINO looks uninstalled
    (blocked / "sitecustomize.py").write_text("import sys\nsys.modules['openvino'] = None\n")
    places = {k: str(v) for k, v in files.items()}
    places.update(
        gan=str(tiny_bundles["gan"]),
        evil_ar=str(tiny_bundles["evil_ar"]),
        blocked=str(blocked),
        hostile=HOSTILE,
        deep_json="[" * 5000 + "]" * 5000,
        root=str(root),
    )
    return places


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_case(case: Case, places: dict[str, str], tmp: Path) -> tuple[int, str, float]:
    fill = {**places, "tmp": str(tmp)}
    argv = [a.format(**fill) for a in shlex.split(case.argv)]
    env = dict(os.environ, GENEDGE_CACHE=str(tmp / "cache"), PYTHONDONTWRITEBYTECODE="1")
    env.pop("DISPLAY", None)
    env.update({k: v.format(**fill) for k, v in case.env})
    start = time.monotonic()
    try:
        r = subprocess.run(
            [*GENEDGE, *argv],
            capture_output=True,
            text=True,
            errors="surrogateescape",
            env=env,
            cwd=tmp,
            timeout=TIME_S,
            preexec_fn=_limits,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(
            errors="replace"
        )
        return -1, f"timed out after {TIME_S} s\n{out}", TIME_S
    return r.returncode, r.stdout + r.stderr, time.monotonic() - start


@pytest.fixture(scope="module")
def results(corpus, tmp_path_factory, request):
    """Futures of every selected case, run WORKERS at a time in the background."""
    selected = {
        item.callspec.params["case"].name
        for item in request.session.items
        if item.originalname == "test_hostile_input" and hasattr(item, "callspec")
    }
    before = _snapshot(Path(corpus["root"]))
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    futures: dict[str, Future] = {}
    for case in CASES:
        if case.name in selected:
            tmp = tmp_path_factory.mktemp(case.name[:30])
            futures[case.name] = pool.submit(_run_case, case, corpus, tmp)
    yield futures, before
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case: Case, results, corpus):
    futures, before = results
    code, out, seconds = futures[case.name].result()
    assert code == case.code, f"exit {code}, expected {case.code}:\n{out[-3000:]}"
    assert "Traceback" not in out and "internal error" not in out, out[-3000:]
    assert not raw_controls(out), (raw_controls(out), out[-1000:])
    if case.code != 0:
        errors = [line for line in out.splitlines() if ": error:" in line]
        assert len(errors) == 1, out[-3000:]
    if case.says:
        assert case.says in out, out[-3000:]
    if case.never:
        assert case.never not in out, out[-3000:]
    assert seconds < TIME_S
    assert _snapshot(Path(corpus["root"])) == before  # no corpus file changed


def test_the_table_covers_every_class():
    names = {c.name.split("-")[0] for c in CASES}
    assert {"loop", "module", "label", "npz", "onnx", "bench", "tune", "inspect"} <= names
    assert len({c.name for c in CASES}) == len(CASES)


# ---------------------------------------------------------------- Ctrl-C in native code
def _looping_bundle(src: Path, dst: Path) -> Path:
    """A copy of the tiny GAN bundle whose graph (same inputs and output) loops 2^62 times
    inside ONNX Runtime, with the manifest's hash updated to match: a hostile bundle."""
    import shutil

    from onnx import TensorProto, helper, numpy_helper

    shutil.copytree(src, dst)
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Identity", ["a"], ["a_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("a", TensorProto.FLOAT, ["B", 16])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("a_out", TensorProto.FLOAT, ["B", 16])],
    )  # fmt: skip
    nodes = [
        helper.make_node("Loop", ["M", "cond", "z"], ["zl"], body=body),
        helper.make_node("Tile", ["zl", "reps"], ["t"]),
        helper.make_node("Reshape", ["t", "shape"], ["r"]),
        helper.make_node("Cast", ["r"], ["image"], to=TensorProto.UINT8),
    ]
    inits = [
        numpy_helper.from_array(np.array(TRIPS_2_62, np.int64), "M"),
        numpy_helper.from_array(np.array(True), "cond"),
        numpy_helper.from_array(np.array([1, 4], np.int64), "reps"),
        numpy_helper.from_array(np.array([-1, 8, 8, 1], np.int64), "shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", 16]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["B"])],
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["B", 8, 8, 1])],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    data = model.SerializeToString()
    doc = json.loads((dst / "manifest.json").read_text())
    doc["artifacts"] = [a for a in doc["artifacts"] if a["file"] == "model.onnx"]
    for name in os.listdir(dst):
        if name.endswith(".onnx") and name != "model.onnx":
            (dst / name).unlink()
    (dst / "model.onnx").write_bytes(data)
    doc["artifacts"][0].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    write_json(dst / "manifest.json", doc)
    return dst


def test_ctrl_c_stops_native_work_within_a_second(tiny_bundles, tmp_path):
    """`sample` of a bundle whose graph loops 2^62 times: ONNX Runtime holds the main thread
    in native code, where Python cannot act on SIGINT; the watcher ends the process with
    exit 130 about a second after Ctrl-C, with one line and no partial PNG."""
    bundle = _looping_bundle(tiny_bundles["gan"], tmp_path / "looping")
    out = tmp_path / "s.png"
    env = dict(os.environ, GENEDGE_CACHE=str(tmp_path / "cache"))
    p = subprocess.Popen(
        [*GENEDGE, "sample", str(bundle), "-n", "1", "--backend", "ort-cpu", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_limits,
    )
    try:
        time.sleep(6)  # start-up (about a second), then the loop spins in ONNX Runtime
        assert p.poll() is None, p.communicate()
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130, stderr[-2000:]
    assert took < 5.0, took  # GRACE_S (1 s) plus a loaded machine's scheduling
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not out.exists()

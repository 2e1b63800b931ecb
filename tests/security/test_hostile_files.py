"""Hostile files in the places genedge reads back or writes over (docs/security.md).

Every case builds its own small files: a FIFO, a link to ``/dev/zero``, a device, odd or
deeply nested JSON in a cache, a PNG or IDX file that declares gigabytes, a file that
carries genedge's marker without being what genedge wrote, a second export into a locked
folder. Each must end quickly with the documented outcome (a cache: ignored with one
warning; a file the user named: exit 2; a locked folder: exit 4), no traceback, and the
hostile file left byte-for-byte as it was. Reads that could hang run under a short
``pytest.mark.timeout``; memory is bounded by ``tracemalloc`` in process and by the
child's peak RSS (``os.wait4``) for the command-line cases.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import importlib.util
import json
import logging
import multiprocessing
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from genedge.atomic import atomic_write_text
from genedge.errors import BadInputError, CorruptArtifactError, SecurityRefusal
from genedge.imageio import encode_png, is_own_png, save_png
from genedge.outputs import (
    MARK_XATTR,
    check_output_file,
    check_run_out,
    open_lock,
    written_by_genedge,
)
from genedge.readback import (
    ReadbackError,
    check,
    field,
    read_bytes,
    read_cache_json,
    read_json,
    safetensors_metadata,
)

REPO = Path(__file__).resolve().parents[2]
MAX_RSS_BYTES = 2 << 30
QUICK_S = 20  # a refusal that reads nothing takes well under a second; this allows a loaded box


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ---------------------------------------------------------------- hostile file kinds
def _fifo(p: Path) -> Path:
    os.mkfifo(p)
    return p


def _dev_zero_link(p: Path) -> Path:
    p.symlink_to("/dev/zero")
    return p


def _socket(p: Path) -> Path:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()
    return p


def _folder(p: Path) -> Path:
    p.mkdir()
    return p


NON_FILES = {
    "fifo": _fifo,
    "link to /dev/zero": _dev_zero_link,
    "socket": _socket,
    "folder": _folder,
}


def _make(kind: str, p: Path) -> Path:
    return NON_FILES[kind](p)


# ---------------------------------------------------------------- the reader itself
@pytest.mark.timeout(QUICK_S)
@pytest.mark.parametrize("kind", NON_FILES)
def test_a_non_regular_file_is_refused_without_blocking(tmp_path, kind):
    p = _make(kind, tmp_path / "x.json")
    with pytest.raises(ReadbackError, match="expected a regular file"):
        read_json(p, what="Cache", limit=1024)
    with pytest.raises(ReadbackError):  # following links: /dev/zero is still no regular file
        read_bytes(p, what="Cache", limit=1024, follow_symlinks=True)


@pytest.mark.timeout(QUICK_S)
def test_a_device_path_is_refused_before_it_is_opened():
    with pytest.raises(ReadbackError, match="a device"):
        read_bytes("/dev/zero", what="Run config", limit=1024, follow_symlinks=True)


@pytest.mark.timeout(QUICK_S)
@pytest.mark.parametrize(
    "payload, match",
    [
        (b"x" * 2048, "limit for it is 1,024 bytes"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),  # past the parser's recursion
        (b"[" * 70 + b"]" * 70, "deeper than 64"),
        (b"1" * 5000, "not valid JSON"),  # past Python's int digits limit
        (b"\xff\xfe{}", "not valid JSON"),
        (b"", "not valid JSON"),
    ],
    ids=["too large", "deep past recursion", "deep", "huge int", "not utf-8", "empty"],
)
def test_bad_json_is_one_clear_refusal(tmp_path, payload, match):
    p = tmp_path / "c.json"
    p.write_bytes(payload)
    limit = 1024 if match.startswith("limit") else 1 << 20
    with pytest.raises(ReadbackError, match=match) as e:
        read_json(p, what="Cache", limit=limit)
    assert "\n" not in str(e.value) and len(str(e.value)) < 400


def test_the_schema_helpers_check_types_and_bounds():
    rec = {"n": 3, "flag": True, "name": "x" * 10, "ratio": float("nan")}
    assert field(rec, "n", int, where="r", low=1, high=4) == 3
    assert field(rec, "missing", int, where="r", default=7) == 7
    with pytest.raises(ReadbackError, match="'n': 3 is outside"):
        field(rec, "n", int, where="r", high=2)
    with pytest.raises(ReadbackError, match="expected int, found bool"):
        field(rec, "flag", int, where="r")
    with pytest.raises(ReadbackError, match="the limit is 4"):
        field(rec, "name", str, where="r", max_len=4)
    with pytest.raises(ReadbackError, match="outside"):
        check(rec["ratio"], float, where="r", low=0)
    with pytest.raises(ReadbackError, match="'missing' is missing"):
        field(rec, "missing", int, where="r")


@pytest.mark.parametrize(
    "head, match",
    [
        (b"\x00" * 4, "truncated"),
        ((1 << 60).to_bytes(8, "little") + b"{}", "declares a 1,152,921,504,606,846,976-byte"),
        ((8).to_bytes(8, "little") + b'{"a": [}', "not valid JSON"),
        ((30).to_bytes(8, "little") + b'{"__metadata__": {"k": 1}}    ', "not a map of strings"),
    ],
    ids=["truncated", "header length 2^60", "bad JSON", "metadata not strings"],
)
def test_a_hostile_safetensors_header_is_refused(head, match):
    with pytest.raises(ReadbackError, match=match):
        safetensors_metadata(head, what="Judge cache", path="j.safetensors")


def test_safetensors_metadata_reads_what_safetensors_wrote(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, tmp_path / "m.safetensors", metadata={"k": "v"})
    data = (tmp_path / "m.safetensors").read_bytes()
    assert safetensors_metadata(data, what="Judge cache", path="m") == {"k": "v"}


def test_a_cache_that_fails_a_check_is_ignored_with_one_warning(tmp_path, caplog):
    assert read_cache_json(tmp_path / "absent.json", what="Cache", limit=64) is None
    assert caplog.records == []  # absence is the normal case: silent
    bad = _fifo(tmp_path / "fifo.json")
    with caplog.at_level(logging.WARNING, "genedge"):
        for _ in range(3):
            assert read_cache_json(bad, what="Cache", limit=64) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "a FIFO" in warnings[0].getMessage()


# ---------------------------------------------------------------- the tune cache
def _runtime_conftest():
    spec = importlib.util.spec_from_file_location(
        "runtime_fixtures", REPO / "tests" / "runtime" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("hostile-bundles")
    return _runtime_conftest().build_bundle(root, "gan", "gan").path


def _good_tuning() -> dict:
    from genedge.runtime import tune_cache

    return {
        "format": tune_cache.FORMAT,
        "version": tune_cache.VERSION,
        "batches": {"1": {"p50_ms": {"ort-cpu fp32": 0.1}}},
    }


def _deep(n: int) -> object:
    value: object = 1
    for _ in range(n):
        value = {"a": value}
    return value


TUNE_CACHES = {
    "fifo": lambda p: _fifo(p),
    "link to /dev/zero": lambda p: _dev_zero_link(p),
    "odd batch key": lambda p: p.write_text(
        json.dumps({**_good_tuning(), "batches": {"²": {"p50_ms": {"ort-cpu fp32": 1}}}})
    ),
    "odd label": lambda p: p.write_text(
        json.dumps({**_good_tuning(), "batches": {"1": {"p50_ms": {"\x1b[31m x y": 1}}}})
    ),
    "list of p50s": lambda p: p.write_text(
        json.dumps({**_good_tuning(), "batches": {"1": {"p50_ms": [1, 2]}}})
    ),
    "deep nesting": lambda p: p.write_text(
        json.dumps({**_good_tuning(), "batches": {"1": _deep(200)}})
    ),
    "huge number": lambda p: p.write_text(json.dumps(_good_tuning()).replace("0.1", "1" * 5000)),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", TUNE_CACHES)
def test_a_hostile_tune_cache_is_ignored_by_auto(bundle, tmp_path, monkeypatch, caplog, kind):
    from genedge.runtime import Sampler, tune_cache
    from genedge.runtime.select import read_bundle

    monkeypatch.setenv("GENEDGE_CACHE", str(tmp_path / "cache"))
    path = tune_cache.tune_path(read_bundle(bundle), "generator", 1)
    path.parent.mkdir(parents=True)
    TUNE_CACHES[kind](path)
    with (
        caplog.at_level(logging.WARNING, "genedge"),
        Sampler.open(bundle, threads=1) as s,  # backend auto reads the cache
    ):
        assert s.info.backend == "ort-cpu"
        assert s.sample(2, seed=0).shape[0] == 2
    ignored = [r for r in caplog.records if "ignoring cache file" in r.getMessage()]
    assert len(ignored) == 1 and "\x1b" not in ignored[0].getMessage()


def _write_batches(cache: str, first: int, count: int) -> None:
    os.environ["GENEDGE_CACHE"] = cache
    from genedge.runtime import tune_cache

    path = tune_cache.cache_dir() / "k.json"
    for b in range(first, first + count):
        rec = {**_good_tuning(), "batches": {str(b): {"p50_ms": {"ort-cpu fp32": float(b)}}}}
        assert tune_cache.write_tuning(path, rec) is not None


@pytest.mark.timeout(60)
def test_two_tune_writers_keep_every_result(tmp_path):
    from genedge.runtime import tune_cache

    ctx = multiprocessing.get_context("spawn")
    writers = [
        ctx.Process(target=_write_batches, args=(str(tmp_path), 1 + 20 * i, 20)) for i in range(2)
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join(50)
        assert w.exitcode == 0
    found = tune_cache.read_tuning(tmp_path / "tune" / "k.json")
    assert sorted(int(b) for b in found["batches"]) == list(range(1, 41))


def test_tune_says_not_cached_when_the_cache_cannot_be_written(
    bundle, tmp_path, monkeypatch, capsys, caplog
):
    from genedge.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENEDGE_CACHE", str(blocker))  # cache_dir() would be a-file/tune
    argv = ["tune", str(bundle), "--batch", "1", "--seconds", "0.2", "--threads", "1"]
    assert main([*argv, "--backends", "ort-cpu"]) == 0
    err = capsys.readouterr().err
    assert "tuning not cached (Not a directory)" in caplog.text and "cached in" not in err
    assert blocker.read_text() == "not a folder"


# ---------------------------------------------------------------- other caches and run files
@pytest.mark.timeout(QUICK_S)
@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_hostile_judge_cache_means_retrain(tmp_path, caplog, kind):
    pytest.importorskip("torch")
    from genedge.train.judge import JudgeConfig, load_judge

    p = _make(kind, tmp_path / "judge.safetensors")
    with caplog.at_level(logging.WARNING, "genedge"):
        assert load_judge(p, JudgeConfig(channels=1, image_size=16, num_classes=10), "h") is None
    assert "ignoring cache file" in caplog.text


@pytest.mark.timeout(QUICK_S)
@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_hostile_run_config_is_exit_2(tmp_path, kind):
    run = tmp_path / "run"
    run.mkdir()
    _make(kind, run / "config.json")
    with pytest.raises(ReadbackError, match="expected a regular file") as e:
        check_run_out(run, kind="gan", resume=True, overwrite=False)
    assert e.value.exit_code == 2


@pytest.mark.timeout(QUICK_S)
@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_hostile_checkpoint_or_resume_state_is_exit_2(tmp_path, kind):
    pytest.importorskip("torch")
    from genedge.train.checkpoint import read_checkpoint_info, torch_load_weights_only

    p = _make(kind, tmp_path / "generator.safetensors")
    with pytest.raises(CorruptArtifactError, match="expected a regular file"):
        read_checkpoint_info(p)
    with pytest.raises(CorruptArtifactError, match="expected a regular file"):
        torch_load_weights_only(p)


@pytest.mark.timeout(QUICK_S)
def test_a_hostile_manifest_is_refused(tmp_path):
    from genedge.manifest import read_manifest

    b = tmp_path / "b"
    b.mkdir()
    _fifo(b / "manifest.json")
    with pytest.raises(CorruptArtifactError, match="is a FIFO; expected a regular file"):
        read_manifest(b)
    (b / "manifest.json").unlink()
    _dev_zero_link(b / "manifest.json")
    with pytest.raises(SecurityRefusal, match="symlink"):
        read_manifest(b)


# ---------------------------------------------------------------- declared sizes
def _png_header(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels and holds a few bytes of (truncated) data."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.timeout(QUICK_S)
def test_a_png_declaring_30000_square_is_refused_before_decoding(tmp_path):
    pytest.importorskip("cv2")
    from genedge.train.data import load_image_data

    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(encode_png(np.zeros((8, 8), np.uint8)))
    (folder / "b.png").write_bytes(_png_header(30000, 30000))
    before = _sha(folder / "b.png")
    tracemalloc.start()
    try:
        with pytest.raises(BadInputError, match="declares 30000 x 30000 pixels"):
            load_image_data(str(folder))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20
    assert _sha(folder / "b.png") == before


def _idx(dims: tuple[int, ...], body: bytes) -> bytes:
    return b"\x00\x00\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + body


@pytest.mark.timeout(QUICK_S)
def test_an_idx_file_declaring_gigabytes_is_refused_from_its_header(tmp_path):
    from genedge.train.data import read_idx

    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(_idx((60000, 4096, 4096), b"\x00" * 1024)))
    with pytest.raises(BadInputError, match=r"declares shape \(60000, 4096, 4096\)"):
        read_idx(p)


@pytest.mark.timeout(60)
def test_a_gzip_idx_is_decompressed_only_up_to_its_declared_size(tmp_path):
    from genedge.train.data import read_idx

    p = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(p, "wb", compresslevel=1) as f:  # declares 2x28x28, holds 200 MB more
        f.write(_idx((2, 28, 28), b"\x01" * (2 * 28 * 28)))
        for _ in range(200):
            f.write(b"\x00" * (1 << 20))
    assert p.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(BadInputError, match="holds 1569 bytes"):
            read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    good = tmp_path / "t10k-images-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(_idx((2, 3, 3), bytes(range(18)))))
    assert read_idx(good).reshape(-1).tolist() == list(range(18))


# ---------------------------------------------------------------- markers
def test_a_foreign_png_that_says_genedge_is_not_replaced(tmp_path):
    from genedge.cli import main

    foreign = tmp_path / "mine.png"
    foreign.write_bytes(
        _png_header(4, 4)[:33] + struct.pack(">I", 16) + b"tEXtSoftware\x00genedge\x00\x00\x00\x00"
    )
    before = _sha(foreign)
    assert not written_by_genedge(foreign)
    with pytest.raises(BadInputError, match="genedge did not write it"):
        check_output_file(foreign, suffixes=(".png",))
    assert main(["sample", str(tmp_path / "no-bundle"), "-n", "1", "--out", str(foreign)]) == 2
    assert _sha(foreign) == before


def test_an_edited_genedge_png_is_not_replaced(tmp_path):
    png = tmp_path / "g.png"
    save_png(png, np.full((6, 6), 7, np.uint8))
    copy = tmp_path / "copy.png"
    copy.write_bytes(png.read_bytes())  # a plain copy: no xattr, the self-hash still matches
    assert is_own_png(copy) and written_by_genedge(copy)
    data = bytearray(png.read_bytes())
    data[-20] ^= 0xFF  # one byte of the image data
    png.write_bytes(bytes(data))  # in place: the xattr stays, the content no longer matches
    assert not is_own_png(png) and not written_by_genedge(png)
    with pytest.raises(BadInputError, match="genedge did not write it"):
        check_output_file(png)
    assert png.read_bytes() == bytes(data)


def _xattrs_work(folder: Path) -> bool:
    probe = folder / ".probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.genedge-probe", b"1")
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


def test_an_edited_copy_of_a_genedge_json_is_not_replaced(tmp_path):
    from genedge.cli import main

    if not _xattrs_work(tmp_path):
        pytest.skip("no user extended attributes on this filesystem")
    report = tmp_path / "bench.json"
    atomic_write_text(report, '{"p50_ms": 1.0}\n')
    assert written_by_genedge(report)
    check_output_file(report, suffixes=(".json",))
    copy = tmp_path / "copy.json"  # copied with its attribute (cp --preserve=xattr), then edited
    copy.write_bytes(report.read_bytes())
    os.setxattr(copy, MARK_XATTR, os.getxattr(report, MARK_XATTR))
    assert written_by_genedge(copy)  # exactly what genedge wrote: may be replaced
    with open(copy, "a") as f:
        f.write("my notes\n")
    assert not written_by_genedge(copy)
    before = _sha(copy)
    assert main(["eval", str(tmp_path / "x.safetensors"), "--json", str(copy)]) == 2
    assert _sha(copy) == before
    legacy = tmp_path / "old.json"  # the bare marker of earlier versions proves nothing
    legacy.write_text("{}")
    os.setxattr(legacy, MARK_XATTR, b"1")
    assert not written_by_genedge(legacy)


# ---------------------------------------------------------------- locks before work
def _cli(
    args: list[str], timeout: float = 120, env: dict[str, str] | None = None
) -> tuple[int, str, float, int]:
    """Run ``genedge ARGS``: (exit code, stderr, seconds, peak RSS bytes of the child)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "genedge", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        err = proc.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
        proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - t0
    assert seconds < timeout, f"genedge {args[0]} ran past {timeout} s"
    return proc.returncode, err, seconds, usage.ru_maxrss * 1024


@pytest.mark.timeout(180)
def test_a_second_export_into_a_locked_folder_exits_4_before_reading_its_source(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    garbage = tmp_path / "ckpt.safetensors"
    garbage.write_bytes(b"not a checkpoint")  # read first, this would be exit 2
    fd = open_lock(out, who="test")  # another export holds --out
    try:
        code, err, _, rss = _cli(["export", str(garbage), "--out", str(out)])
    finally:
        os.close(fd)
    assert code == 4, err
    assert "being written by another genedge command" in err and "Traceback" not in err
    assert rss < MAX_RSS_BYTES
    assert sorted(os.listdir(out)) == [".genedge.lock"]


@pytest.mark.timeout(300)
def test_two_concurrent_exports_one_succeeds_the_other_exits_4(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from genedge.train.checkpoint import save_checkpoint

    model, config = _runtime_conftest()._model("gan")
    ckpt = save_checkpoint(tmp_path / "src.safetensors", model, config, kind="gan")
    out = tmp_path / "shared"
    first = subprocess.Popen(
        [sys.executable, "-m", "genedge", "export", str(ckpt), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    deadline = time.monotonic() + 120
    while not _locked(out / ".genedge.lock"):  # the first export holds --out
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # keep it mid-export, however fast this machine is
    try:
        code, err, _, _ = _cli(["export", str(ckpt), "--out", str(out)])
    finally:
        first.send_signal(signal.SIGCONT)
    assert code == 4 and "Traceback" not in err, err
    assert first.wait(180) == 0, first.stderr.read().decode(errors="replace")
    from genedge.manifest import read_manifest

    assert read_manifest(out).kind == "gan"


def _locked(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# ---------------------------------------------------------------- declared sizes in an ONNX
def _onnx_generator(path: Path, batch: int | str, image: tuple[int, int, int]) -> Path:
    """z (batch, 16) -> Expand to (batch, C, H, W): a few hundred bytes that declare ``image``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c, h, w = image
    shape = numpy_helper.from_array(np.array([1, c, h, w], np.int64), "shape")
    nodes = [
        helper.make_node("ReduceMean", ["z"], ["m"], axes=[1], keepdims=1),  # (B, 1)
        helper.make_node("Unsqueeze", ["m", "axes"], ["m4"]),  # (B, 1, 1, 1)
        helper.make_node("Expand", ["m4", "shape"], ["image"]),  # (B, C, H, W)
    ]
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, c, h, w])],
        initializer=[shape, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "batch, image, match",
    [
        (1 << 24, (1, 8, 8), "fixed batch of 16777216"),
        ("B", (3, 4096, 4096), "declares 4096 x 4096 pixels"),
    ],
    ids=["batch 2^24", "4096x4096 image"],
)
def test_an_onnx_declaring_huge_sizes_is_refused_before_any_tensor(tmp_path, batch, image, match):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from genedge.cli import main

    src = _onnx_generator(tmp_path / "g.onnx", batch, image)
    assert src.stat().st_size < 4096
    before = _sha(src)
    out = tmp_path / "bundle"
    tracemalloc.start()
    try:
        with pytest.raises(BadInputError, match=match) as e:
            from genedge.export.options import ExportOptions
            from genedge.export.routes.source_onnx import OnnxSourceSpec, export_onnx_file

            export_onnx_file(src, ExportOptions(source=src, out=out), OnnxSourceSpec())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 << 20 and "\n" not in str(e.value)
    assert main(["export", str(src), "--out", str(out)]) == 2
    assert not out.exists() and _sha(src) == before


# ---------------------------------------------------------------- sample -n
def test_sample_makes_chunks_into_the_grid_and_matches_one_call(bundle, tmp_path, monkeypatch):
    from genedge.cli import main
    from genedge.imageio import make_grid
    from genedge.runtime import Sampler, commands

    monkeypatch.setattr(commands, "SAMPLE_CHUNK", 7)  # 20 images: three chunks
    out = tmp_path / "g.png"
    assert main(["sample", str(bundle), "-n", "20", "--seed", "3", "--out", str(out)]) == 0
    with Sampler.open(bundle, backend="ort-cpu") as s:
        images = s.sample(20, seed=3)
        scale = max(1, 64 // s.image_shape[0])
    want = encode_png(make_grid(images, scale=scale))
    got = out.read_bytes()
    assert len(got) == len(want)  # same size and layout
    assert got == want or _pixels_close(got, want)


def _pixels_close(a: bytes, b: bytes) -> bool:
    """Both PNGs decode to pixels that differ by at most 1 (batch size may round differently)."""
    import cv2

    x = cv2.imdecode(np.frombuffer(a, np.uint8), cv2.IMREAD_UNCHANGED).astype(int)
    y = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED).astype(int)
    return x.shape == y.shape and int(np.abs(x - y).max()) <= 1


@pytest.mark.timeout(60)
def test_sample_refuses_a_grid_past_its_limit_before_any_image(bundle, tmp_path, capsys):
    from genedge.cli import main

    out = tmp_path / "g.png"
    tracemalloc.start()
    try:
        assert main(["sample", str(bundle), "-n", "200000", "--out", str(out)]) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert "A grid of 200,000 images declares" in err and "the limit is" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert peak < 256 << 20 and not out.exists()


# ---------------------------------------------------------------- inspect
@pytest.mark.timeout(60)
def test_inspect_is_linear_in_a_15_mib_manifest_key(bundle, tmp_path, capsys):
    import shutil

    from genedge.cli import main

    big = tmp_path / "big"
    shutil.copytree(bundle, big)
    manifest = json.loads((big / "manifest.json").read_text())
    manifest["producer"]["k" * (15 << 20)] = "v"  # textwrap alone took minutes on this
    (big / "manifest.json").write_text(json.dumps(manifest))
    before = _sha(big / "manifest.json")
    assert main(["inspect", str(big)]) == 0
    out = capsys.readouterr().out
    assert len(out) < 20_000 and "kkkk..." in out
    assert _sha(big / "manifest.json") == before


# ---------------------------------------------------------------- the commands, end to end
def _tune_fifo(tmp: Path, bundle: Path) -> tuple[list[str], Path, dict[str, str]]:
    from genedge.runtime import tune_cache
    from genedge.runtime.select import read_bundle

    cache = tmp / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENEDGE_CACHE", str(cache))
        path = tune_cache.tune_path(read_bundle(bundle), "generator", 1)
    path.parent.mkdir(parents=True)
    argv = ["sample", str(bundle), "-n", "2", "--threads", "1", "--out", str(tmp / "g.png")]
    return argv, _fifo(path), {"GENEDGE_CACHE": str(cache)}


def _run_config_fifo(tmp: Path, bundle: Path) -> tuple[list[str], Path, dict[str, str]]:
    run = tmp / "run"
    run.mkdir()
    argv = ["train", "gan", "--data", "digits", "--out", str(run), "--resume", "--steps", "1"]
    return argv, _fifo(run / "config.json"), {}


def _manifest_fifo(tmp: Path, bundle: Path) -> tuple[list[str], Path, dict[str, str]]:
    b = tmp / "b"
    b.mkdir()
    return ["inspect", str(b)], _fifo(b / "manifest.json"), {}


# (name, build(tmp, bundle) -> (argv, hostile path, env), exit code, a phrase of the message)
CLI_CASES = [
    ("FIFO tune cache, sample with backend auto", _tune_fifo, 0, "ignoring cache file"),
    ("FIFO run config.json, train --resume", _run_config_fifo, 2, "is a FIFO; expected"),
    ("FIFO manifest.json, inspect", _manifest_fifo, 2, "is a FIFO; expected"),
]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "build, code, phrase", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_a_command_meets_a_hostile_file_in_bounded_time_and_memory(
    bundle, tmp_path, build, code, phrase
):
    argv, hostile, env = build(tmp_path, bundle)
    got, err, seconds, rss = _cli(argv, timeout=60, env=env)
    assert got == code and phrase in err, err
    assert "Traceback" not in err and "\x1b" not in err
    assert rss < MAX_RSS_BYTES and seconds < 60
    assert hostile.exists() and not hostile.is_file()  # the FIFO is still there, untouched

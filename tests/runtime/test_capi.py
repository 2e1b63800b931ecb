"""The C ABI (runtime/c/genedge.h): build libgenedge and its hosts once, run them on a tiny bundle.

The C hosts must see exactly the pixels Python's ``Sampler`` gives for the same seed, get
errors back as exit codes with messages, work across threads and leak nothing over 10,000
samples. Skipped only when cmake, a C/C++ compiler or the Python headers/libpython are
missing. The TensorRT host's TRT-free part (manifest_check.cpp) is compiled and run too.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from genedge.manifest import artifact_record, write_manifest

ROOT = Path(__file__).resolve().parents[2]
CAPI_SRC = ROOT / "runtime" / "c"
TRT_HOST_SRC = ROOT / "examples" / "trt_host"
H = W = 8
C = 1
LATENT = 6
CLASSES = 3


# ------------------------------------------------------------------ the tiny bundle


def make_tiny_bundle(
    bundle: Path,
    *,
    num_classes: int = CLASSES,
    hwc: tuple[int, int, int] = (H, W, C),
    latent: int = LATENT,
) -> Path:
    """A real bundle (docs/bundle.md) whose generator is one seeded linear layer.

    image = uint8(round(clip((tanh(z @ W + E[label]) + 1) * 127.5, 0, 255))), NHWC.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    h, w, c = hwc
    rng = np.random.default_rng(1234)
    size = h * w * c
    inits = [
        numpy_helper.from_array(rng.standard_normal((latent, size)).astype(np.float32), "W"),
        numpy_helper.from_array(np.float32(1.0), "one"),
        numpy_helper.from_array(np.float32(127.5), "half"),
        numpy_helper.from_array(np.float32(0.0), "lo"),
        numpy_helper.from_array(np.float32(255.0), "hi"),
        numpy_helper.from_array(np.array([-1, h, w, c], np.int64), "shape"),
    ]
    inputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", latent])]
    nodes = [helper.make_node("MatMul", ["z", "W"], ["zw"])]
    pre = "zw"
    if num_classes:
        inits.append(
            numpy_helper.from_array(
                rng.standard_normal((num_classes, size)).astype(np.float32), "E"
            )
        )
        inputs.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["B"]))
        nodes += [
            helper.make_node("Gather", ["E", "label"], ["e"]),
            helper.make_node("Add", ["zw", "e"], ["pre"]),
        ]
        pre = "pre"
    nodes += [
        helper.make_node("Tanh", [pre], ["t"]),
        helper.make_node("Add", ["t", "one"], ["t1"]),
        helper.make_node("Mul", ["t1", "half"], ["t2"]),
        helper.make_node("Round", ["t2"], ["t3"]),
        helper.make_node("Clip", ["t3", "lo", "hi"], ["t4"]),
        helper.make_node("Cast", ["t4"], ["t5"], to=TensorProto.UINT8),
        helper.make_node("Reshape", ["t5", "shape"], ["image"]),
    ]
    out = helper.make_tensor_value_info("image", TensorProto.UINT8, ["B", h, w, c])
    graph = helper.make_graph(nodes, "tiny_generator", inputs, [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    bundle.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(bundle / "model.onnx"))

    io_in = [{"name": "z", "dtype": "float32", "shape": ["B", latent]}]
    if num_classes:
        io_in.append({"name": "label", "dtype": "int64", "shape": ["B"]})
    record = artifact_record(
        bundle,
        "model.onnx",
        graph="generator",
        format="onnx",
        precision="fp32",
        verification={"seeds": [0], "verdict": "pass"},
    )
    write_manifest(
        bundle,
        {
            "format": "genedge.bundle",
            "schema_version": 1,
            "kind": "gan",
            "model": {
                "latent_dim": latent,
                "num_classes": num_classes,
                "image_size": h,
                "channels": c,
                "output_format": "uint8",
                "latent": {"distribution": "normal"},
            },
            "graphs": {
                "generator": {
                    "inputs": io_in,
                    "outputs": [
                        {
                            "name": "image",
                            "dtype": "uint8",
                            "shape": ["B", h, w, c],
                            "layout": "NHWC",
                        }
                    ],
                }
            },
            "artifacts": [record.to_dict()],
            "producer": {"genedge": "test"},
            "source": {"checkpoint": "tiny", "sha256": "0" * 64},
        },
    )
    return bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("capi-bundle") / "tiny")


def python_samples(bundle: Path, n: int, seed: int) -> np.ndarray:
    """The reference: Python's Sampler on the same backend and precision as the C hosts."""
    from genedge.runtime import Sampler

    with Sampler.open(bundle, backend="ort-cpu", precision="fp32") as s:
        return np.array(s.sample(n, seed=seed))


# ------------------------------------------------------------------ building


def _toolchain_missing() -> str | None:
    for tool in ("cmake", "cc", "c++"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return "the Python headers (Python.h) are not installed"
    libdir = Path(sysconfig.get_config_var("LIBDIR") or "")
    names = (sysconfig.get_config_var("LDLIBRARY"), sysconfig.get_config_var("LIBRARY"))
    if not any(n and (libdir / n).exists() for n in names):
        return "libpython (shared or static) is not installed"
    return None


@pytest.fixture(scope="session")
def capi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build libgenedge, sample_host and genedge_probe once, with the documented commands."""
    missing = _toolchain_missing()
    if missing:
        pytest.skip(f"cannot build the C ABI: {missing}")
    build = tmp_path_factory.mktemp("capi-build")
    subprocess.run(
        ["cmake", "-S", str(CAPI_SRC), "-B", str(build), f"-DPython3_EXECUTABLE={sys.executable}"],
        check=True,
        capture_output=True,
        text=True,
    )
    subprocess.run(
        ["cmake", "--build", str(build), "-j2"], check=True, capture_output=True, text=True
    )
    return build


def host_env() -> dict[str, str]:
    env = dict(os.environ, GENEDGE_PYTHON=sys.executable, OMP_NUM_THREADS="1")
    env.pop("PYTHONHOME", None)
    return env


def run(
    capi: Path, exe: str, *args: object, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(capi / exe), *map(str, args)],
        capture_output=True,
        text=True,
        env=env or host_env(),
        timeout=timeout,
    )


def cases(stdout: str) -> dict[str, tuple[int, str]]:
    found = re.findall(r"^case=(\S+) rc=(-?\d+) msg=(.*)$", stdout, re.M)
    return {name: (int(rc), msg) for name, rc, msg in found}


def tile(images: np.ndarray, rows: int) -> np.ndarray:
    n, h, w, c = images.shape  # (n, H, W, C) -> (rows*H, cols*W, C)
    return (
        images.reshape(rows, n // rows, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, -1, c)
    )


def read_pnm(path: Path) -> np.ndarray:
    data = path.read_bytes()
    magic, w, h, maxval, pixels = re.match(
        rb"(P[56])\s+(\d+)\s+(\d+)\s+(\d+)\s(.*)", data, re.S
    ).groups()
    assert maxval == b"255"
    return np.frombuffer(pixels, np.uint8).reshape(int(h), int(w), 1 if magic == b"P5" else 3)


# ------------------------------------------------------------------ the C ABI


def test_sample_host_grid_and_stream(capi: Path, bundle: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.pgm"
    r = run(
        capi,
        "sample_host",
        bundle,
        "--out",
        grid,
        "--seed",
        7,
        "--fps",
        50,
        "--seconds",
        0.4,
        "--backend",
        "ort-cpu",
        "--precision",
        "fp32",
    )
    assert r.returncode == 0, r.stderr
    assert f"bundle: {H}x{W}x{C}, latent {LATENT}, classes {CLASSES}, backend ort-cpu" in r.stdout
    np.testing.assert_array_equal(read_pnm(grid), tile(python_samples(bundle, 100, seed=7), 10))
    stream = dict(re.findall(r"(\w+)=(-?[\d.]+|nan)", r.stdout.split("stream:")[1]))
    frames, missed, dropped = (int(stream[k]) for k in ("frames", "missed_deadlines", "dropped"))
    assert frames == int(stream["delivered"]) >= 1 and float(stream["fps_target"]) == 50.0
    # 0.4 s at 50 fps is 20 slots; each shown or dropped (a dropped slot is also a missed one)
    assert frames + dropped <= 20 and 0 <= dropped <= missed <= frames + dropped, stream


def test_sample_host_ppm_is_colour_even_for_a_gray_model(
    capi: Path, bundle: Path, tmp_path: Path
) -> None:
    grid = tmp_path / "grid.ppm"
    r = run(capi, "sample_host", bundle, "--out", grid, "--seed", 7, "--seconds", 0.1)
    assert r.returncode == 0, r.stderr
    assert grid.read_bytes()[:2] == b"P6"  # what a .ppm reader expects, whatever C is
    gray_or_rgb = tile(python_samples(bundle, 100, seed=7), 10)
    expected = np.repeat(gray_or_rgb, 3, axis=2) if gray_or_rgb.shape[2] == 1 else gray_or_rgb
    np.testing.assert_array_equal(read_pnm(grid), expected)


def test_c_pixels_equal_python_for_several_seeds(capi: Path, bundle: Path, tmp_path: Path) -> None:
    for n, seed in ((1, 0), (5, 3), (33, 2**40 + 1)):
        out = tmp_path / f"raw-{seed}.bin"
        r = run(capi, "genedge_probe", "raw", bundle, n, seed, out)
        assert r.returncode == 0, r.stderr
        got = np.frombuffer(out.read_bytes(), np.uint8).reshape(n, H, W, C)
        np.testing.assert_array_equal(got, python_samples(bundle, n, seed))


def test_caller_latents_equal_python(capi: Path, bundle: Path, tmp_path: Path) -> None:
    z = np.random.default_rng(3).standard_normal((7, LATENT), dtype=np.float32)
    z.tofile(tmp_path / "z.f32")
    r = run(capi, "genedge_probe", "latents", bundle, 7, tmp_path / "z.f32", tmp_path / "out.bin")
    assert r.returncode == 0, r.stderr
    from genedge.runtime import Sampler

    with Sampler.open(bundle, backend="ort-cpu", precision="fp32") as s:
        want = s.sample_latents(z)
    np.testing.assert_array_equal(
        np.frombuffer((tmp_path / "out.bin").read_bytes(), np.uint8).reshape(want.shape), want
    )


@pytest.mark.parametrize(
    "fixture", ["cgan_bundle", "float_gan_bundle", "vae_bundle", "byo_bundle", "byo_onnx_bundle"]
)
def test_exported_bundles_match_python(
    capi: Path, fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Bundles from the real exporter (conftest.py): conditional, float output, VAE decoder,
    and your own generator (a user's module, and the same model as an ONNX file)."""
    b = request.getfixturevalue(fixture).path
    from genedge.runtime import Sampler

    with Sampler.open(b, backend="ort-cpu", precision="fp32") as s:
        want = np.array(s.sample(6, seed=11))
    out = tmp_path / "raw.bin"
    r = run(capi, "genedge_probe", "raw", b, 6, 11, out)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(
        np.frombuffer(out.read_bytes(), np.uint8).reshape(want.shape), want
    )


def test_errors_come_back_as_codes_and_messages(capi: Path, bundle: Path) -> None:
    r = run(capi, "genedge_probe", "errors", bundle)
    assert r.returncode == 0, r.stderr
    got = cases(r.stdout)
    expected = {
        "open_missing": 2,
        "open_null_out": 2,
        "sample_wrong_size": 2,
        "sample_ok": 0,
        "sample_bad_label": 2,
        "sample_negative_label": 2,
        "latents_wrong_count": 2,
        "sample_zero": 2,
        "stream_next_without_start": 2,
        "null_handle": 2,
        "stream_start": 0,
        "stream_next_wrong_size": 2,
        "stream_stop": 0,
        "close": 0,
        "close_null": 0,
    }
    assert {k: got[k][0] for k in expected} == expected, r.stdout
    assert got["open_bad_backend"][0] == 2, r.stdout
    assert "open_missing_handle_not_null" not in got
    for name, (rc, msg) in got.items():
        assert rc == 0 or msg != "(empty)", name
    assert "/nonexistent/genedge-bundle" in got["open_missing"][1]
    assert str(H * W * C * 4) in got["sample_wrong_size"][1]  # says what was expected
    assert "label" in got["sample_bad_label"][1].lower()
    rc, msg = got["open_long_path"]  # ENAMETOOLONG: one bounded line, exit code 2
    assert rc == 2 and msg != "MULTI-LINE" and len(msg) < 1000, msg[:300]


def test_missing_genedge_is_an_environment_error(capi: Path, bundle: Path) -> None:
    env = dict(
        host_env(),
        GENEDGE_PYTHON="/nonexistent/venv/bin/python",
        PYTHONPATH="",
        PYTHONNOUSERSITE="1",
    )
    r = run(capi, "genedge_probe", "raw", bundle, 1, 0, "/dev/null", env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "GENEDGE_PYTHON" in r.stderr


def test_calls_from_other_threads(capi: Path, bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "thread.bin"
    r = run(capi, "genedge_probe", "threads", bundle, 12, 5, out)
    assert r.returncode == 0, r.stderr
    got = np.frombuffer(out.read_bytes(), np.uint8).reshape(12, H, W, C)
    np.testing.assert_array_equal(got, python_samples(bundle, 12, seed=5))


def test_inference_runs_without_the_gil(capi: Path, bundle: Path, tmp_path: Path) -> None:
    """While one thread runs long inferences, short calls on another handle go on.

    Were the GIL held during inference, the short calls could only slip in between the long
    ones (about one per long call, each waiting a long call's time).
    """
    big = make_tiny_bundle(tmp_path / "big", num_classes=0, hwc=(64, 64, 3), latent=512)
    r = run(capi, "genedge_probe", "gil", big, bundle, timeout=300)
    assert r.returncode == 0, r.stderr
    m = dict(re.findall(r"(\w+)=([\d.]+)", r.stdout))
    long_calls, long_ms = int(m["long_calls"]), float(m["long_ms"])
    assert int(m["short_calls_during"]) >= 3 * long_calls, r.stdout
    assert float(m["short_median_ms_during"]) < long_ms / 3, r.stdout


def test_ten_thousand_samples_leak_nothing(capi: Path, bundle: Path) -> None:
    r = run(capi, "genedge_probe", "leak", bundle, 10_000, timeout=300)
    assert r.returncode == 0, r.stderr
    m = re.search(r"samples=10000 rss_before_kb=(\d+) rss_after_kb=(\d+)", r.stdout)
    assert m, r.stdout
    growth_kb = int(m[2]) - int(m[1])
    assert growth_kb < 4096, f"RSS grew {growth_kb} kB over 10,000 samples"


def test_shutdown_finalises_once(capi: Path, bundle: Path) -> None:
    r = run(capi, "genedge_probe", "shutdown", bundle)
    assert r.returncode == 0, r.stderr
    got = cases(r.stdout)
    assert got["shutdown_with_open_handle"][0] == 2
    rc, msg = got["shutdown_other_thread"]  # refused at once, where it used to wait forever
    assert rc == 2 and "thread" in msg, msg
    assert got["shutdown"][0] == 0
    assert got["open_after_shutdown"][0] == 3


class StreamOptions(ctypes.Structure):
    _fields_ = [
        ("walk", ctypes.c_char_p),
        ("late", ctypes.c_char_p),
        ("batch", ctypes.c_int32),
        ("truncation", ctypes.c_float),
        ("seed", ctypes.c_uint64),
        ("labels", ctypes.POINTER(ctypes.c_int64)),
        ("num_labels", ctypes.c_size_t),
    ]


class FrameInfo(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_int64),
        ("t_due", ctypes.c_double),
        ("t_ready", ctypes.c_double),
        ("t_delivered", ctypes.c_double),
        ("latency_s", ctypes.c_double),
    ]


class StreamStats(ctypes.Structure):
    _fields_ = [
        (k, ctypes.c_int64)
        for k in ("frames", "missed_deadlines", "dropped", "late_delivered", "nonfinite")
    ] + [
        (k, ctypes.c_double)
        for k in (
            "elapsed_s",
            "fps_target",
            "fps_achieved",
            "jitter_p50_s",
            "jitter_p99_s",
            "jitter_max_s",
            "latency_p50_s",
            "latency_p99_s",
            "latency_max_s",
        )
    ]


def test_library_inside_a_python_process(capi: Path, bundle: Path) -> None:
    """Loaded with ctypes, libgenedge uses this interpreter; batched streams and stats work."""
    lib = ctypes.CDLL(str(capi / "libgenedge.so"))
    lib.genedge_last_error.restype = ctypes.c_char_p
    h = ctypes.c_void_p()
    assert lib.genedge_open(str(bundle).encode(), None, ctypes.byref(h)) == 0, (
        lib.genedge_last_error(None)
    )
    try:
        images = np.zeros((5, H, W, C), np.uint8)
        ptr = images.ctypes.data_as(ctypes.c_void_p)
        assert (
            lib.genedge_sample(
                h, ctypes.c_size_t(5), ctypes.c_uint64(9), None, ptr, ctypes.c_size_t(images.nbytes)
            )
            == 0
        )
        np.testing.assert_array_equal(images, python_samples(bundle, 5, seed=9))

        labels = (ctypes.c_int64 * 1)(2)
        so = StreamOptions(b"lerp", b"block", 2, 0.0, 4, labels, 1)
        assert (
            lib.genedge_stream_start(
                h, ctypes.c_double(100.0), ctypes.c_double(0.1), ctypes.byref(so)
            )
            == 0
        )
        frame, info, indices = np.zeros((2, H, W, C), np.uint8), FrameInfo(), []
        fptr = frame.ctypes.data_as(ctypes.c_void_p)
        assert (
            lib.genedge_stream_next(h, fptr, ctypes.c_size_t(H * W * C), ctypes.byref(info)) == 2
        )  # one image: too small
        while (
            rc := lib.genedge_stream_next(
                h, fptr, ctypes.c_size_t(frame.nbytes), ctypes.byref(info)
            )
        ) == 0:
            indices.append(info.index)
            assert info.t_ready <= info.t_delivered and info.latency_s > 0
        assert rc == -1, lib.genedge_last_error(h)
        again = lib.genedge_stream_next(h, fptr, ctypes.c_size_t(frame.nbytes), ctypes.byref(info))
        assert again == -1  # an ended stream keeps answering END
        stats = StreamStats()
        assert lib.genedge_stream_stats(h, ctypes.byref(stats)) == 0
        assert (
            stats.frames == len(indices) == 10 and stats.fps_target == 100.0
        )  # block: every slot shown
        assert indices == list(range(10)) and stats.dropped == 0 and stats.elapsed_s > 0
    finally:
        assert lib.genedge_close(h) == 0


# ------------------------------------------------------------------ TensorRT host, TRT-free part


def _nlohmann_include() -> Path | None:
    for cand in (os.environ.get("NLOHMANN_JSON_INCLUDE"), "/usr/include", "/usr/local/include"):
        if cand and (Path(cand) / "nlohmann" / "json.hpp").is_file():
            return Path(cand)
    spec = importlib.util.find_spec("nlohmann_json")  # PyPI's nlohmann-json ships the header
    if spec and spec.origin:
        inc = Path(spec.origin).parent / "include"
        if (inc / "nlohmann" / "json.hpp").is_file():
            return inc
    return None


@pytest.fixture(scope="session")
def manifest_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("c++"):
        pytest.skip("no C++ compiler")
    inc = _nlohmann_include()
    if inc is None:
        pytest.skip(
            "nlohmann/json.hpp not found (apt install nlohmann-json3-dev, or pip install nlohmann-json)"
        )
    exe = tmp_path_factory.mktemp("trt-host") / "manifest_tool"
    subprocess.run(
        [
            "c++",
            "-std=c++17",
            "-O0",
            "-Wall",
            "-Wextra",
            f"-I{inc}",
            str(TRT_HOST_SRC / "manifest_check.cpp"),
            str(TRT_HOST_SRC / "manifest_tool.cpp"),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return exe


def engine_bundle(root: Path, plan: bytes) -> Path:
    """The tiny bundle plus a fake engine record (the plan's bytes are never deserialized here)."""
    b = make_tiny_bundle(root)
    name = "model.fp16.sm87.trt10.3.engine"
    (b / name).write_bytes(plan)
    import json

    m = json.loads((b / "manifest.json").read_text())
    rec = artifact_record(
        b,
        name,
        graph="generator",
        format="engine",
        precision="fp16",
        engine={
            "tensorrt_version": "10.3.0",
            "device_name": "Orin",
            "compute_capability": "8.7",
            "profiles": [[1, 8, 64]],
            "version_compatible": False,
            "dla_core": None,
            "built_from": "model.fp16.onnx",
            "path": "strongly-typed",
        },
    )
    m["artifacts"].append(rec.to_dict())
    write_manifest(b, m)
    return b


def test_manifest_check_reads_the_engine_record(manifest_tool: Path, tmp_path: Path) -> None:
    plan = os.urandom(4096)
    b = engine_bundle(tmp_path / "b", plan)
    r = subprocess.run(
        [str(manifest_tool), str(b), "--precision", "fp16", "--trt", "10.3.0", "--cc", "8.7"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "file=model.fp16.sm87.trt10.3.engine" in r.stdout
    assert f"sha256={hashlib.sha256(plan).hexdigest()}" in r.stdout
    assert "profile=1,8,64" in r.stdout and "latent_dim=6" in r.stdout


def test_manifest_check_refuses_tampering_and_mismatches(
    manifest_tool: Path, tmp_path: Path
) -> None:
    b = engine_bundle(tmp_path / "b", os.urandom(4096))
    args = [str(manifest_tool), str(b), "--precision", "fp16"]
    wrong_trt = subprocess.run(
        [*args, "--trt", "8.6.1", "--cc", "8.7"], capture_output=True, text=True
    )
    assert wrong_trt.returncode == 3 and "TensorRT" in wrong_trt.stderr
    wrong_gpu = subprocess.run(
        [*args, "--trt", "10.3.0", "--cc", "8.6"], capture_output=True, text=True
    )
    assert wrong_gpu.returncode == 3 and "compute capability" in wrong_gpu.stderr
    no_int8 = subprocess.run(
        [str(manifest_tool), str(b), "--precision", "int8", "--trt", "10.3.0", "--cc", "8.7"],
        capture_output=True,
        text=True,
    )
    assert no_int8.returncode == 2
    engine = b / "model.fp16.sm87.trt10.3.engine"
    data = bytearray(engine.read_bytes())
    data[100] ^= 0xFF
    engine.write_bytes(bytes(data))
    tampered = subprocess.run(
        [*args, "--trt", "10.3.0", "--cc", "8.7"], capture_output=True, text=True
    )
    assert tampered.returncode == 4 and "sha256" in tampered.stderr


def test_sha256_matches_hashlib(manifest_tool: Path, tmp_path: Path) -> None:
    for size in (0, 1, 55, 56, 63, 64, 65, 1000, 1 << 20):
        f = tmp_path / f"f{size}"
        f.write_bytes(os.urandom(size))
        r = subprocess.run([str(manifest_tool), "--sha256", str(f)], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip() == hashlib.sha256(f.read_bytes()).hexdigest()


def add_engine(
    b: Path, precision: str, *, trt: str = "10.3.0", vc: bool = False, approved: bool = False
) -> str:
    """Append an engine artifact (random plan bytes) to bundle ``b``'s manifest."""
    import json

    name = f"model.{precision}.sm87.trt{trt}{'.vc' if vc else ''}.engine"
    (b / name).write_bytes(os.urandom(512))
    m = json.loads((b / "manifest.json").read_text())
    rec = artifact_record(
        b,
        name,
        graph="generator",
        format="engine",
        precision=precision,
        quality_approved=approved,
        engine={
            "tensorrt_version": trt,
            "device_name": "Orin",
            "compute_capability": "8.7",
            "profiles": [[1, 8, 64]],
            "version_compatible": vc,
            "dla_core": None,
            "built_from": f"model.{precision}.onnx",
            "path": "strongly-typed",
        },
    )
    m["artifacts"].append(rec.to_dict())
    write_manifest(b, m)
    return name


def pick(tool: Path, b: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(tool), str(b), *args], capture_output=True, text=True)


def test_manifest_check_version_rules_match_python(manifest_tool: Path, tmp_path: Path) -> None:
    """Plain engines: exact major.minor.patch (as check_engine_record); version-compatible ones:
    that version or newer, a later major included, and only with the trust opt-in (exit 4)."""
    b = engine_bundle(tmp_path / "b", os.urandom(256))
    patch = pick(manifest_tool, b, "--precision", "fp16", "--trt", "10.3.1", "--cc", "8.7")
    assert patch.returncode == 3 and "up to the patch" in patch.stderr
    vc_bundle = make_tiny_bundle(tmp_path / "vc")
    add_engine(vc_bundle, "fp16", trt="10.3.0", vc=True)
    args = ["--precision", "fp16", "--cc", "8.7"]
    untrusted = pick(manifest_tool, vc_bundle, *args, "--trt", "11.4.0")
    assert untrusted.returncode == 4 and "host code" in untrusted.stderr
    trusted = pick(manifest_tool, vc_bundle, *args, "--trt", "11.4.0", "--allow-version-compatible")
    assert trusted.returncode == 0, trusted.stderr
    assert "host_code=allowed" in trusted.stdout
    older = pick(manifest_tool, vc_bundle, *args, "--trt", "10.2.0", "--allow-version-compatible")
    assert older.returncode == 3 and "or newer" in older.stderr


def test_manifest_check_picks_int8_only_when_quality_approved(
    manifest_tool: Path, tmp_path: Path
) -> None:
    b = make_tiny_bundle(tmp_path / "b")
    add_engine(b, "int8")  # failed its quality gate
    add_engine(b, "fp16")
    env = ["--trt", "10.3.0", "--cc", "8.7"]
    default = pick(manifest_tool, b, *env)
    assert default.returncode == 0 and "precision=fp16" in default.stdout, default.stderr
    asked = pick(manifest_tool, b, "--precision", "int8", *env)
    assert asked.returncode == 0 and "precision=int8" in asked.stdout
    assert "not quality-approved" in asked.stderr
    approved = make_tiny_bundle(tmp_path / "approved")
    add_engine(approved, "int8", approved=True)
    add_engine(approved, "fp16")
    best = pick(manifest_tool, approved, *env)
    assert best.returncode == 0 and "precision=int8" in best.stdout, best.stderr


# ------------------------------------------------------------------ text generation


@pytest.fixture(scope="module")
def llama_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama (grouped-query attention) exported as a transformer ar bundle."""
    pytest.importorskip("transformers")
    from text_fixtures import export_folder, hf_folder

    root = tmp_path_factory.mktemp("capi-llama")
    return export_folder(hf_folder(root / "llama", "llama"), root / "bundle")


def text_stats(stdout: str) -> dict[str, str]:
    """The key=value pairs text_probe prints (text info and stats lines)."""
    return dict(re.findall(r"(\w+)=(\S+)", stdout))


def python_text(bundle: Path, prompt: str, **options: object) -> tuple[str, object]:
    """The reference: Python's TextGenerator with the same options (the C side's defaults)."""
    from genedge.runtime import TextGenerator

    with TextGenerator.open(bundle) as tg:
        g = tg.generate(prompt, **options)
        return "".join(g), g


@pytest.mark.parametrize("loop", [[], ["--next", 5]], ids=["callback", "next-piece-5-bytes"])
def test_c_greedy_text_equals_python(
    capi: Path, llama_bundle: Path, tmp_path: Path, loop: list
) -> None:
    """Greedy, no EOS stop: the same text as Python, through the callback and through
    genedge_generate_next with a buffer that holds one character at a time."""
    out = tmp_path / "text.bin"
    r = run(capi, "text_probe", "gen", llama_bundle, out, "--prompt", "def main",
            "--n", 40, "--ignore-eos", *loop)  # fmt: skip
    assert r.returncode == 0, r.stderr
    text, g = python_text(llama_bundle, "def main", max_new_tokens=40, temperature=0, eos=False)
    assert out.read_bytes().decode("utf-8") == text and len(g.tokens) == 40
    s = text_stats(r.stdout)
    assert (s["transformer"], s["context"], s["vocab"]) == ("1", "1024", "320")
    assert s["tokens"] == "40" and s["reason"] == "length" and s["split"] == "0"
    assert int(s["prompt_tokens"]) == len(g._lm.prompt_ids("def main"))
    assert 0 < float(s["ttft_s"]) <= float(s["elapsed_s"])
    assert 0 < float(s["p50_s"]) <= float(s["p99_s"]) and float(s["tokens_per_s"]) > 0


def test_c_sampling_options_equal_python(capi: Path, llama_bundle: Path, tmp_path: Path) -> None:
    """Temperature, top-k, top-p, repetition penalty, seed and a stop string: the C host gets
    Python's text and stop reason for the same options."""
    out = tmp_path / "text.bin"
    opts = dict(temperature=0.9, top_k=40, top_p=0.9, repetition_penalty=1.3, seed=11)
    text, g = python_text(llama_bundle, "Return", max_new_tokens=60, **opts)
    stop = text[len(text) // 2 :][:2] or "x"  # a string the unstopped text holds
    text, g = python_text(llama_bundle, "Return", max_new_tokens=60, stop=(stop,), **opts)
    r = run(capi, "text_probe", "gen", llama_bundle, out, "--prompt", "Return", "--n", 60,
            "--temperature", 0.9, "--top-k", 40, "--top-p", 0.9, "--rep", 1.3, "--seed", 11,
            "--stop", stop)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().decode("utf-8") == text and stop not in text
    s = text_stats(r.stdout)
    assert s["reason"] == g.stop_reason == "stop" and int(s["tokens"]) == len(g.tokens)


def test_c_callback_ends_the_generation(capi: Path, llama_bundle: Path, tmp_path: Path) -> None:
    r = run(capi, "text_probe", "gen", llama_bundle, tmp_path / "t", "--n", 50, "--ignore-eos",
            "--cancel-after", 3)  # fmt: skip
    assert r.returncode == 0, r.stderr
    s = text_stats(r.stdout)
    assert s["reason"] == "callback" and 3 <= int(s["tokens"]) < 50


def test_c_generates_from_an_rnn_bundle(capi: Path, ar_bundle, tmp_path: Path) -> None:
    """The character-level RNN through the same calls; options it lacks are refused."""
    out = tmp_path / "text.bin"
    r = run(capi, "text_probe", "gen", ar_bundle.path, out, "--prompt", "the ", "--n", 30,
            "--temperature", 0.7, "--seed", 3)  # fmt: skip
    assert r.returncode == 0, r.stderr
    text, _ = python_text(ar_bundle.path, "the ", max_new_tokens=30, temperature=0.7, seed=3)
    assert out.read_bytes().decode("utf-8") == text and len(text) == 30
    s = text_stats(r.stdout)
    assert s["transformer"] == "0" and s["context"] == "0" and s["tokens"] == "30"
    r = run(capi, "text_probe", "gen", ar_bundle.path, out, "--rep", 1.2)
    assert r.returncode == 2 and "need a transformer bundle" in r.stderr


def test_c_text_errors_are_codes_and_messages(capi: Path, llama_bundle: Path, bundle: Path) -> None:
    r = run(capi, "text_probe", "errors", llama_bundle, bundle)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = {ln.split(" ", 1)[0]: ln for ln in r.stdout.splitlines()}
    assert "need an ar (text) bundle" in lines["generate_on_image"]
    assert "holds an ar (text) bundle" in lines["image_call_on_text"]
    assert "not valid UTF-8" in lines["bad_utf8_prompt"] and "stop[1]" in lines["bad_utf8_stop"]
    assert "genedge_generate_start first" in lines["next_before_start"]
    assert (
        "at least 5" in lines["small_buffer"] and "max_new_tokens is -1" in lines["negative_tokens"]
    )
    assert "closed or was never opened" in lines["next_after_close"]
    assert "Traceback" not in r.stdout and "internal error" not in r.stdout

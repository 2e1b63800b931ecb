"""Package combinations that cannot work are refused with exit 3 naming the versions.

TensorRT wheel vs cuda-python CUDA majors, cuda-python vs the driver, onnxruntime-gpu's
TensorRT provider vs the installed TensorRT (read from the provider's ELF ``DT_NEEDED``,
checked here on stand-in shared objects the C compiler builds), and the ORT TensorRT EP's
precision options. The tensorrt/cuda-python modules are stand-ins: this checks our
decisions, not NVIDIA's libraries.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from genedge.errors import IncompatibleEnvironmentError
from genedge.runtime import cuda as runtime_cuda
from genedge.runtime import ort_backend
from genedge.runtime.ort_backend import OrtOptions, _provider_options
from genedge.runtime.trt_compat import (
    TensorRTInstall,
    check_cuda_python,
    check_driver,
    check_ort_tensorrt,
    elf_needed,
    needed_major,
)

TRT10_CU12 = TensorRTInstall("10.3.0", 12, "tensorrt-cu12-bindings")
TRT11_CU13 = TensorRTInstall("11.4.0.106", 13, "tensorrt-cu13-bindings")


def test_cuda_python_must_match_the_tensorrt_cuda_major() -> None:
    check_cuda_python(TRT10_CU12, "12.9.4")
    check_cuda_python(TRT11_CU13, "13.4.4")
    check_cuda_python(TensorRTInstall("10.3.0", None, "tensorrt"), "13.4.4")  # JetPack: unknown
    with pytest.raises(IncompatibleEnvironmentError) as e:
        check_cuda_python(TRT10_CU12, "13.4.4")
    assert e.value.exit_code == 3
    assert "10.3.0" in e.value.message and "13.4.4" in e.value.message
    assert "genedge[trt-cu12]" in (e.value.hint or "")


def test_cuda_python_newer_than_the_driver_is_named() -> None:
    check_driver(12040, "12.9.4")
    check_driver(13000, "12.9.4")  # newer drivers run older CUDA
    with pytest.raises(IncompatibleEnvironmentError, match=r"supports CUDA 12\.4.*13\.4\.4") as e:
        check_driver(12040, "13.4.4")
    assert "genedge[trt-cu12]" in (e.value.hint or "")


def _fake_cuda(monkeypatch, *, driver: int, device_error: int) -> None:
    runtime = types.ModuleType("cuda.bindings.runtime")
    runtime.cudaDriverGetVersion = lambda: (0, driver)
    runtime.cudaGetDeviceProperties = lambda d: (device_error, None)
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = runtime
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "11.4.0.106"
    for name, mod in (
        ("cuda", cuda),
        ("cuda.bindings", bindings),
        ("cuda.bindings.runtime", runtime),
        ("tensorrt", trt),
    ):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(runtime_cuda, "installed_tensorrt", lambda imported=None: TRT11_CU13)


def test_the_imported_tensorrt_wheel_is_the_one_checked(monkeypatch) -> None:
    import genedge.runtime.trt_compat as compat

    versions = {"tensorrt-cu13-bindings": "11.4.0.106", "tensorrt-cu12-bindings": "10.16.1.11"}
    monkeypatch.setattr(compat, "dist_version", versions.get)
    assert compat.installed_tensorrt("10.16.1.11").dist == "tensorrt-cu12-bindings"
    assert compat.installed_tensorrt("11.4.0.106").cuda_major == 13
    assert compat.installed_tensorrt() is not None
    monkeypatch.setattr(compat, "dist_version", {}.get)
    assert compat.installed_tensorrt("10.3.0") is None


def test_probe_names_a_driver_too_old_instead_of_no_gpu(monkeypatch) -> None:
    _fake_cuda(monkeypatch, driver=12040, device_error=35)  # cudaErrorInsufficientDriver
    monkeypatch.setattr(runtime_cuda, "installed_cuda_python", lambda: "13.4.4")
    with pytest.raises(IncompatibleEnvironmentError, match="CUDA 12.4"):
        runtime_cuda.probe_environment()


def test_probe_refuses_mixed_cuda_majors(monkeypatch) -> None:
    _fake_cuda(monkeypatch, driver=13000, device_error=0)
    monkeypatch.setattr(runtime_cuda, "installed_cuda_python", lambda: "12.9.4")
    with pytest.raises(IncompatibleEnvironmentError, match="built for CUDA 13"):
        runtime_cuda.probe_environment()


def test_probe_without_a_gpu_is_still_none(monkeypatch) -> None:
    _fake_cuda(monkeypatch, driver=0, device_error=100)  # cudaErrorNoDevice, no driver version
    monkeypatch.setattr(runtime_cuda, "installed_cuda_python", lambda: "13.4.4")
    assert runtime_cuda.probe_environment() is None


# ------------------------------------------------------------------ onnxruntime-gpu's TensorRT EP


def test_ort_provider_needing_libnvinfer_10_refuses_tensorrt_11() -> None:
    needs = ["libnvinfer.so.10", "libcudart.so.13", "libc.so.6"]
    assert needed_major(needs, "libnvinfer") == 10 and needed_major(needs, "libcudart") == 13
    with pytest.raises(IncompatibleEnvironmentError) as e:
        check_ort_tensorrt(needs, TRT11_CU13, "1.31.1")
    assert e.value.exit_code == 3
    assert "libnvinfer.so.10" in e.value.message and "11.4.0.106" in e.value.message
    assert "1.31.1" in e.value.message
    with pytest.raises(IncompatibleEnvironmentError, match="libcudart.so.13"):
        check_ort_tensorrt(needs, TRT10_CU12, "1.31.1")  # TensorRT 10, but built for CUDA 12
    check_ort_tensorrt(needs, TensorRTInstall("10.16.1.11", 13, "tensorrt-cu13-bindings"), "1.31.1")
    check_ort_tensorrt(needs, None, "1.31.1")  # a system TensorRT: ORT's own loader decides


def _cc(*args: str) -> None:
    subprocess.run(["cc", *args], check=True, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def fake_ort(tmp_path_factory) -> Path:
    """An onnxruntime-shaped folder whose TensorRT provider library links libnvinfer.so.10."""
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    root = tmp_path_factory.mktemp("ort")
    src = root / "stub.c"
    src.write_text("int stub_symbol(void) { return 0; }\n")
    lib = root / "lib"
    lib.mkdir()
    _cc(
        "-shared",
        "-fPIC",
        "-Wl,-soname,libnvinfer.so.10",
        str(src),
        "-o",
        str(lib / "libnvinfer.so"),
    )
    capi = root / "onnxruntime" / "capi"
    capi.mkdir(parents=True)
    _cc(
        "-shared",
        "-fPIC",
        str(src),
        "-Wl,--no-as-needed",
        f"-L{lib}",
        "-lnvinfer",
        "-o",
        str(capi / "libonnxruntime_providers_tensorrt.so"),
    )
    (root / "onnxruntime" / "__init__.py").write_text("")
    return root / "onnxruntime"


def test_elf_needed_reads_the_provider_links(fake_ort: Path) -> None:
    needs = elf_needed(fake_ort / "capi" / "libonnxruntime_providers_tensorrt.so")
    assert "libnvinfer.so.10" in needs
    assert elf_needed(fake_ort / "__init__.py") == []  # not an ELF file


def test_ort_trt_backend_refuses_before_creating_a_session(fake_ort, monkeypatch, tmp_path) -> None:
    ort = types.ModuleType("onnxruntime")
    ort.__file__ = str(fake_ort / "__init__.py")
    ort.__version__ = "1.31.1"
    ort.get_available_providers = lambda: [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]

    def no_session(*a, **k):
        raise AssertionError("the session must not be created")

    ort.InferenceSession = no_session
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    import genedge.runtime.trt_compat as compat

    monkeypatch.setattr(compat, "installed_tensorrt", lambda: TRT11_CU13)
    with pytest.raises(IncompatibleEnvironmentError, match=r"libnvinfer\.so\.10.*11\.4\.0"):
        ort_backend.OrtBackend.open(tmp_path / "model.onnx", name="ort-trt")


def test_ort_trt_builds_reduced_precision_graphs_in_their_precision() -> None:
    opts = OrtOptions()
    trt = "TensorrtExecutionProvider"
    assert _provider_options(trt, opts, "fp16")["trt_fp16_enable"] is True
    assert _provider_options(trt, opts, "int8")["trt_int8_enable"] is True
    assert "trt_fp16_enable" not in _provider_options(trt, opts, "fp32")
    assert "trt_fp16_enable" not in _provider_options("CUDAExecutionProvider", opts, "fp16")
    cached = _provider_options(trt, OrtOptions(trt_cache_dir="/tmp/c"), "fp16")
    assert cached["trt_fp16_enable"] is True and cached["trt_engine_cache_path"] == "/tmp/c"


def test_each_trt_extra_resolves_within_one_cuda_major() -> None:
    """TensorRT wheel and cuda-python of the same CUDA major, bounded above; JetPack's extra
    installs no TensorRT wheel; `trt` is an alias of trt-cu12."""
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    extras = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for extra, cuda, trt_major in (("trt-cu12", 12, 10), ("trt-cu13", 13, 11)):
        reqs = {r.name: r.specifier for r in map(Requirement, extras[extra])}
        assert set(reqs) == {f"tensorrt-cu{cuda}", "cuda-python"}, extra
        trt = reqs[f"tensorrt-cu{cuda}"]
        assert f"{trt_major}.3.0" in trt and f"{trt_major + 1}.0.0" not in trt, extra
        assert f"{cuda}.9.0" in reqs["cuda-python"], extra
        assert f"{cuda + 1}.0.0" not in reqs["cuda-python"], extra
    assert extras["trt"] == ["genedge[trt-cu12]"]
    jetpack = [Requirement(r).name for r in extras["trt-jetpack"]]
    assert jetpack == ["cuda-python"]

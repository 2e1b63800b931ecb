"""GPU backends against ORT CPU on the same seeds (marked ``gpu``; skipped without a GPU)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from genedge.errors import BadInputError
from genedge.runtime import Sampler

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch for bundles"),
]


def _ort_cuda() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.fixture(scope="session")
def trt_bundle(bundle_factory):
    from genedge.runtime.cuda import probe_environment

    if probe_environment() is None:
        pytest.skip("needs tensorrt, cuda-python and an NVIDIA GPU")
    from genedge.export.bundle import export_bundle
    from genedge.export.options import ExportOptions

    b = bundle_factory("gan-trt", "gan")
    export_bundle(
        ExportOptions(
            source=b.checkpoint,
            out=b.path,
            precisions=("fp32", "fp16"),
            trt=True,
            profiles=((1, 4, 8),),
            force=True,
        )
    )
    return b


@pytest.mark.skipif(not _ort_cuda(), reason="needs onnxruntime-gpu with CUDA")
def test_ort_cuda_matches_cpu(gan_bundle) -> None:
    with (
        Sampler.open(gan_bundle.path, backend="ort-cpu") as cpu,
        Sampler.open(gan_bundle.path, backend="ort-cuda", precision="fp32") as gpu,
    ):
        assert gpu.info.provider == "CUDAExecutionProvider"
        a, b = cpu.sample(16, seed=0), gpu.sample(16, seed=0)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_tensorrt_matches_cpu(trt_bundle, cuda_graphs) -> None:
    with (
        Sampler.open(trt_bundle.path, backend="ort-cpu") as cpu,
        Sampler.open(
            trt_bundle.path, backend="tensorrt", precision="fp32", cuda_graphs=cuda_graphs
        ) as trt,
    ):
        assert trt.info.backend == "tensorrt"
        for _ in range(3):  # first run warms, second captures, third replays
            a, b = cpu.sample(4, seed=1), trt.sample(4, seed=1)
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
        assert trt.sample(20, seed=2).shape[0] == 20  # chunked to the profile's max of 8
        with pytest.raises(BadInputError, match="min 1, opt 4, max 8"):
            trt.backend.run({"z": np.zeros((9, 16), np.float32)})


def test_tensorrt_stream(trt_bundle) -> None:
    with Sampler.open(trt_bundle.path, backend="tensorrt") as s:
        st = s.stream(fps=60, seconds=1)
        assert sum(1 for _ in st) + st.stats.dropped == 60


@pytest.mark.skipif(not _ort_cuda(), reason="needs onnxruntime-gpu with CUDA")
def test_ort_cuda_stream_frames_follow_the_walk(gan_bundle) -> None:
    """The stream refills one latent array in place; on CUDA it must be re-copied every frame."""
    with Sampler.open(gan_bundle.path, backend="ort-cuda", precision="fp32") as s:
        frames = [f.image.copy() for f in s.stream(fps=30, seconds=0.5, late="block", period_s=0.5)]
    assert len(frames) >= 10
    assert (
        sum(not np.array_equal(a, b) for a, b in zip(frames, frames[1:], strict=False))
        >= len(frames) // 2
    )


def test_tensorrt_cuda_graphs_across_changing_batches(trt_bundle) -> None:
    """4, 8, 4, 2, 8: each capture follows an eager run at its own shape; replays match ORT CPU."""
    with (
        Sampler.open(trt_bundle.path, backend="ort-cpu") as cpu,
        Sampler.open(
            trt_bundle.path, backend="tensorrt", precision="fp32", cuda_graphs=True
        ) as trt,
    ):
        for n in (4, 8, 4, 2, 8, 2):
            a, b = cpu.sample(n, seed=n), trt.sample(n, seed=n)
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 2, n


def _zeros_feed(backend, n: int) -> dict[str, np.ndarray]:
    return {
        s.name: np.zeros(tuple(n if not isinstance(d, int) else d for d in s.shape), s.np_dtype)
        for s in backend.inputs
    }


def test_tensorrt_results_outlive_the_backend(trt_bundle) -> None:
    """run() without out= returns arrays of its own: unchanged by later runs, valid after close()."""
    with Sampler.open(trt_bundle.path, backend="tensorrt", precision="fp32") as s:
        b = s.backend
        first = b.run(_zeros_feed(b, 4))
        kept = {k: v.copy() for k, v in first.items()}
        feed = _zeros_feed(b, 4)
        for v in feed.values():
            if v.dtype.kind == "f":
                v += 1.0
        b.run(feed)
    for k, v in first.items():  # the pinned buffers are freed by now
        np.testing.assert_array_equal(v, kept[k])


def test_two_backends_share_the_process_logger(trt_bundle) -> None:
    import tensorrt as trt

    from genedge.runtime.cuda import trt_logger

    a = Sampler.open(trt_bundle.path, backend="tensorrt", precision="fp32")
    a.close()  # TensorRT keeps the first logger: it must outlive this backend
    with Sampler.open(trt_bundle.path, backend="tensorrt", precision="fp16") as b:
        assert b.sample(2, seed=0).shape[0] == 2
    assert trt_logger(trt) is trt_logger(trt)


def test_a_foreign_timing_cache_falls_back_to_a_fresh_one(trt_bundle) -> None:
    import tensorrt as trt

    from genedge.export.stages.tensorrt import attach_timing_cache
    from genedge.runtime.cuda import trt_logger

    config = trt.Builder(trt_logger(trt)).create_builder_config()
    logs: list[str] = []
    attach_timing_cache(config, b"\x00" * 256, logs.append)  # no GPU wrote these bytes
    assert config.get_timing_cache() is not None
    assert isinstance(bytes(config.get_timing_cache().serialize()), bytes)


def _ort_trt() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "TensorrtExecutionProvider" in onnxruntime.get_available_providers()


@pytest.mark.skipif(not _ort_trt(), reason="needs onnxruntime-gpu with TensorRT")
def test_ort_trt_builds_the_fp16_graph_in_fp16(trt_bundle) -> None:
    with (
        Sampler.open(trt_bundle.path, backend="ort-cpu", precision="fp32") as cpu,
        Sampler.open(trt_bundle.path, backend="ort-trt", precision="fp16") as s,
    ):
        assert s.info.provider == "TensorrtExecutionProvider"
        a, b = cpu.sample(4, seed=3), s.sample(4, seed=3)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 8

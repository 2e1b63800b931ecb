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
    from genedge.runtime.trt_backend import probe_environment

    if probe_environment() is None:
        pytest.skip("needs tensorrt, cuda-python and an NVIDIA GPU")
    from genedge.export.bundle import export_bundle
    from genedge.export.options import ExportOptions

    b = bundle_factory("gan-trt", "gan")
    export_bundle(
        ExportOptions(
            checkpoint=b.checkpoint,
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

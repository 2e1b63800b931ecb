"""The OpenVINO backend against ONNX Runtime on the same bundles: same images for a seed,
``out=`` buffers, input checks, the stream loop, text, the C ABI entry, bf16's refusal."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from genedge.errors import BadInputError, IncompatibleEnvironmentError, MissingExtraError

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

from genedge.runtime import (  # noqa: E402
    Sampler,
    TextGenerator,
    machine,  # noqa: E402
)
from genedge.runtime import openvino_backend as ovb  # noqa: E402


@pytest.fixture(autouse=True)
def _no_tuning(tmp_path, monkeypatch):
    monkeypatch.setenv("GENEDGE_CACHE", str(tmp_path / "cache"))  # auto: the fixed rule
    monkeypatch.delenv("GENEDGE_TUNE", raising=False)


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def test_same_images_as_ort_for_a_seed(cgan_bundle) -> None:
    with (
        Sampler.open(cgan_bundle.path, backend="openvino", threads=1) as s,
        Sampler.open(cgan_bundle.path, backend="ort-cpu", threads=1) as r,
    ):
        assert s.info.backend == "openvino" and s.info.precision == "fp32"
        assert "OpenVINO" in s.info.provider
        for n, seed in ((1, 0), (5, 3), (16, 7)):
            a, b = s.sample(n, seed=seed), r.sample(n, seed=seed)
            assert a.shape == b.shape == (n, *r.image_shape) and a.dtype == np.uint8
            assert _max_diff(a, b) <= 1  # fp32 on both: rounding of the uint8 cast at most
        labels = np.array([9, 0, 4], np.int64)
        assert _max_diff(s.sample(3, 1, labels=labels), r.sample(3, 1, labels=labels)) <= 1
        assert (s.sample(4, seed=2) == s.sample(4, seed=2)).all()  # seeded: reproducible
        assert not (s.sample(4, seed=2) == s.sample(4, seed=5)).all()


def test_out_buffer_is_written_in_place(cgan_bundle) -> None:
    with Sampler.open(cgan_bundle.path, backend="openvino", threads=1) as s:
        ref = s.sample(6, seed=4)
        out = np.zeros_like(ref)
        got = s.sample(6, seed=4, out=out)
        assert got is out and (out == ref).all()
        out2 = np.zeros_like(ref)  # another buffer: rebound, also written
        s.sample(6, seed=4, out=out2)
        assert (out2 == ref).all()
        with pytest.raises(BadInputError, match="expected"):
            s.sample(6, seed=4, out=np.zeros((5, *s.image_shape), np.uint8))


@pytest.mark.parametrize("backend", ["openvino", "ort-cpu"])
def test_out_names_an_output_the_graph_lacks(cgan_bundle, backend) -> None:
    from genedge.errors import CorruptArtifactError

    with Sampler.open(cgan_bundle.path, backend=backend, threads=1) as s:
        b = s.backend
        feed = {"z": np.zeros((2, s.latent_dim), np.float32), "label": np.zeros(2, np.int64)}
        buf = np.zeros((2, *s.image_shape), np.uint8)
        with pytest.raises(CorruptArtifactError, match=r"no output 'nope'; outputs: \['image'\]"):
            b.run(feed, out={"nope": buf})
        assert b.run(feed, out={"image": buf})["image"] is buf


def test_input_checks(cgan_bundle) -> None:
    with Sampler.open(cgan_bundle.path, backend="openvino", threads=1) as s:
        z = np.zeros((2, s.latent_dim), np.float32)
        z[1, 0] = np.nan
        with pytest.raises(BadInputError, match="NaN"):
            s.sample_latents(z)
        with pytest.raises(BadInputError, match="label"):
            s.sample(2, labels=[0, 10])
        with pytest.raises(BadInputError, match="dtype"):
            s.backend.run({"z": z.astype(np.float64), "label": np.zeros(2, np.int64)})
        feed = {"z": np.zeros((2, s.latent_dim), np.float32), "label": np.zeros(3, np.int64)}
        with pytest.raises(BadInputError, match="shape"):
            s.backend.run(feed)
    with pytest.raises(BadInputError, match="closed"):
        s.sample(1)


def test_static_shapes_bounded_and_equal_to_dynamic(cgan_bundle) -> None:
    with (
        Sampler.open(cgan_bundle.path, backend="openvino", threads=1) as s,
        Sampler.open(cgan_bundle.path, backend="openvino", threads=1, static_shapes=False) as d,
    ):
        for n in range(1, 12):
            assert (s.sample(n, seed=n) == d.sample(n, seed=n)).all()
        assert len(s.backend._compiled) == ovb.MAX_COMPILED  # the LRU holds its bound
        assert s.backend.compile_count == 11
        assert d.backend.compile_count == 1  # one dynamic model for every batch
        s.sample(11, seed=0)  # recently used: no compile
        assert s.backend.compile_count == 11


def test_the_batch_expected_is_compiled_at_open(cgan_bundle) -> None:
    with Sampler.open(cgan_bundle.path, backend="openvino", threads=1, batch=4) as s:
        assert s.backend.compile_count == 1
        s.sample(4)
        assert s.backend.compile_count == 1  # compiled at open, for batch 4
        s.sample(1)
        assert s.backend.compile_count == 2


def test_threads_and_precision_hint_reach_openvino(cgan_bundle) -> None:
    with Sampler.open(cgan_bundle.path, backend="openvino", threads=1) as s:
        compiled = next(iter(s.backend._compiled.values())).compiled
        assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
        assert not compiled.get_property("ENABLE_CPU_PINNING")
        # pinned to f32: OpenVINO would run fp32 graphs in bf16 on CPUs that have it
        assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"


def test_bf16_refused_without_cpu_support(cgan_bundle, monkeypatch) -> None:
    monkeypatch.setattr(machine, "cpu_flags", lambda *a: {"avx2", "avx512f"})
    with pytest.raises(IncompatibleEnvironmentError, match="avx512_bf16") as e:
        Sampler.open(cgan_bundle.path, backend="openvino", precision="bf16")
    assert e.value.exit_code == 3
    with pytest.raises(BadInputError, match="openvino"):  # bf16 is an OpenVINO hint only
        Sampler.open(cgan_bundle.path, backend="ort-cpu", precision="bf16")


def test_bf16_passes_the_hint_where_the_cpu_has_it(cgan_bundle, monkeypatch, caplog) -> None:
    monkeypatch.setattr(machine, "cpu_flags", lambda *a: {"avx512_bf16"})
    captured = {}
    real = ovb.OpenVinoBackend._compiled_for

    def spy(self, key):
        captured.update(self._config)
        return real(self, key)

    monkeypatch.setattr(ovb.OpenVinoBackend, "_compiled_for", spy)
    with caplog.at_level("WARNING", "genedge.runtime"):
        s = Sampler.open(cgan_bundle.path, backend="openvino", precision="bf16", threads=1)
    with s:
        assert s.info.precision == "bf16" and s.info.file == "model.onnx"
        assert captured["INFERENCE_PRECISION_HINT"] == "bf16"
        assert s.sample(2).shape[0] == 2  # this CPU may emulate or ignore it: runs either way
    assert "not quality-gated" in caplog.text  # no bf16 record in this bundle's manifest
    with Sampler.open(cgan_bundle.path, precision="bf16", threads=1) as s:  # auto: openvino
        assert (s.info.backend, s.info.precision) == ("openvino", "bf16")


def test_missing_package_names_the_extra(cgan_bundle, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(MissingExtraError, match="openvino") as e:
        Sampler.open(cgan_bundle.path, backend="openvino")
    assert e.value.exit_code == 3


def test_stream_runs_on_openvino(cgan_bundle) -> None:
    with Sampler.open(cgan_bundle.path, backend="openvino", threads=1) as s:
        ref = s.sample(1, seed=0)
        frames = []
        with s.stream(fps=100, seconds=None, batch=2) as st:
            for f in st:
                frames.append(f.image.copy())
                if len(frames) == 5:
                    break
        assert len(frames) == 5 and frames[0].shape == (2, *ref.shape[1:])
        assert st.stats.frames >= 5


def test_text_generation_matches_ort(ar_bundle) -> None:
    with (
        TextGenerator.open(ar_bundle.path, backend="openvino", threads=1) as tg,
        TextGenerator.open(ar_bundle.path, backend="ort-cpu", threads=1) as ref,
    ):
        a = "".join(tg.generate("the ", max_new_tokens=24, temperature=0))
        b = "".join(ref.generate("the ", max_new_tokens=24, temperature=0))
        assert a == b and len(a) == 24
        assert tg.info.name == "openvino"


def test_vae_encoder_and_decoder(vae_bundle) -> None:
    with (
        Sampler.open(vae_bundle.path, backend="openvino", threads=1) as s,
        Sampler.open(vae_bundle.path, backend="ort-cpu", threads=1) as r,
    ):
        img = r.sample(2, seed=1)
        mu, _ = s.encode(img)
        mu_ref, _ = r.encode(img)
        assert s._encoder.info.name == "openvino"
        np.testing.assert_allclose(mu, mu_ref, atol=1e-4)


def test_c_abi_accepts_openvino(cgan_bundle) -> None:
    from genedge.runtime import capi

    hid = capi.open_bundle(str(cgan_bundle.path), "openvino", None, 1, 1)
    try:
        info = capi.output_info(hid)
        assert info[-2] == "openvino" and info[-1] == "fp32"
    finally:
        capi.close(hid)

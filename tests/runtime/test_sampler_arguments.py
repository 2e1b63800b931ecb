"""Odd arguments to Sampler, TextGenerator and backend options: exit 2 with the field named."""

import importlib.util

import numpy as np
import pytest

from genedge.errors import BadInputError
from genedge.runtime import Sampler, TextGenerator

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs torch for bundles"
)


@pytest.mark.parametrize("seed", [-1, 1.5, None, "3"])
def test_bad_seeds_are_exit_2(gan_bundle, seed) -> None:
    with Sampler.open(gan_bundle.path) as s, pytest.raises(BadInputError, match="seed") as e:
        s.sample(2, seed=seed)
    assert e.value.exit_code == 2


def test_numpy_integers_are_fine_as_seeds_counts_and_labels(cgan_bundle) -> None:
    with Sampler.open(cgan_bundle.path) as s:
        a = s.sample(np.int64(3), seed=np.int32(7), labels=np.array([1, 2, 3], np.int32))
        assert np.array_equal(a, s.sample(3, seed=7, labels=[1, 2, 3]))


@pytest.mark.parametrize("labels", [3.7, "3", True, [1.0, 2.0]])
def test_labels_that_are_not_class_ids_are_refused(cgan_bundle, labels) -> None:
    with Sampler.open(cgan_bundle.path) as s, pytest.raises(BadInputError, match="labels"):
        s.sample(2, labels=labels)


@pytest.mark.parametrize("truncation", [[0.5], True, 0.0, 1.5, "0.5"])
def test_bad_truncations_are_refused(gan_bundle, truncation) -> None:
    with Sampler.open(gan_bundle.path) as s:
        s.sample(1, truncation=1.0)  # cached: a bad value must not hit this entry
        with pytest.raises(BadInputError, match="truncation"):
            s.sample(1, truncation=truncation)


def test_ort_trt_engine_caches_are_per_artifact(tmp_path, monkeypatch) -> None:
    from genedge.runtime.ort_backend import trt_ep_cache_dir

    monkeypatch.setenv("GENEDGE_CACHE", str(tmp_path))
    a, b = trt_ep_cache_dir("a" * 64), trt_ep_cache_dir("b" * 64)
    assert a != b and a.parent == b.parent == tmp_path / "ort-trt" and a.is_dir()
    monkeypatch.setenv("GENEDGE_CACHE", "/proc/not-writable")
    assert trt_ep_cache_dir("c" * 64) is None  # no cache, no crash


@pytest.mark.parametrize("n", [0, -3, 2.0, "4"])
def test_bad_counts_are_refused(gan_bundle, n) -> None:
    with Sampler.open(gan_bundle.path) as s, pytest.raises(BadInputError, match="n "):
        s.sample(n)


def test_nan_latents_on_a_conditional_bundle_say_nan(cgan_bundle) -> None:
    with Sampler.open(cgan_bundle.path) as s:
        z = np.zeros((2, s.latent_dim), np.float32)
        z[1, 3] = np.nan
        with pytest.raises(BadInputError, match="1 NaN/Inf"):
            s.sample_latents(z, labels=[0, 1])


@pytest.mark.parametrize("kw", [{"threads": 0}, {"threads": -2}, {"graph_optimization": "bogus"}])
def test_bad_backend_options_name_the_field(gan_bundle, kw) -> None:
    with pytest.raises(BadInputError, match=next(iter(kw))):
        Sampler.open(gan_bundle.path, **kw)


@pytest.mark.parametrize(
    "kw",
    [
        {"top_k": 2.5},
        {"top_k": float("inf")},
        {"top_k": float("nan")},
        {"prompt": None},
        {"temperature": float("nan")},
        {"temperature": float("inf")},
        {"max_new_tokens": -5},
        {"seed": -1},
    ],
)
def test_bad_generation_settings_are_refused(ar_bundle, kw) -> None:
    with TextGenerator.open(ar_bundle.path) as tg, pytest.raises(BadInputError):
        tg.start(**{"prompt": "ab", **kw})


def test_interpolate_checks_its_images(vae_bundle) -> None:
    with Sampler.open(vae_bundle.path) as v:
        good = np.zeros(v.image_shape, np.uint8)
        wrong = np.zeros((v.image_shape[0] // 2, v.image_shape[1] // 2, v.image_shape[2]), np.uint8)
        with pytest.raises(BadInputError, match="img_a"):
            v.interpolate(wrong, good)
        assert v.interpolate(good, good, steps=3).shape == (3, *v.image_shape)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"seeds": [0, 1], "steps": 2.5}, "steps"),
        ({"seeds": [0, 1], "steps": True}, "steps"),
        ({"seeds": 5}, "seeds"),
        ({"seeds": [3, 3], "kind": "circle"}, "different seeds"),
        ({"seeds": [0, 1], "steps": 10**9}, "steps"),
    ],
)
def test_bad_walks_are_refused(gan_bundle, kw, match) -> None:
    with Sampler.open(gan_bundle.path) as s, pytest.raises(BadInputError, match=match):
        s.walk(**kw)


def test_an_absurd_batch_is_refused_before_allocating(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s, pytest.raises(BadInputError, match="GiB") as e:
        s.sample(10**9)
    assert "chunks" in str(e.value)


def test_a_denormal_temperature_is_refused_and_a_tiny_one_is_greedy(ar_bundle) -> None:
    with TextGenerator.open(ar_bundle.path) as tg:
        with pytest.raises(BadInputError, match="greedy"):
            tg.start("ab", temperature=5e-324)
        tiny = "".join(tg.generate("ab", max_new_tokens=12, temperature=1e-6))
        assert tiny == "".join(tg.generate("ab", max_new_tokens=12, temperature=0))

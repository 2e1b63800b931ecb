"""A Sampler or TextGenerator shared by threads, closed, or fed many batch sizes."""

import importlib.util
import threading

import numpy as np
import pytest

from genedge.errors import BadInputError
from genedge.runtime import Sampler, TextGenerator
from genedge.runtime.ort_backend import MAX_BUFFER_SETS

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs torch for bundles"
)


def test_threads_sharing_a_sampler_get_their_own_images(cgan_bundle) -> None:
    """Without out= the result is a copy of the backend's buffer, taken under the backend's lock."""
    with Sampler.open(cgan_bundle.path, threads=1) as s:
        want = {seed: s.sample(4, seed=seed) for seed in range(8)}
        wrong: list[int] = []

        def work(offset: int) -> None:
            for i in range(60):
                seed = (i + offset) % 8
                if not np.array_equal(s.sample(4, seed=seed), want[seed]):
                    wrong.append(seed)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert wrong == []


def test_a_closed_sampler_refuses_clearly(gan_bundle, vae_bundle) -> None:
    s = Sampler.open(gan_bundle.path)
    s.close()
    s.close()  # twice is fine
    for call in (
        lambda: s.sample(2),
        lambda: s.sample_latents(np.zeros((1, s.latent_dim), np.float32)),
        lambda: list(s.stream(fps=30, seconds=0.1)),
    ):
        with pytest.raises(BadInputError, match="closed"):
            call()
    v = Sampler.open(vae_bundle.path)
    v.close()
    with pytest.raises(BadInputError, match="closed"):
        v.encode(np.zeros((1, *v.image_shape), np.uint8))  # does not quietly reopen the encoder


def test_a_closed_text_generator_refuses_clearly(ar_bundle) -> None:
    tg = TextGenerator.open(ar_bundle.path)
    g = tg.start("ab", max_new_tokens=5)
    tg.close()
    with pytest.raises(BadInputError, match="closed"):
        g.step()


def test_many_batch_sizes_do_not_grow_memory_without_bound(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        for n in range(1, 3 * MAX_BUFFER_SETS):
            assert s.sample(n).shape[0] == n
        assert len(s.backend._buffers) <= MAX_BUFFER_SETS

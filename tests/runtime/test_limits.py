"""Limits on what one runtime request may ask for, refused before any work starts."""

from __future__ import annotations

import time

import pytest

from genedge.errors import BadInputError
from genedge.limits import (
    MAX_NEW_TOKENS,
    MAX_PROMPT_CHARS,
    check_threads,
    max_threads,
)
from genedge.runtime.select import backend_options


@pytest.mark.parametrize("threads", [10**6, max_threads() + 1, 0, -1, 1.5, True, "4"])
def test_thread_counts_past_the_cpus_or_not_positive_are_refused(threads):
    with pytest.raises(BadInputError) as info:
        backend_options(threads=threads)
    assert info.value.exit_code == 2
    if isinstance(threads, int) and threads > 1 and threads is not True:
        assert str(max_threads()) in info.value.message and "per CPU" in info.value.message


def test_thread_counts_up_to_the_cap_are_accepted():
    assert backend_options(threads=max_threads()).threads == max_threads()
    assert check_threads("--threads", None) is None


def test_sampler_open_refuses_a_million_threads_quickly(gan_bundle):
    from genedge.runtime import Sampler

    t0 = time.perf_counter()
    with pytest.raises(BadInputError, match="per CPU"):
        Sampler.open(gan_bundle.path, backend="ort-cpu", threads=10**6)
    assert time.perf_counter() - t0 < 10


def test_text_generator_refuses_a_million_threads(ar_bundle):
    from genedge.runtime import TextGenerator

    with pytest.raises(BadInputError, match="per CPU"):
        TextGenerator.open(ar_bundle.path, backend="ort-cpu", threads=10**6)
    with pytest.raises(BadInputError, match="per CPU"):
        TextGenerator.open(ar_bundle.path, backend="ort-cpu", inter_op_threads=10**6)


def test_a_two_million_character_prompt_is_refused_before_any_step(ar_bundle):
    from genedge.runtime import TextGenerator

    with TextGenerator.open(ar_bundle.path, backend="ort-cpu") as tg:
        t0 = time.perf_counter()
        with pytest.raises(BadInputError, match=f"{MAX_PROMPT_CHARS:,}"):
            tg.generate("a" * 2_000_000, max_new_tokens=1)
        assert time.perf_counter() - t0 < 1.0
        with pytest.raises(BadInputError, match="limit"):
            tg.generate("a", max_new_tokens=MAX_NEW_TOKENS + 1)
        text = "".join(tg.generate("a" * MAX_PROMPT_CHARS, max_new_tokens=2, seed=0))
        assert len(text) == 2


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--prompt", "a" * 2_000_000], "prompt"),
        (["--max-new-tokens", str(10**12)], "limit"),
        (["--threads", str(10**6)], "per CPU"),
    ],
)
def test_the_generate_command_refuses_with_one_line(ar_bundle, capsys, extra, match):
    from genedge.cli import main

    code = main(["generate", str(ar_bundle.path), "--backend", "ort-cpu", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert match in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert len(err) < 2000


def test_a_stream_ring_past_the_memory_limit_is_refused(gan_bundle):
    from genedge.runtime import Sampler

    with (
        Sampler.open(gan_bundle.path, backend="ort-cpu") as s,
        pytest.raises(BadInputError, match="GiB"),
    ):
        s.stream(fps=10, seconds=1, batch=10**6, ring=10**3)


def test_bench_options_bound_threads_batches_and_tokens(tmp_path):
    from genedge.bench.options import BenchOptions, validate_options

    for field, value in (
        ("threads", 10**6),
        ("batches", (1, 10**9)),
        ("max_new_tokens", 10**9),
        ("max_new_tokens", 0),
    ):
        with pytest.raises(BadInputError):
            validate_options(BenchOptions(bundle=tmp_path, **{field: value}))


def test_thread_counts_are_checked_before_the_bundle_is_read(tmp_path):
    from genedge.runtime import Sampler, TextGenerator

    for cls in (Sampler, TextGenerator):
        with pytest.raises(BadInputError, match="per CPU"):
            cls.open(tmp_path / "no-such-bundle", threads=10**6)

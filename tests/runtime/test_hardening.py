"""What a careless or adversarial client does: threads, closed objects, odd arguments, damaged bundles.

Each test is one finding of an independent review of the runtime, kept so it stays fixed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from genedge.errors import BadInputError, CorruptArtifactError, IntegrityError
from genedge.runtime import Sampler, TextGenerator
from genedge.runtime.ort_backend import MAX_BUFFER_SETS

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs torch for bundles"
)


def _edit_manifest(bundle: Path, edit) -> None:
    path = bundle / "manifest.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


# ---------------------------------------------------------------- threads and lifetime


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


# ---------------------------------------------------------------- arguments


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


# ---------------------------------------------------------------- streams


@pytest.mark.parametrize(
    "kw",
    [
        {"fps": float("inf")},
        {"fps": float("nan")},
        {"seconds": float("inf")},
        {"batch": 1.5},
        {"ring": "3"},
        {"period_s": float("inf")},
        {"period_s": -1},
        {"period_s": "abc"},
        {"late_tolerance_s": -1},
        {"spin_s": float("nan")},
        {"fps": 1e300, "seconds": 1e300},
    ],
)
def test_non_finite_or_mistyped_stream_arguments(gan_bundle, kw) -> None:
    with Sampler.open(gan_bundle.path) as s, pytest.raises(BadInputError, match="stream"):
        s.stream(**{"fps": 30, **kw})


def test_achieved_fps_counts_intervals_not_frames(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        stream = s.stream(fps=30, seconds=1.0, late="block")
        n = sum(1 for _ in stream)
    assert n == 30 and 29.0 < stream.stats.fps < 30.6, stream.stats  # 30 frames over 29 intervals


def test_a_very_slow_stream_starts_promptly(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        t = time.perf_counter()
        frames = list(s.stream(fps=1e-7, seconds=1.0))
    assert len(frames) == 1 and time.perf_counter() - t < 5  # not a period (115 days) later


def test_a_stream_is_iterated_once_and_keeps_its_stats(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        stream = s.stream(fps=60, seconds=0.2)
        first = sum(1 for _ in stream)
        stats = stream.stats.to_dict()
        assert first >= 1 and sum(1 for _ in stream) == 0
        assert (
            stream.stats.frames == stats["frames"]
            and stream.stats.elapsed_s == stats["elapsed_s"] > 0
        )


def test_drop_policy_keeps_delivering_when_inference_is_slower_than_a_frame(gan_bundle) -> None:
    """25 ms frames at 100 fps: the worker aims at the slot it can make, so ~40 frames/s arrive on time
    (aiming at the slot due *now* made every frame late, and drop delivered almost none)."""
    with Sampler.open(gan_bundle.path) as s:
        run = s.backend._run

        def slow_run(feed, out):
            time.sleep(0.025)
            return run(feed, out)

        s.backend._run = slow_run
        stream = s.stream(fps=100, seconds=1.5, late="drop")
        frames = list(stream)
        st = stream.stats
    assert len(frames) >= 25, st  # ~60 possible; before the fix: about 7
    assert st.late_delivered <= 3, st
    assert st.frames + st.dropped >= 140, st  # every slot is accounted for


# ---------------------------------------------------------------- damaged bundles


def _second_graph(bundle: Path) -> None:
    """Give the bundle a second ONNX artifact (an fp16-labelled copy) that auto would not pick on CPU."""
    shutil.copy(bundle / "model.onnx", bundle / "model.fp16.onnx")

    def add(raw: dict) -> None:
        rec = dict(next(a for a in raw["artifacts"] if a["file"] == "model.onnx"))
        rec.update(file="model.fp16.onnx", precision="fp16")
        raw["artifacts"].append(rec)

    _edit_manifest(bundle, add)


def test_a_tampered_graph_is_refused_even_when_another_would_run(gan_bundle, bundle_copy) -> None:
    b = bundle_copy(gan_bundle)
    _second_graph(b)
    with Sampler.open(b, precision="fp32") as s:  # intact: opens
        assert s.info.file == "model.onnx"
    data = bytearray((b / "model.fp16.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "model.fp16.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.fp16.onnx") as e:
        Sampler.open(b, precision="fp32")
    assert e.value.exit_code == 4


def test_the_manifest_file_itself_is_accepted_as_the_bundle(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path / "manifest.json") as s, Sampler.open(gan_bundle.path) as t:
        assert np.array_equal(s.sample(2), t.sample(2))


def test_a_manifest_that_contradicts_its_graph_is_corrupt(cgan_bundle, bundle_copy) -> None:
    b = bundle_copy(cgan_bundle)
    _edit_manifest(b, lambda raw: raw["model"].__setitem__("num_classes", 0))
    with pytest.raises(CorruptArtifactError, match="label") as e:
        Sampler.open(b)
    assert e.value.exit_code == 2


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda g: g["inputs"][0].__setitem__("name", "latent"), "inputs"),
        (lambda g: g["outputs"][0].__setitem__("shape", ["B", 99, 99, 3]), "'image' is uint8"),
        (lambda g: g["inputs"][0].__setitem__("dtype", "float16"), "'z' is float16"),
    ],
)
def test_an_io_spec_that_contradicts_the_graph_is_corrupt(
    cgan_bundle, bundle_copy, edit, match
) -> None:
    """C/C++ hosts size their buffers from the manifest's I/O spec: it must describe the graph."""
    b = bundle_copy(cgan_bundle)
    _edit_manifest(b, lambda raw: edit(raw["graphs"]["generator"]))
    with pytest.raises(CorruptArtifactError, match=match) as e:
        Sampler.open(b)
    assert e.value.exit_code == 2 and "re-export" in str(e.value)


def test_tensorrt_never_swaps_the_precision_asked_for(monkeypatch, gan_bundle) -> None:
    """Only an fp16 engine: asking for int8 names what exists instead of running the fp16 one."""
    from genedge.manifest import Artifact, read_manifest
    from genedge.runtime import select, trt_backend
    from genedge.runtime.select import BackendOptions

    env = trt_backend.TrtEnvironment("10.3.0", "8.7", "Orin")
    monkeypatch.setattr(trt_backend, "probe_environment", lambda device=0: env)
    m = read_manifest(gan_bundle.path)
    eng = Artifact(
        file="model.fp16.sm87.trt10.3.engine",
        graph="generator",
        format="engine",
        sha256=hashlib.sha256(b"").hexdigest(),
        size=0,
        precision="fp16",
        verification={"verdict": "pass"},
        engine={"tensorrt_version": "10.3.0", "compute_capability": "8.7", "device_name": "Orin"},
    )
    m = type(m)(**{**m.__dict__, "artifacts": (*m.artifacts, eng)})
    with pytest.raises(BadInputError, match=r"no int8 TensorRT engine.*model\.fp16\.sm87"):
        select._engine_for(m, "generator", "int8", BackendOptions())
    assert select._engine_for(m, "generator", "fp16", BackendOptions())[0].file == eng.file


# ---------------------------------------------------------------- CLI


def test_cli_bad_seed_and_out_folder_are_one_line_exit_2(gan_bundle, tmp_path, capsys) -> None:
    from genedge.cli import main

    assert (
        main(
            [
                "sample",
                str(gan_bundle.path),
                "-n",
                "2",
                "--seed",
                "-1",
                "--out",
                str(tmp_path / "a.png"),
            ]
        )
        == 2
    )
    assert main(["sample", str(gan_bundle.path), "-n", "2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "seed -1" in err and "is a folder" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_window_without_a_display_is_exit_3(gan_bundle, monkeypatch, capsys) -> None:
    pytest.importorskip("cv2")
    from genedge.cli import main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["live", str(gan_bundle.path), "--seconds", "0.2", "--window"]) == 3
    assert "--video" in capsys.readouterr().err

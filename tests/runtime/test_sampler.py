"""Sampler on ORT CPU with tiny exported bundles: determinism, out=, bad input, exit codes."""

from __future__ import annotations

import importlib.util
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from genedge.cli import main
from genedge.errors import BadInputError, IncompatibleEnvironmentError, IntegrityError
from genedge.runtime import Sampler
from genedge.runtime.latents import seeded_latents

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs torch for bundles"
)


def read_png(path: Path) -> np.ndarray:
    """Decode the PNGs genedge.imageio writes (8-bit, filter 0)."""
    data, pos, idat, (w, h, c) = path.read_bytes(), 8, b"", (0, 0, 0)
    while pos < len(data):
        (n,), tag = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        if tag == b"IHDR":
            w, h, _, ct = struct.unpack(">IIBB", body[:10])
            c = {0: 1, 2: 3, 6: 4}[ct]
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * c)
    return raw[:, 1:].reshape(h, w, c)


def test_sample_shape_determinism_and_info(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path, backend="ort-cpu") as s:
        a = s.sample(4, seed=3)
        assert a.shape == (4, 16, 16, 1) and a.dtype == np.uint8
        assert np.array_equal(a, s.sample(4, seed=3))
        assert not np.array_equal(a, s.sample(4, seed=4))
        assert np.array_equal(a, s.sample_latents(seeded_latents(4, 16, 3)))
        info = s.info
        assert (info.backend, info.provider, info.precision, info.file) == (
            "ort-cpu",
            "CPUExecutionProvider",
            "fp32",
            "model.onnx",
        )
        assert s.cold_start_s is not None and s.cold_start_s > 0
        with pytest.raises(BadInputError, match="no labels|unconditional"):
            s.sample(2, labels=1)


def test_out_buffer_is_written_in_place(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path, backend="ort-cpu") as s:
        out = np.zeros((3, 16, 16, 1), np.uint8)
        res = s.sample(3, seed=1, out=out)
        assert res is out and np.array_equal(out, s.sample(3, seed=1))
        for bad in (
            np.zeros((2, 16, 16, 1), np.uint8),
            np.zeros((3, 16, 16, 1), np.float32),
            np.zeros((3, 16, 32, 1), np.uint8)[:, :, ::2],
            np.zeros((3, 16, 16, 3), np.uint8),
        ):
            with pytest.raises(BadInputError, match="Output buffer"):
                s.sample(3, out=bad)


@pytest.mark.parametrize(
    "z, match",
    [
        (np.zeros((2, 15), np.float32), "shape"),
        (np.zeros((2, 16), np.float64), "float64"),
        (np.zeros(16, np.float32), "shape"),
        (np.full((2, 16), np.nan, np.float32), "NaN"),
        (np.full((2, 16), np.inf, np.float32), "NaN/Inf"),
    ],
)
def test_bad_latents(gan_bundle, z, match) -> None:
    with (
        Sampler.open(gan_bundle.path, backend="ort-cpu") as s,
        pytest.raises(BadInputError, match=match),
    ):
        s.sample_latents(z)


def test_checks_can_be_switched_off(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path, backend="ort-cpu", check_inputs=False) as s:
        assert s.sample_latents(np.full((1, 16), np.nan, np.float32)).shape == (1, 16, 16, 1)


def test_run_unchecked_skips_only_the_input_checks(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path, backend="ort-cpu") as s:
        b, z = s.backend, np.full((1, 16), np.nan, np.float32)
        with pytest.raises(BadInputError, match="NaN"):
            b.run({"z": z})
        image = b.run_unchecked({"z": z})[b.outputs[0].name]
        assert image.shape == (1, 16, 16, 1)
        ok = np.zeros((2, 16), np.float32)
        fast = b.run_unchecked({"z": ok})["image"].copy()  # the backend reuses its buffers
        np.testing.assert_array_equal(fast, b.run({"z": ok})["image"])


def test_conditional_says_whether_the_graph_takes_labels(gan_bundle, cgan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as plain, Sampler.open(cgan_bundle.path) as cond:
        assert plain.conditional is False and cond.conditional is True


def test_labels_on_a_conditional_bundle(cgan_bundle) -> None:
    with Sampler.open(cgan_bundle.path) as s:
        assert s.num_classes == 10
        a = s.sample(10, seed=0)
        b = s.sample(10, seed=0, labels=np.arange(10))
        assert np.array_equal(a, b)
        assert not np.array_equal(s.sample(10, seed=0, labels=3), a)
        for bad in (10, -1, [0] * 9):
            with pytest.raises(BadInputError, match="labels|classes"):
                s.sample(10, labels=bad)
        with pytest.raises(BadInputError, match="expected \\[0, 9\\]"):
            s.backend.run({"z": np.zeros((1, 16), np.float32), "label": np.array([12])})
        assert s.walk([0, 1], 3, labels=2).shape == (4, 16, 16, 1)


def test_float_output_bundle_gives_uint8(float_gan_bundle, gan_bundle) -> None:
    with Sampler.open(float_gan_bundle.path) as f, Sampler.open(gan_bundle.path) as u:
        a, b = f.sample(4, seed=0), u.sample(4, seed=0)
        assert a.dtype == np.uint8 and a.shape == b.shape
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # same weights, rounding only


def test_vae_encode_decode(vae_bundle) -> None:
    with Sampler.open(vae_bundle.path) as s:
        x = s.sample(3, seed=0)
        mu, logvar = s.encode(x)
        assert mu.shape == logvar.shape == (3, 8) and mu.dtype == np.float32
        assert s.reconstruct(x).shape == x.shape
        assert np.array_equal(s.decode(mu), s.reconstruct(x))
        walk = s.interpolate(x[0], x[1], steps=5)
        assert walk.shape == (5, 16, 16, 1)
        assert np.array_equal(walk[0], s.decode(mu[:1])[0])
        with pytest.raises(BadInputError, match="uint8"):
            s.encode(x.astype(np.float32))


def test_walk_shapes(gan_bundle) -> None:
    with Sampler.open(gan_bundle.path) as s:
        assert s.walk([0, 1, 2], 4, kind="slerp").shape == (9, 16, 16, 1)
        assert s.walk([0, 1], 6, kind="circle").shape == (6, 16, 16, 1)


def test_unknown_backend_and_precision(gan_bundle) -> None:
    with pytest.raises(BadInputError, match="Unknown backend"):
        Sampler.open(gan_bundle.path, backend="cuda")
    with pytest.raises(BadInputError, match="no int8"):
        Sampler.open(gan_bundle.path, backend="ort-cpu", precision="int8")


def test_named_backend_unavailable_is_exit_3(gan_bundle, tmp_path, capsys) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has ORT CUDA")
    with pytest.raises(IncompatibleEnvironmentError, match="CUDAExecutionProvider"):
        Sampler.open(gan_bundle.path, backend="ort-cuda")
    for backend in ("ort-cuda", "ort-trt", "tensorrt"):
        rc = main(
            [
                "sample",
                str(gan_bundle.path),
                "-n",
                "1",
                "--backend",
                backend,
                "--out",
                str(tmp_path / "x.png"),
            ]
        )
        assert rc == 3, backend
    assert "Traceback" not in capsys.readouterr().err


def test_hash_tampered_bundle_is_exit_4(gan_bundle, bundle_copy, tmp_path) -> None:
    path = bundle_copy(gan_bundle)
    model = path / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-10] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="fails its hash"):
        Sampler.open(path)
    assert main(["sample", str(path), "-n", "1", "--out", str(tmp_path / "x.png")]) == 4


def test_unknown_schema_version_is_exit_4(gan_bundle, bundle_copy, tmp_path) -> None:
    path = bundle_copy(gan_bundle)
    m = json.loads((path / "manifest.json").read_text())
    m["schema_version"] = 99
    (path / "manifest.json").write_text(json.dumps(m))
    assert main(["sample", str(path), "-n", "1", "--out", str(tmp_path / "x.png")]) == 4


def test_engine_for_another_gpu_is_refused_before_loading(
    gan_bundle, bundle_copy, tmp_path
) -> None:
    """An engine record for another GPU: the pure check names both and the rebuild command."""
    from genedge.manifest import EngineRecord
    from genedge.runtime.trt_backend import TrtEnvironment, check_engine_record

    rec = EngineRecord(tensorrt_version="10.3.0", compute_capability="8.9", device_name="L4")
    with pytest.raises(IncompatibleEnvironmentError, match="8.9.*8.0|rebuild") as e:
        check_engine_record(
            rec,
            TrtEnvironment("10.3.0", "8.0", "A100"),
            file="model.fp16.sm89.trt10.3.engine",
            bundle=gan_bundle.path,
        )
    assert e.value.exit_code == 3


def test_sample_cli_matches_torch_reference(gan_bundle, tmp_path) -> None:
    """`genedge sample` (ORT CPU fp32) == the torch generator on the same seeds, within 1 level."""
    import torch

    from genedge.imageio import make_grid
    from genedge.train.checkpoint import load_checkpoint

    out = tmp_path / "grid.png"
    assert (
        main(
            [
                "sample",
                str(gan_bundle.path),
                "-n",
                "9",
                "--seed",
                "5",
                "--backend",
                "ort-cpu",
                "--precision",
                "fp32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    G, cfg = load_checkpoint(gan_bundle.checkpoint)
    with torch.no_grad():
        x = G(
            torch.from_numpy(seeded_latents(9, cfg.latent_dim, 5)), None
        )  # (9, C, H, W) in [-1, 1]
    ref = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    got = read_png(out)
    want = make_grid(ref, scale=4)
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert np.mean(got != want) < 0.01


def test_sample_cli_writes_png(cgan_bundle, tmp_path, capsys) -> None:
    out = tmp_path / "grid.png"
    assert (
        main(["sample", str(cgan_bundle.path), "-n", "4", "--label", "3", "--out", str(out)]) == 0
    )
    assert read_png(out).shape[2] == 1
    assert "cold start" in capsys.readouterr().err
    assert (
        main(["sample", str(cgan_bundle.path), "-n", "4", "--label", "11", "--out", str(out)]) == 2
    )

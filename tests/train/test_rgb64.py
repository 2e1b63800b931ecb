"""64x64 RGB: model shapes, channel widths scaled with the size, export + runtime, training.

The image folder is generated here (coloured shapes on colour gradients, written as PNG
with OpenCV), so no test needs the internet.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from genedge.train.gan import Discriminator, GanConfig, Generator
from genedge.train.vae import VAE, VaeConfig


def make_shapes_folder(folder: Path, n: int, size: int = 64, seed: int = 0) -> Path:
    """``n`` RGB PNGs: a vertical gradient between two colours plus one or two filled shapes."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]  # (H, 1, 1)
    for i in range(n):
        c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
        img = np.ascontiguousarray(
            np.broadcast_to(c0 * (1 - t) + c1 * t, (size, size, 3)).astype(np.uint8)
        )  # (H, W, 3)
        for _ in range(int(rng.integers(1, 3))):
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            cx, cy = (int(v) for v in rng.integers(size // 6, size - size // 6, 2))
            r = int(rng.integers(size // 10, size // 4))
            if rng.random() < 0.5:
                cv2.circle(img, (cx, cy), r, colour, -1, lineType=cv2.LINE_AA)
            else:
                cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
        assert cv2.imwrite(str(folder / f"{i:04d}.png"), img)
    return folder


def _conv_widths(module: nn.Module) -> list[int]:
    return [m.out_channels for m in module.modules() if isinstance(m, nn.Conv2d)]


def _trained_bn(G: Generator) -> Generator:
    """Non-trivial BatchNorm statistics and affine parameters, as training leaves them."""
    G.train()
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
        G(torch.randn(16, G.cfg.latent_dim))
    return G.eval()


def test_64x64_rgb_models_have_the_right_shapes():
    torch.manual_seed(0)
    cfg = GanConfig.sized(64, channels=3, latent_dim=32, num_classes=5)
    G, D = Generator(cfg).eval(), Discriminator(cfg)
    z, y = torch.randn(2, 32), torch.tensor([0, 4])
    with torch.no_grad():
        x = G(z, y)
        realness, logits = D(x, y)
    assert x.shape == (2, 3, 64, 64) and x.abs().max() <= 1.0
    assert realness.shape == (2,) and logits.shape == (2, 5)
    vae = VAE(VaeConfig(image_size=64, channels=3)).eval()
    with torch.no_grad():
        x_hat, mu, logvar = vae.reconstruct(x, sample=False)
        assert vae(torch.randn(2, 16)).shape == (2, 3, 64, 64)
    assert x_hat.shape == (2, 3, 64, 64) and mu.shape == logvar.shape == (2, 16)


def test_widths_scale_from_32_to_64():
    """One more up-block: the base width doubles, the full-resolution width stays 16."""
    g32, g64 = (Generator(GanConfig.sized(s, channels=3)) for s in (32, 64))
    assert (g32.cfg.g_width, g64.cfg.g_width) == (128, 256)
    assert [u.conv.out_channels for u in g32.ups] == [64, 32, 16]
    assert [u.conv.out_channels for u in g64.ups] == [128, 64, 32, 16]

    def block_macs(G: Generator) -> list[int]:
        size, macs = G.cfg.base_size, []
        for up in G.ups:
            size *= 2
            macs.append(size * size * up.conv.in_channels * up.conv.out_channels * 9)
        return macs

    # every block of a generator costs the same; a block's cost follows the pixel count
    assert len(set(block_macs(g64))) == len(set(block_macs(g32))) == 1
    assert block_macs(g64)[0] == 4 * block_macs(g32)[0]
    assert GanConfig.sized(16).g_width == 128  # the bundled digits' size keeps its model
    d32, d64 = (Discriminator(GanConfig.sized(s, channels=3)) for s in (32, 64))
    assert _conv_widths(d32.blocks) == [32, 64, 128]
    assert _conv_widths(d64.blocks) == [32, 64, 128, 256]
    v32, v64 = (VAE(VaeConfig(image_size=s, channels=3)) for s in (32, 64))
    assert _conv_widths(v32.encoder.convs) == [32, 64, 128]
    assert _conv_widths(v64.encoder.convs) == [32, 64, 128, 256]
    assert _conv_widths(v32.decoder.ups) == [64, 32, 16]
    assert _conv_widths(v64.decoder.ups) == [128, 64, 32, 16]


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_64x64_rgb_bundle_samples_through_the_runtime(kind, tmp_path):
    """Export (sub-pixel rewrite of the upsampling), then the runtime's images equal torch's."""
    onnx = pytest.importorskip("onnx")
    from genedge.export.bundle import export_bundle
    from genedge.export.options import ExportOptions
    from genedge.export.routes.wrappers import to_image_output
    from genedge.latents import seeded_latents
    from genedge.runtime import Sampler
    from genedge.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    if kind == "gan":
        cfg = GanConfig.sized(64, channels=3, latent_dim=32)
        model = _trained_bn(Generator(cfg))
    else:
        cfg = VaeConfig(image_size=64, channels=3, latent_dim=8, width=16)
        model = VAE(cfg).eval()
    ckpt = save_checkpoint(tmp_path / "g.safetensors", model, cfg, kind=kind)
    export_bundle(ExportOptions(source=ckpt, out=tmp_path / "b", precisions=("fp32",)))
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert (manifest["model"]["image_size"], manifest["model"]["channels"]) == (64, 3)
    ops = {n.op_type for n in onnx.load(tmp_path / "b" / "model.onnx").graph.node}
    assert "Resize" not in ops and "DepthToSpace" in ops  # the sub-pixel form of resize-conv
    with Sampler.open(tmp_path / "b", backend="ort-cpu") as s:
        got = s.sample(4, seed=5)  # (4, 64, 64, 3) uint8
    z = torch.from_numpy(seeded_latents(4, cfg.latent_dim, seed=5))
    with torch.no_grad():
        want = to_image_output(model(z), "uint8").numpy()
    assert got.shape == want.shape == (4, 64, 64, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert got.std() > 1.0  # not a constant image


def test_vae_decoder_subpixel_form_equals_resize_conv():
    from genedge.export.rewrites.subpixel import subpixel_vae

    torch.manual_seed(0)
    vae = VAE(VaeConfig(image_size=64, channels=3, num_classes=3)).eval()
    sub = subpixel_vae(vae)
    z, y = torch.randn(4, 16), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        ref, out = vae(z, y), sub(z, y)
    assert out.shape == ref.shape == (4, 3, 64, 64)
    assert (ref - out).abs().max().item() < 1e-5
    assert not any(isinstance(m, nn.Upsample) for m in sub.modules())
    assert any(isinstance(m, nn.Upsample) for m in vae.modules())  # the original is untouched


def test_shapes_folder_loads_as_64x64_rgb(tmp_path):
    from genedge.train.data import load_image_data

    data = load_image_data(str(make_shapes_folder(tmp_path / "img", 8)), image_size=64)
    assert data.images.shape == (8, 3, 64, 64)
    assert data.images.min() >= -1.0 and data.images.max() <= 1.0
    assert data.images.std(axis=(0, 2, 3)).min() > 0.1  # colour, structure: not flat


@pytest.mark.slow
@pytest.mark.timeout(2400)  # about 3 minutes on two idle cores; a loaded machine is far slower
def test_gan_learns_64x64_rgb_in_minutes(tmp_path):
    """A short 64x64 RGB GAN run: samples much closer to the data than an untrained generator."""
    from genedge.train import load_checkpoint
    from genedge.train.data import load_image_data
    from genedge.train.eval import evaluate_generator
    from genedge.train.options import TrainOptions
    from genedge.train.trainer import train_run

    folder = make_shapes_folder(tmp_path / "shapes", 512)
    opts = TrainOptions(
        kind="gan",
        data=str(folder),
        out=tmp_path / "run",
        image_size=64,
        steps=80,
        batch_size=16,
        sample_every=40,
        eval_every=80,
        eval_samples=256,
        progress=False,
        seed=0,
    )
    ckpt = train_run(opts)
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    trained = [r for r in rows if r["phase"] == "eval"][-1]["frechet_distance"]
    assert (tmp_path / "run" / "samples.png").is_file() and (
        tmp_path / "run" / "curves.png"
    ).is_file()
    G, cfg = load_checkpoint(ckpt)
    assert (cfg.image_size, cfg.channels, cfg.g_width) == (64, 3, 256)
    torch.manual_seed(0)
    fresh = Generator(cfg).eval()
    data = load_image_data(str(folder), image_size=64)
    untrained = evaluate_generator(fresh, cfg, data, n=256, seed=1234)["frechet_distance"]
    assert trained < 0.3 * untrained, (trained, untrained)

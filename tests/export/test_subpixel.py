import numpy as np
import pytest
import torch

from genedge.export.rewrites.subpixel import SubpixelUp, subpixel_gan_generator
from genedge.train.gan import GanConfig, Generator


def _trained_bn(G: Generator, cfg: GanConfig) -> Generator:
    """Give BatchNorm non-trivial running stats and affine parameters, as training would."""
    G.train()
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
        for _ in range(3):
            G(
                torch.randn(32, cfg.latent_dim),
                torch.randint(0, max(cfg.num_classes, 1), (32,)) if cfg.num_classes else None,
            )
    return G.eval()


@pytest.mark.parametrize("image_size,num_classes", [(16, 10), (32, 0)])
def test_subpixel_generator_equals_resize_conv(image_size, num_classes):
    torch.manual_seed(0)
    cfg = GanConfig(num_classes=num_classes, image_size=image_size, g_width=32)
    G = _trained_bn(Generator(cfg), cfg)
    S = subpixel_gan_generator(G)
    z = torch.randn(8, cfg.latent_dim)
    y = torch.arange(8) % num_classes if num_classes else None
    with torch.no_grad():
        ref, out = G(z, y), S(z, y)
    assert out.shape == ref.shape
    assert (ref - out).abs().max().item() < 1e-5
    assert not any(isinstance(m, torch.nn.Upsample) for m in S.modules())


def test_subpixel_block_matches_on_borders():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 4, 6)
    ref = torch.relu(conv(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")))
    out = SubpixelUp(conv, None)(x)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), atol=1e-5)


def test_subpixel_refuses_other_convs():
    with pytest.raises(ValueError, match="3x3"):
        SubpixelUp(torch.nn.Conv2d(3, 5, 5, padding=2), None)


def test_exported_gan_graph_has_no_resize(tmp_path):
    onnx = pytest.importorskip("onnx")
    from genedge.export.routes.onnx_export import onnx_from_checkpoint
    from genedge.train import save_checkpoint

    cfg = GanConfig(num_classes=10, g_width=32)
    ck = save_checkpoint(tmp_path / "g.safetensors", Generator(cfg), cfg, kind="gan")
    path = onnx_from_checkpoint(ck, tmp_path)["generator"]
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Resize" not in ops and "DepthToSpace" in ops

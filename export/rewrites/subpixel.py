"""Export-time rewrite: nearest x2 upsample + 3x3 conv == 3x3 conv with 4x channels + DepthToSpace.

Training keeps resize-convolution (no checkerboard artefacts). For deployment the same
function is computed without any Resize: every high-resolution pixel (2i+a, 2j+b) of
``conv3x3(upsample2x(x))`` reads low-resolution neighbours ``x[i+r, j+s]`` with r, s in
{-1, 0, 1}, so its weights can be summed into a low-resolution 3x3 kernel per phase (a, b).
The four phases become 4x output channels, interleaved back by ``pixel_shuffle``
(ONNX DepthToSpace, mode CRD). Same multiply-adds, no Resize node: on ONNX Runtime CPU the
int8 graph then runs QLinearConv back to back (Resize has no fast int8 kernel and was a
fifth of the int8 run time), and TensorRT sees plain convolutions.
Exact up to float re-association (see tests/export/test_subpixel.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# For output phase a (row parity), which of the original kernel rows dy fall on low-res offset r.
# Derived from r = floor((a + dy - 1) / 2): a=0: dy0 -> -1, dy1/dy2 -> 0; a=1: dy0/dy1 -> 0, dy2 -> +1.
_PHASE_TAPS = {0: {-1: (0,), 0: (1, 2), 1: ()}, 1: {-1: (), 0: (0, 1), 1: (2,)}}


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm folded into the conv: returns weight (O, I, 3, 3) and bias (O,)."""
    w = conv.weight.detach()
    b = conv.bias.detach() if conv.bias is not None else torch.zeros(w.shape[0])
    if bn is None:
        return w, b
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)  # (O,)
    return w * scale[:, None, None, None], (b - bn.running_mean) * scale + bn.bias.detach()


def subpixel_weights(w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(O, I, 3, 3) resize-conv weights -> (4O, I, 3, 3) low-res weights, channel o*4 + a*2 + b."""
    c_out, c_in = w.shape[:2]
    out = torch.zeros(c_out, 2, 2, c_in, 3, 3, dtype=w.dtype)  # (O, a, b, I, 3, 3)
    for a in (0, 1):  # row phase
        for p in (0, 1):  # column phase
            for r, dys in _PHASE_TAPS[a].items():
                for s, dxs in _PHASE_TAPS[p].items():
                    for dy in dys:
                        for dx in dxs:
                            out[:, a, p, :, r + 1, s + 1] += w[:, :, dy, dx]
    return out.reshape(4 * c_out, c_in, 3, 3), b.repeat_interleave(4)  # (4O, I, 3, 3), (4O,)


class SubpixelUp(nn.Module):
    """``act(bn(conv3x3(upsample2x(x))))`` as ``pixel_shuffle(act(conv3x3'(x)), 2)``."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, act: str = "relu") -> None:
        super().__init__()
        if (
            conv.kernel_size != (3, 3)
            or conv.padding != (1, 1)
            or conv.stride != (1, 1)
            or conv.groups != 1
        ):
            raise ValueError(
                "SubpixelUp folds only 3x3, stride 1, padding 1, ungrouped convolutions"
            )
        w, b = subpixel_weights(*fold_bn(conv, bn))
        self.conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(w)
            self.conv.bias.copy_(b)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)  # (B, 4*O, H, W)
        h = F.relu(h) if self.act == "relu" else F.leaky_relu(h, 0.2)
        return F.pixel_shuffle(h, 2)  # (B, O, 2H, 2W)


def subpixel_gan_generator(G: nn.Module) -> nn.Module:
    """A copy of a ``genedge.train.gan.Generator`` whose up-blocks run as sub-pixel convs."""
    import copy

    G = copy.deepcopy(G).eval()
    G.ups = nn.ModuleList(SubpixelUp(up.conv, up.bn) for up in G.ups)
    return G


def subpixel_vae(vae: nn.Module) -> nn.Module:
    """A copy of a ``genedge.train.vae.VAE`` whose decoder upsamples as sub-pixel convs.

    The decoder's ``ups`` is ``[Upsample(x2, nearest), Conv3x3, LeakyReLU(0.2)] * n``; each
    triple becomes one ``SubpixelUp`` (LeakyReLU commutes with ``pixel_shuffle``).
    """
    import copy

    vae = copy.deepcopy(vae).eval()
    layers = list(vae.decoder.ups)
    ups, convs, acts = layers[0::3], layers[1::3], layers[2::3]
    if not (
        len(layers) % 3 == 0
        and all(
            isinstance(u, nn.Upsample) and u.mode == "nearest" and u.scale_factor == 2.0
            for u in ups
        )
        and all(isinstance(c, nn.Conv2d) for c in convs)
        and all(isinstance(a, nn.LeakyReLU) and a.negative_slope == 0.2 for a in acts)
    ):
        raise ValueError("subpixel_vae expects [Upsample, Conv2d, LeakyReLU(0.2)] blocks")
    vae.decoder.ups = nn.Sequential(*(SubpixelUp(c, None, act="leaky") for c in convs))
    return vae

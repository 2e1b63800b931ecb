"""One small ``nn.Module`` per exported graph, with its I/O declared beside it (docs/bundle.md).

Each wrapper takes flat named tensors and returns flat named tensors; post-processing
(denormalisation, rounding, clamping, NHWC layout) is inside the graph, written as
arithmetic, so the runtime hands the output straight to the user.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from genedge.export.rewrites.subpixel import subpixel_gan_generator, subpixel_vae
from genedge.export.routes.graph_spec import B, GraphSpec
from genedge.manifest import TensorSpec


def to_image_output(x: torch.Tensor, output_format: str) -> torch.Tensor:
    """float (B, C, H, W) in [-1, 1] -> uint8 (B, H, W, C), or the float tensor unchanged."""
    if output_format == "float":
        return x
    x = ((x + 1.0) * 127.5).round().clamp(0.0, 255.0).to(torch.uint8)
    return x.permute(0, 2, 3, 1)  # (B, H, W, C)


class GraphWrapper(nn.Module):
    """Base of the export wrappers. ``reference()`` is the module parity compares against:
    the wrapper itself, unless the exported graph is a rewrite of the trained model."""

    def reference(self) -> nn.Module:
        return self


class ImageGraph(GraphWrapper):
    """GAN generator / VAE decoder: ``z (B, Z) float32 [, label (B,) int64] -> image``.

    ``deploy`` is an equivalent rewrite of ``generator`` used for the exported graph (the
    sub-pixel form); ``reference()`` keeps the checkpoint's own module so parity
    compares ONNX against the model as trained, not against the rewrite.
    """

    def __init__(
        self,
        generator: nn.Module,
        *,
        conditional: bool,
        output_format: str = "uint8",
        deploy: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.generator = deploy if deploy is not None else generator
        self.trained = generator
        self.conditional = conditional
        self.output_format = output_format

    def reference(self) -> ImageGraph:
        return ImageGraph(
            self.trained, conditional=self.conditional, output_format=self.output_format
        )

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        x = self.generator(z, label if self.conditional else None)  # (B, C, H, W)
        return to_image_output(x, self.output_format)


class EncoderGraph(GraphWrapper):
    """VAE encoder: ``image (B, H, W, C) uint8 -> mu (B, Z), logvar (B, Z)`` float32."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0  # (B, C, H, W) in [-1, 1]
        return self.encoder(x)


class StepGraph(GraphWrapper):
    """AR one step: ``token (B,) int64, h (L, B, Hd) [, c] -> logits (B, V), h_out [, c_out]``."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, token: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.rnn.step(token, *state))


def image_graph_spec(name: str, cfg: Any, output_format: str) -> GraphSpec:
    """Spec of the ``generator``/``decoder`` graph for a GanConfig/VaeConfig."""
    inputs = [TensorSpec("z", "float32", (B, cfg.latent_dim))]
    if cfg.num_classes:
        inputs.append(TensorSpec("label", "int64", (B,)))
    if output_format == "float":
        out = TensorSpec(
            "image", "float32", (B, cfg.channels, cfg.image_size, cfg.image_size), "NCHW"
        )
    else:
        out = TensorSpec(
            "image", "uint8", (B, cfg.image_size, cfg.image_size, cfg.channels), "NHWC"
        )
    return GraphSpec(name, "model", tuple(inputs), (out,))


def encoder_graph_spec(cfg: Any) -> GraphSpec:
    """Spec of the VAE ``encoder`` graph."""
    image = TensorSpec("image", "uint8", (B, cfg.image_size, cfg.image_size, cfg.channels), "NHWC")
    z = cfg.latent_dim
    return GraphSpec(
        "encoder",
        "encoder",
        (image,),
        (TensorSpec("mu", "float32", (B, z)), TensorSpec("logvar", "float32", (B, z))),
    )


def step_graph_spec(cfg: Any) -> GraphSpec:
    """Spec of the AR ``step`` graph (state tensors per ``cfg.state_names``)."""
    state = (cfg.layers, B, cfg.hidden)
    inputs = [TensorSpec("token", "int64", (B,))] + [
        TensorSpec(s, "float32", state) for s in cfg.state_names
    ]
    outputs = [TensorSpec("logits", "float32", (B, cfg.vocab_size))] + [
        TensorSpec(f"{s}_out", "float32", state) for s in cfg.state_names
    ]
    return GraphSpec("step", "model", tuple(inputs), tuple(outputs))


def graphs_for(
    kind: str, model: nn.Module, cfg: Any, output_format: str
) -> list[tuple[GraphSpec, nn.Module]]:
    """Every graph a checkpoint of ``kind`` exports, main graph first, with its wrapper."""
    if kind == "gan":
        spec = image_graph_spec("generator", cfg, output_format)
        graph = ImageGraph(
            model,
            conditional=cfg.num_classes > 0,
            output_format=output_format,
            deploy=subpixel_gan_generator(model),
        )
        return [(spec, graph)]
    if kind == "vae":
        spec = image_graph_spec("decoder", cfg, output_format)

        dec = ImageGraph(
            model,
            conditional=cfg.num_classes > 0,
            output_format=output_format,
            deploy=subpixel_vae(model),
        )
        return [(spec, dec), (encoder_graph_spec(cfg), EncoderGraph(model.encoder))]
    if kind == "ar":
        return [(step_graph_spec(cfg), StepGraph(model))]
    raise ValueError(f"unknown kind {kind!r}")

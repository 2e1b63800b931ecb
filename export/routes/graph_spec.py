"""What an exported graph is, without torch: its name, file stem and declared tensors.

``wrappers.py`` pairs each spec with the ``nn.Module`` that produces the graph; parity, the
gates and the stages read only the spec, so they import this module and not torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genedge.lazy import lazy_import
from genedge.manifest import TensorSpec

torch = lazy_import("torch")

B = "B"  # the symbolic batch dimension, everywhere


@dataclass(frozen=True)
class GraphSpec:
    """A graph of the bundle: manifest name, file stem (``model``/``encoder``), inputs, outputs."""

    name: str
    stem: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """ONNX dynamic axes: every dimension named ``"B"``."""
        return {
            t.name: {i: B for i, d in enumerate(t.shape) if d == B}
            for t in self.inputs + self.outputs
        }


def example_feed(spec: GraphSpec, n: int = 2) -> dict[str, torch.Tensor]:
    """Small example tensors matching ``spec`` (batch ``n``) for tracing."""
    feed: dict[str, torch.Tensor] = {}
    for t in spec.inputs:
        shape = tuple(n if d == B else d for d in t.shape)
        if t.dtype == "float32":
            feed[t.name] = torch.zeros(shape, dtype=torch.float32)
        elif t.dtype == "uint8":
            feed[t.name] = torch.full(shape, 128, dtype=torch.uint8)
        else:
            feed[t.name] = torch.zeros(shape, dtype=torch.int64)
    return feed

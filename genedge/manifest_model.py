"""The model side of a manifest: the ``model`` section and the graphs' declared tensors.

``ModelConfig`` (image kinds, the ``ar`` character model, or a ``TransformerConfig``) and
``GraphIO`` of ``TensorSpec``, parsed from and written back to the JSON of
``manifest.json`` (docs/bundle.md, docs/text.md). stdlib and numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from genedge.record_fields import (
    Check,
    Dim,
    Int,
    Items,
    Text,
    entry,
    extra_of,
    fail,
    no_unknown,
    read_dims,
    read_int,
    read_object,
    read_text,
    record_from,
    record_to_dict,
)

KINDS = ("gan", "vae", "ar")
# the graph each kind's users run: the image graph of gan/vae, the text model's step
MAIN_GRAPH = {"gan": "generator", "vae": "decoder", "ar": "step"}
TRANSFORMER_GRAPH = "decoder"  # the main graph of an ar bundle whose model.arch is transformer
# the decoder's optional int64 (1,) input: the first position whose logits it computes ([0]
# by default: every position; [-1]: the last one), an initializer the graph lists as input
LOGITS_FROM = "logits_from"
TRANSFORMER_FAMILIES = ("llama", "qwen2", "mistral", "gpt2", "module")  # docs/text.md
MAX_CONTEXT = 1 << 20  # positions a transformer bundle may declare; its KV cache is sized by it
DTYPES = ("float32", "float16", "float64", "uint8", "int8", "int32", "int64", "bool")
LAYOUTS = ("NHWC", "NCHW")
OUTPUT_FORMATS = ("uint8", "float")
LATENT_DISTRIBUTIONS = ("normal",)  # the graph's z; a module's own prior is mapped inside it


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, numpy dtype name (``"float32"``, ``"uint8"``,
    ``"int64"``), shape of ints and symbols such as ``"B"``, and the layout of an image.

    ``dtype`` may be given as anything ``numpy.dtype`` takes; it is kept as its name.
    ``np_dtype`` is the same dtype as a ``numpy.dtype``, for the runtime's checks.
    """

    name: str = entry(Text())
    dtype: str = entry(Text(DTYPES))
    shape: tuple[Dim, ...] = entry(Check(read_dims, list))
    layout: str | None = entry(Text(LAYOUTS, optional=True), None, omit="none")
    np_dtype: np.dtype = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        dt = np.dtype(self.dtype)
        object.__setattr__(self, "dtype", dt.name)
        object.__setattr__(self, "shape", tuple(self.shape))
        object.__setattr__(self, "np_dtype", dt)

    def to_dict(self) -> dict[str, Any]:
        return record_to_dict(self)


def tensor_spec_from(d: Any, where: str, name: str) -> TensorSpec:
    return record_from(TensorSpec, d, where, name)


@dataclass(frozen=True)
class GraphIO:
    """A graph's declared inputs and outputs (manifest ``graphs[NAME]``)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }


def graph_io_from(d: Any, where: str, name: str) -> GraphIO:
    d = read_object(where, name, d, optional=False)
    no_unknown(where, name, d, {"inputs", "outputs"})
    sides = {}
    for side in ("inputs", "outputs"):
        items = d.get(side)
        if not isinstance(items, list):
            fail(where, f"{name}.{side}", items, "a list of tensors")
        sides[side] = tuple(
            tensor_spec_from(t, where, f"{name}.{side}[{i}]") for i, t in enumerate(items)
        )
    names = [t.name for t in sides["inputs"] + sides["outputs"]]
    if len(set(names)) != len(names):
        fail(where, f"{name} tensor names", names, "each name once")
    return GraphIO(**sides)


_IMAGE_KEYS = {"latent_dim", "num_classes", "image_size", "height", "width", "channels"}
_IMAGE_KEYS |= {"output_format", "latent"}
_TEXT_KEYS = {"vocab", "vocab_size", "state_names", "state_shape"}


@dataclass(frozen=True)
class ModelConfig:
    """The manifest ``model`` section (docs/bundle.md). Image kinds (``gan``, ``vae``) set
    ``latent_dim`` and the image fields; ``ar`` sets ``vocab`` and the state fields. Keys this
    record does not model (the training config, a user generator's ``output_range``...) stay
    readable in ``extra``."""

    latent_dim: int | None = None
    num_classes: int = 0
    image_size: int | None = None
    height: int | None = None
    width: int | None = None
    channels: int | None = None
    output_format: str = "uint8"
    latent_distribution: str | None = None
    vocab: str | None = None
    state_names: tuple[str, ...] = ()
    state_shape: tuple[Dim, ...] = ()
    transformer: TransformerConfig | None = None  # ar with model.arch "transformer" (docs/text.md)
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def arch(self) -> str | None:
        """``"transformer"`` for a transformer language model, else the section's own ``arch``."""
        return "transformer" if self.transformer is not None else self.extra.get("arch")

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(H, W, C) of the images the graph returns, when the section gives them."""
        h = self.height or self.image_size
        w = self.width or self.image_size
        return None if h is None or w is None or self.channels is None else (h, w, self.channels)

    @property
    def vocab_size(self) -> int:
        if self.transformer is not None:
            return self.transformer.vocab_size
        return len(self.vocab or "")

    def to_dict(self) -> dict[str, Any]:
        """The section as export writes it (an absent ``output_format`` is written as its default)."""
        if self.transformer is not None:
            return {**self.transformer.to_dict(), **self.extra}
        if self.vocab is not None:
            return {
                "vocab": self.vocab,
                **self.extra,
                "vocab_size": self.vocab_size,
                "state_names": list(self.state_names),
                "state_shape": list(self.state_shape),
            }
        d: dict[str, Any] = {"latent_dim": self.latent_dim, "num_classes": self.num_classes}
        if self.latent_dim is None:
            del d["latent_dim"]
        for key in ("image_size", "height", "width", "channels"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        d.update(self.extra, output_format=self.output_format)
        if self.latent_distribution is not None:
            d["latent"] = {"distribution": self.latent_distribution}
        return d


def model_config_from(d: Any, kind: str, where: str) -> ModelConfig:
    d = read_object(where, "model", d, optional=False)
    if kind == "ar" and d.get("arch") == "transformer":
        return ModelConfig(
            transformer=transformer_config_from(d, where), extra=extra_of(d, _TRANSFORMER_KEYS)
        )
    if kind == "ar":
        return _text_config(d, where)
    size = {
        k: read_int(where, f"model.{k}", d.get(k), lo=1, optional=True)
        for k in ("image_size", "height", "width", "channels")
    }
    latent = d.get("latent")
    if latent is not None:
        latent = read_object(where, "model.latent", latent)
        no_unknown(where, "model.latent", latent, {"distribution"})
        latent = read_text(
            where, "model.latent.distribution", latent.get("distribution"), LATENT_DISTRIBUTIONS
        )
    return ModelConfig(
        latent_dim=read_int(where, "model.latent_dim", d.get("latent_dim"), lo=1, optional=True),
        num_classes=read_int(where, "model.num_classes", d.get("num_classes"), optional=True) or 0,
        output_format=read_text(
            where, "model.output_format", d.get("output_format", "uint8"), OUTPUT_FORMATS
        ),
        latent_distribution=latent,
        extra=extra_of(d, _IMAGE_KEYS),
        **size,
    )


def _text_config(d: dict[str, Any], where: str) -> ModelConfig:
    vocab = d.get("vocab")
    if not isinstance(vocab, str) or len(vocab) < 2:
        fail(where, "model.vocab", vocab, "the vocabulary as a string of at least 2 characters")
    size = d.get("vocab_size", len(vocab))
    if size != len(vocab) or type(size) is not int:
        fail(where, "model.vocab_size", size, f"{len(vocab)}, the length of model.vocab")
    names = d.get("state_names", ["h"])
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        fail(where, "model.state_names", names, 'a list of tensor names such as ["h", "c"]')
    shape = d.get("state_shape")
    return ModelConfig(
        vocab=vocab,
        state_names=tuple(names),
        state_shape=() if shape is None else read_dims(where, "model.state_shape", shape),
        extra=extra_of(d, _TEXT_KEYS),
    )


@dataclass(frozen=True)
class TransformerConfig:
    """The ``model`` section of a transformer language model (docs/text.md): the decoder
    graph's sizes, its context, the bundle's tokenizer file and the special token ids."""

    family: str = entry(Text(TRANSFORMER_FAMILIES))
    # a bundle file, listed (and hashed) as an artifact of format "tokenizer"
    tokenizer: str = entry(Text())
    vocab_size: int = entry(Int(1))
    num_layers: int = entry(Int(1))
    num_heads: int = entry(Int(1))
    num_kv_heads: int = entry(Int(1))
    head_dim: int = entry(Int(1))
    hidden_size: int = entry(Int(1))
    max_context: int = entry(Int(2, MAX_CONTEXT))
    bos_token_id: int | None = entry(Int(optional=True), None)
    eos_token_ids: tuple[int, ...] = entry(Items(int, "a list of token ids"), ())

    def check(self, where: str, name: str) -> None:
        """The rules between fields: grouped-query heads, token ids inside the vocabulary."""
        if self.num_heads % self.num_kv_heads:
            fail(where, f"{name}.num_kv_heads", self.num_kv_heads, f"a divisor of {name}.num_heads")
        V = self.vocab_size
        for t in [*self.eos_token_ids, *([] if self.bos_token_id is None else [self.bos_token_id])]:
            if not 0 <= t < V:
                fail(where, f"{name} token id", t, f"an integer in [0, {V}) ({name}.vocab_size)")

    def to_dict(self) -> dict[str, Any]:
        return {"arch": "transformer", **record_to_dict(self)}


_TRANSFORMER_KEYS = {"arch", *TransformerConfig.__dataclass_fields__}


def transformer_config_from(d: dict[str, Any], where: str) -> TransformerConfig:
    """Parse and bound-check a transformer ``model`` section (CorruptArtifactError naming a field)."""
    return record_from(TransformerConfig, d, where, "model", unknown="ignore")

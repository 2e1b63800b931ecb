"""Small files for the hostile-input tests: tiny bundles, hostile strings, walks over JSON.

A uniquely named module (not ``conftest``) so both test files and later cases can import it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# what a file may carry to drive a terminal: CSI colour, BEL, an OSC title, a bidi override,
# a carriage return (rewrites the line), C1 CSI, and markup for rich
HOSTILE = "\x1b[31mred\x07\x1b]0;title\x07\u202e\r\x9b[bold]x[/bold]"
# any of these reaching stdout or stderr raw is a failure (newline and tab are layout)
RAW_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)

GAN = dict(latent_dim=16, num_classes=4, image_size=8, channels=1, g_width=16, embed_dim=8)
GRU = dict(vocab="?abcde ", cell="gru", embed_dim=8, hidden=16, layers=1)
EVIL_VOCAB = "\x1b\x07\u202e\r\x9ba "  # as long as GRU's vocab: the graph still fits


def raw_controls(text: str) -> list[str]:
    """The raw control or bidi characters in ``text`` (empty when it is safe to show)."""
    return sorted(set(RAW_CONTROL.findall(text)))


def make_checkpoint(path: Path, kind: str, **changes: Any) -> Path:
    """A tiny random ``gan`` or ``ar`` checkpoint (fixed seed)."""
    import torch

    from genedge.train.ar import ArConfig, CharRNN
    from genedge.train.checkpoint import save_checkpoint
    from genedge.train.gan import GanConfig, Generator

    torch.manual_seed(0)
    if kind == "gan":
        cfg = GanConfig(**{**GAN, **changes})
        model = Generator(cfg).eval()
    else:
        cfg = ArConfig(**{**GRU, **changes})
        model = CharRNN(cfg).eval()
    return save_checkpoint(path, model, cfg, kind=kind)


def export_tiny(ckpt: Path, out: Path, precisions: tuple[str, ...] = ("fp32",)) -> Path:
    """A bundle in a few seconds: small calibration and quality budgets."""
    from genedge.export.bundle import export_bundle
    from genedge.export.options import ExportOptions

    opts = ExportOptions(
        source=ckpt,
        out=out,
        precisions=precisions,
        calib_samples=32,
        quality_samples=16,
        parity_seeds=(0,),
    )
    return export_bundle(opts)


def build_tiny_bundles(root: Path) -> dict[str, Path]:
    """``gan`` (fp32 + int8), ``ar`` (GRU) and ``evil_ar`` (the same graph, a vocabulary
    of escape characters), each with its checkpoint."""
    import torch

    torch.set_num_threads(1)
    gan_ckpt = make_checkpoint(root / "gan.safetensors", "gan")
    ar_ckpt = make_checkpoint(root / "ar.safetensors", "ar")
    evil_ckpt = make_checkpoint(root / "evil_ar.safetensors", "ar", vocab=EVIL_VOCAB)
    return {
        "gan": export_tiny(gan_ckpt, root / "gan", ("fp32", "int8")),
        "ar": export_tiny(ar_ckpt, root / "ar"),
        "evil_ar": export_tiny(evil_ckpt, root / "evil_ar"),
        "gan_ckpt": gan_ckpt,
        "evil_ar_ckpt": evil_ckpt,
        "ar_ckpt": ar_ckpt,
    }


# ---------------------------------------------------------------- walking JSON
Path_ = tuple[Any, ...]


def string_places(doc: Any, at: Path_ = ()) -> Iterator[tuple[str, Path_]]:
    """Every place in ``doc`` a string from a file can sit: ``("value", path)`` for each
    string leaf and ``("key", path)`` for each object key, in document order."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield "key", (*at, k)
            yield from string_places(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from string_places(v, (*at, i))
    elif isinstance(doc, str):
        yield "value", at


def with_hostile(doc: Any, place: tuple[str, Path_], hostile: str = HOSTILE) -> Any:
    """A copy of ``doc`` with the string at ``place`` (a value, or a key renamed) made
    hostile; the original text is kept after the hostile prefix."""
    out = copy.deepcopy(doc)
    what, path = place
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if what == "value":
        parent[last] = hostile + parent[last]
    else:
        parent[hostile + last] = parent.pop(last)
    return out


def object_paths(doc: Any, at: Path_ = ()) -> Iterator[Path_]:
    """The path of every JSON object in ``doc`` (the root first)."""
    if isinstance(doc, dict):
        yield at
        for k, v in doc.items():
            yield from object_paths(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from object_paths(v, (*at, i))


def with_key(doc: Any, at: Path_, key: str = "x_unknown", value: Any = "note") -> Any:
    """A copy of ``doc`` with ``key`` added to the object at ``at``."""
    out = copy.deepcopy(doc)
    target = out
    for step in at:
        target = target[step]
    target[key] = value
    return out


def write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, indent=1))

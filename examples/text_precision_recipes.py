"""Compare weight-only recipes for a transformer bundle: perplexity ratio, size, decode time.

    python examples/text_precision_recipes.py BUNDLE HELD_OUT.txt [--rounds 7]

BUNDLE is a text bundle with ``model.onnx`` (``genedge export FOLDER --out BUNDLE``). Every
candidate (int8/int4, symmetric or not, MatMulNBits ``accuracy_level`` 0 or 4) is written
next to the bundle's folder, scored on HELD_OUT.txt through the runtime's ``KvDecoder``
(the perplexity gate's path) and timed decoding single tokens on a 32-token cache with
2 threads, all candidates interleaved round by round (medians, with the range beside).
``genedge.export.stages.text_precision.WEIGHT_ONLY`` holds the recipes this chose.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from genedge.export.stages.text_precision import WeightOnlyRecipe, weight_only_from_onnx
from genedge.manifest import read_manifest
from genedge.runtime.perplexity import score_text
from genedge.runtime.select import BackendOptions, open_file
from genedge.runtime.text_lm import KvDecoder

CANDIDATES = [
    WeightOnlyRecipe(bits, 32, symmetric, level)
    for bits in (8, 4)
    for symmetric in (True, False)
    for level in (0, 4)
]


def label(r: WeightOnlyRecipe | None) -> str:
    if r is None:
        return "fp32"
    return f"int{r.bits} {'sym' if r.symmetric else 'asym'} acc{r.accuracy_level}"


def decode_ms(decoder: KvDecoder, steps: int = 24, prompt: int = 32) -> float:
    decoder.reset()
    decoder.feed(np.arange(prompt) % 100)
    t = time.perf_counter()
    for i in range(steps):
        decoder.feed([i % 100])
    return (time.perf_counter() - t) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("text", type=Path)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    m = read_manifest(a.bundle)
    spec, cfg = m.graphs["decoder"], m.model.transformer
    tok = Tokenizer.from_file(str(a.bundle / cfg.tokenizer))
    text = a.text.read_text(encoding="utf-8")
    work = Path(tempfile.mkdtemp(prefix="recipes-"))
    files = {None: a.bundle / "model.onnx"}
    for r in CANDIDATES:
        files[r] = work / f"{label(r).replace(' ', '-')}.onnx"
        weight_only_from_onnx(files[None], files[r], r)
    opts = BackendOptions(threads=2)
    decoders = {
        r: KvDecoder(
            open_file(p, "ort-cpu", options=opts, inputs=spec.inputs, outputs=spec.outputs), cfg
        )
        for r, p in files.items()
    }
    ppl = {
        r: score_text(d, tok, text, bos_token_id=cfg.bos_token_id).perplexity
        for r, d in decoders.items()
    }
    for d in decoders.values():
        d.reserve(64)
    times: dict = {r: [] for r in decoders}
    for _ in range(a.rounds):
        for r, d in decoders.items():
            times[r].append(decode_ms(d))
    print(
        f"{'recipe':<16} {'perplexity':>10} {'ratio':>7} {'bytes':>10} {'decode ms/token (range)':>26}"
    )
    for r, d in decoders.items():
        t = times[r]
        print(
            f"{label(r):<16} {ppl[r]:>10.3f} {ppl[r] / ppl[None]:>7.4f} {files[r].stat().st_size:>10} "
            f"{np.median(t):>10.2f} ({min(t):.2f}-{max(t):.2f})"
        )
        d.backend.close()


if __name__ == "__main__":
    main()

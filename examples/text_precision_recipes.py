"""Compare weight-only recipes for a transformer bundle: perplexity ratio, size, decode time.

    python examples/text_precision_recipes.py BUNDLE HELD_OUT.txt [--rounds 7]
        [--block-sizes 32,64,128]

BUNDLE is a text bundle with ``model.onnx`` (``genedge export FOLDER --out BUNDLE``). Every
candidate (int8/int4, symmetric or not, MatMulNBits ``accuracy_level`` 0 or 4, blocks of
``--block-sizes`` input rows at level 4) is written to a scratch folder, scored on
HELD_OUT.txt through the runtime's ``KvDecoder`` (the perplexity gate's path) and timed
decoding 64 single tokens after a 32-token prompt with 2 threads, all candidates interleaved
round by round (medians, with the range beside).
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
from genedge.runtime.text_lm import DECODER_SPIN_US, KvDecoder


def candidates(blocks: list[int]) -> list[WeightOnlyRecipe]:
    """int8 and int4, symmetric or not: fp32 compute (accuracy_level 0) in blocks of 32, int8
    compute (accuracy_level 4) in each of ``blocks``."""
    out = [WeightOnlyRecipe(bits, 32, sym, 0) for bits in (8, 4) for sym in (True, False)]
    return out + [
        WeightOnlyRecipe(bits, block, sym, 4)
        for bits in (8, 4)
        for block in blocks
        for sym in (True, False)
    ]


def label(r: WeightOnlyRecipe | None) -> str:
    if r is None:
        return "fp32"
    sym = "sym" if r.symmetric else "asym"
    return f"int{r.bits} {sym} acc{r.accuracy_level} b{r.block_size}"


def decode_ms(decoder: KvDecoder, steps: int = 64, prompt: int = 32) -> float:
    decoder.reserve(prompt + steps)
    decoder.feed_last(np.arange(prompt) % 100)
    t = time.perf_counter()
    for i in range(steps):
        decoder.feed_token(i % 100)
    return (time.perf_counter() - t) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("text", type=Path)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument(
        "--block-sizes", default="32", help="comma-separated, for the accuracy_level 4 recipes"
    )
    a = ap.parse_args()
    blocks = [int(b) for b in a.block_sizes.split(",")]
    m = read_manifest(a.bundle)
    spec, cfg = m.graphs["decoder"], m.model.transformer
    tok = Tokenizer.from_file(str(a.bundle / cfg.tokenizer))
    text = a.text.read_text(encoding="utf-8")
    work = Path(tempfile.mkdtemp(prefix="recipes-"))
    files = {None: a.bundle / "model.onnx"}
    for r in candidates(blocks):
        files[r] = work / f"{label(r).replace(' ', '-')}.onnx"
        weight_only_from_onnx(files[None], files[r], r)
    opts = BackendOptions(threads=2, spin_us=DECODER_SPIN_US)  # as TextGenerator opens them
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
    times: dict = {r: [] for r in decoders}
    for _ in range(a.rounds):
        for r, d in decoders.items():
            time.sleep(0.05)  # the previous candidate's workers sleep (bench.runner.SETTLE_S)
            times[r].append(decode_ms(d))
    print(
        f"{'recipe':<20} {'perplexity':>10} {'ratio':>7} {'bytes':>10} {'decode ms/token (range)':>26}"
    )
    for r, d in decoders.items():
        t = times[r]
        print(
            f"{label(r):<20} {ppl[r]:>10.3f} {ppl[r] / ppl[None]:>7.4f} {files[r].stat().st_size:>10} "
            f"{np.median(t):>10.2f} ({min(t):.2f}-{max(t):.2f})"
        )
        d.backend.close()


if __name__ == "__main__":
    main()

"""Time per generated token at cache position ~50 vs ~600 (a KV cache, not a recompute).

    .venv/bin/python examples/kv_cache_scaling.py [--threads 2] [--layers 4] [--hidden 256]

Builds a random Llama-style model (GQA) with ``transformers``, exports it with
``genedge export`` and times each ``Generation.step()`` of one long greedy generation
(``perf_counter_ns``). Reported: the median step time over positions 40-60 and 590-610, their
ratio, and for comparison one recompute of the whole 600-token sequence (what each step would
cost without a cache). Needs the export extra (torch, transformers) and tests/text_fixtures.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=2048)
    args = ap.parse_args()

    from text_fixtures import export_folder, hf_folder

    from genedge.runtime import TextGenerator

    d = Path(tempfile.mkdtemp(prefix="kv-scaling-"))
    folder = hf_folder(
        d / "llama",
        "llama",
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 3,
        num_hidden_layers=args.layers,
        num_attention_heads=8,
        num_key_value_heads=2,
    )
    bundle = export_folder(folder, d / "bundle")
    with TextGenerator.open(bundle, backend="ort-cpu", threads=args.threads) as tg:
        prompt = "Return the"
        n_prompt = len(tg.encode(prompt))
        for _ in range(2):  # warm-up generation, then the timed one
            g = tg.start(prompt, max_new_tokens=620, temperature=0, eos=False)
            times = []
            while not g.done:
                t0 = time.perf_counter_ns()
                g.step()
                times.append(time.perf_counter_ns() - t0)

        # step k (k >= 1) feeds one token at cache position n_prompt + k - 1
        def at(lo: int, hi: int) -> float:
            return statistics.median(times[lo - n_prompt + 1 : hi - n_prompt + 1]) / 1e6

        early, late = at(40, 60), at(590, 610)
        dec = tg.decoder
        dec.reserve(600)
        ids = list(range(1, 601))
        recompute = []
        for _ in range(5):
            dec.reset()
            t0 = time.perf_counter_ns()
            dec.feed(ids)
            recompute.append((time.perf_counter_ns() - t0) / 1e6)
        print(
            f"model: {args.layers} layers, hidden {args.hidden}, 8 heads / 2 kv heads, "
            f"vocab {args.vocab}; ort-cpu, {args.threads} threads"
        )
        print(f"median step at positions 40-60:   {early:.3f} ms")
        print(f"median step at positions 590-610: {late:.3f} ms  (ratio {late / early:.2f}x)")
        print(
            f"recompute of 600 tokens (no cache): {statistics.median(recompute):.3f} ms "
            f"({statistics.median(recompute) / late:.1f}x a cached step at 600)"
        )


if __name__ == "__main__":
    main()

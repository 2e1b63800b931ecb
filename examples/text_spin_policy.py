"""How ONNX Runtime's worker spin policy changes a transformer bundle's generation time.

    .venv/bin/python examples/text_spin_policy.py BUNDLE [--precision int4] [--threads 2]
        [--prompt-tokens 16] [--new-tokens 64] [--rounds 7] [--hog]

Opens the bundle three times with ``TextGenerator.open`` and one spin policy each:

- ``stop``: workers spin within a run and sleep as soon as it returns
  (``spin_between_runs=False``, ORT's ``session.force_spinning_stop``);
- ``bounded``: workers spin ``DECODER_SPIN_US`` after a run, then sleep (the default for
  transformer bundles, ``session.intra_op.spin_duration_us``);
- ``ort-default``: ORT's own spin policy (``spin_us=None``; its workers outlast a run by
  tens of ms).

Each round runs one greedy generation per policy (rounds interleaved, 50 ms apart) and the
report gives each policy's median generation time and its per-round ratio to ``bounded``.
``--hog`` runs a busy loop in a second process throughout (a loaded 2-core machine).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

from genedge.runtime import TextGenerator
from genedge.runtime.text_lm import DECODER_SPIN_US

TEXT = "The quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat. " * 40
POLICIES = {
    "stop": {"spin_between_runs": False},
    "bounded": {"spin_us": DECODER_SPIN_US},
    "ort-default": {"spin_between_runs": True},
}


def _busy() -> None:
    while True:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--precision", default="int4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--hog", action="store_true", help="a busy loop in another process")
    args = ap.parse_args()

    gens = {
        name: TextGenerator.open(
            args.bundle, backend="ort-cpu", precision=args.precision, threads=args.threads, **kw
        )
        for name, kw in POLICIES.items()
    }
    first = next(iter(gens.values()))
    prompt = first.decode(first.encode(TEXT)[: args.prompt_tokens])
    hog = multiprocessing.Process(target=_busy, daemon=True) if args.hog else None
    if hog:
        hog.start()
    times: dict[str, list[float]] = {name: [] for name in gens}
    try:
        for _ in range(args.rounds + 1):  # the first round warms up
            for name, tg in gens.items():
                time.sleep(0.05)
                g = tg.start(prompt, max_new_tokens=args.new_tokens, temperature=0, eos=False)
                t0 = time.perf_counter()
                while not g.done:
                    g.step()
                times[name].append(time.perf_counter() - t0)
    finally:
        if hog:
            hog.kill()
    print(
        f"{args.precision}, {args.threads} threads, prompt {args.prompt_tokens} + "
        f"{args.new_tokens} new, {args.rounds} rounds{', busy loop beside' if hog else ''}:"
    )
    base = times["bounded"][1:]
    for name, t in times.items():
        t = t[1:]
        ratios = sorted(a / b for a, b in zip(t, base, strict=True))
        print(
            f"  {name:12s} median {statistics.median(t) * 1e3:7.1f} ms per generation, "
            f"vs bounded {statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"
        )


if __name__ == "__main__":
    main()

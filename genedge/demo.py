"""`genedge demo`: the whole pipeline on the built-in digits data, every picture in one folder.

It drives the same CLI verbs a user would type (train -> export -> sample -> live ->
generate -> bench), so the demo exercises exactly what the README documents. Stages are
dispatched by name through ``genedge.cli``; this module imports no stage itself.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

from genedge.cli import main  # the CLI dispatches to the stages lazily
from genedge.errors import BadInputError, printable
from genedge.outputs import is_housekeeping


@dataclass(frozen=True)
class DemoOptions:
    out: Path
    gan_minutes: float = 4.0
    vae_minutes: float = 1.0
    ar_minutes: float = 1.5
    quick: bool = False  # a smoke run: a few steps per stage, for tests

    def budget(self, minutes: float, quick_steps: int) -> list[str]:
        """Training budget flags; ``--overwrite`` lets a re-run start its own runs over."""
        steps = ["--steps", str(quick_steps)] if self.quick else ["--minutes", str(minutes)]
        return [*steps, "--overwrite"]


# the README's reference run of each demo model ("Measured"): (minutes, steps, what it reached)
README_REFERENCE = {
    "gan": (4.0, 2647, "conditional accuracy 1.000, Frechet distance 3.66"),
}


def steps_made(run: Path) -> int | None:
    """The last step a training run logged in ``RUN/metrics.jsonl`` (None: none readable)."""
    import json

    try:
        lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    steps = []
    for line in lines[-50:]:
        try:
            step = json.loads(line).get("step")
        except (ValueError, AttributeError, RecursionError):
            continue
        if type(step) is int:
            steps.append(step)
    return max(steps) if steps else None


def steps_beside_reference(kind: str, run: Path, minutes: float | None) -> str | None:
    """``gan: 78 steps in 4 min; the README's reference run made 2647 (...)``, or None."""
    made = steps_made(run)
    if made is None:
        return None
    line = f"{kind}: {made} steps" + (f" in {minutes:g} min" if minutes else "")
    ref = README_REFERENCE.get(kind)
    if ref is None:
        return line
    ref_min, ref_steps, reached = ref
    line += f"; the README's reference run made {ref_steps} in {ref_min:g} min ({reached})"
    if minutes and made < 0.5 * ref_steps * minutes / ref_min:
        line += ": far fewer here (a busy or slower machine), so expect a weaker model"
    return line


def demo_plan(o: DemoOptions) -> list[tuple[str, list[str]]]:
    """The demo as (title, genedge argv) steps."""
    out = o.out
    gan, vae, ar = out / "gan", out / "vae", out / "ar"
    n_bench = ["--iters", "30", "--warmup", "5"] if o.quick else ["--seconds", "3"]
    return [
        (
            "Train a class-conditional GAN on digits",
            [
                "train",
                "gan",
                "--data",
                "digits",
                "--conditional",
                "--out",
                str(gan),
                *o.budget(o.gan_minutes, 30),
            ],
        ),
        (
            "Train a VAE on digits",
            ["train", "vae", "--data", "digits", "--out", str(vae), *o.budget(o.vae_minutes, 30)],
        ),
        (
            "Train a character model on the standard library's docstrings",
            ["train", "ar", "--data", "stdlib-docs", "--out", str(ar), *o.budget(o.ar_minutes, 30)],
        ),
        (
            "Export the GAN: fp32 + fp16 + int8, verified",
            [
                "export",
                str(gan / "generator.safetensors"),
                "--out",
                str(out / "gan-bundle"),
                "--precision",
                "fp32,fp16,int8",
                *(["--calib-samples", "64"] if o.quick else []),
            ],
        ),
        (
            "Export the VAE (decoder + encoder)",
            [
                "export",
                str(vae / "generator.safetensors"),
                "--out",
                str(out / "vae-bundle"),
                "--precision",
                "fp32,fp16",
            ],
        ),
        (
            "Export the character model's step graph",
            [
                "export",
                str(ar / "generator.safetensors"),
                "--out",
                str(out / "ar-bundle"),
                "--precision",
                "fp32",
            ],
        ),
        (
            "Sample a 10x10 grid (one column per class)",
            [
                "sample",
                str(out / "gan-bundle"),
                "-n",
                "100",
                "--seed",
                "0",
                "--out",
                str(out / "samples.png"),
            ],
        ),
        (
            "A 30 fps latent walk of all ten classes (one tile each), written to video",
            [
                "live",
                str(out / "gan-bundle"),
                "--fps",
                "30",
                "--seconds",
                "2" if o.quick else "6",
                "--tile",
                "10",
                "--video",
                str(out / "walk.mp4"),
                "--json",
                str(out / "live.json"),
            ],
        ),
        (
            "Generate text, streamed",
            [
                "generate",
                str(out / "ar-bundle"),
                "--prompt",
                "Return the ",
                "--max-new-tokens",
                "40" if o.quick else "240",
            ],
        ),
        (
            "Benchmark the GAN bundle (runtime vs baselines, fp32 vs int8)",
            [
                "bench",
                str(out / "gan-bundle"),
                "--backend",
                "ort-cpu",
                "--precision",
                "fp32,int8",
                "--batch",
                "1,16",
                *n_bench,
                "--checkpoint",
                str(gan / "generator.safetensors"),
                "--json",
                str(out / "bench.json"),
                "--markdown",
                str(out / "bench.md"),
                "--plot",
                str(out / "bench.png"),
            ],
        ),
    ]


DEMO_NAMES = frozenset(
    {"gan", "vae", "ar", "gan-bundle", "vae-bundle", "ar-bundle", "samples.png", "walk.mp4"}
    | {"live.json", "bench.json", "bench.md", "bench.png"}
)


def check_demo_out(out: Path) -> None:
    """The demo folder may be new, empty or an earlier demo's; each step vets its own output."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BadInputError(
            f"--out '{printable(str(out))}' exists and is not a folder.",
            hint="Pass a new folder path.",
        )
    if not out.is_dir():
        return
    foreign = sorted(n for n in os.listdir(out) if n not in DEMO_NAMES and not is_housekeeping(n))
    if foreign:
        shown = ", ".join(printable(n) for n in foreign[:5])
        raise BadInputError(
            f"--out '{printable(str(out))}' holds files the demo did not write: {shown}. genedge "
            "never deletes or replaces files it did not write.",
            hint="Pass a new or empty folder (the default is ./demo-out).",
        )


def run_demo(o: DemoOptions) -> int:
    check_demo_out(o.out)
    o.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plan = demo_plan(o)
    for i, (title, argv) in enumerate(plan, 1):
        print(f"\n=== [{i}/{len(plan)}] {title}\n$ genedge {' '.join(argv)}", flush=True)
        code = main(argv)
        if code:
            print(f"genedge demo: step {i} failed with exit code {code}; stopping.")
            return code
        if argv[0] == "train":
            minutes = (
                None
                if o.quick
                else {"gan": o.gan_minutes, "vae": o.vae_minutes}.get(argv[1], o.ar_minutes)
            )
            said = steps_beside_reference(argv[1], o.out / argv[1], minutes)
            if said:
                print(said, flush=True)
    print(f"\nDemo finished in {time.perf_counter() - t0:.0f} s. Everything is in {o.out}/:")
    for p in sorted(o.out.glob("**/*")):
        if p.suffix in (".png", ".mp4", ".md", ".json", ".txt") and "samples/" not in p.as_posix():
            print(f"  {p}")
    return 0


def demo_command(args: argparse.Namespace) -> int:
    if args.minutes is not None and args.minutes <= 0:
        raise BadInputError(f"--minutes must be positive, got {args.minutes}.")
    opts = DemoOptions(
        out=Path(args.out),
        quick=args.quick,
        **({"gan_minutes": args.minutes} if args.minutes else {}),
    )
    return run_demo(opts)

"""CLI handlers: argparse namespace -> options dataclass -> one library call.

``genedge train`` -> ``train_run(TrainOptions)``; ``genedge eval CKPT`` ->
``evaluate_checkpoint``; ``genedge eval BUNDLE`` (a folder) -> the export stage's
``evaluate_bundle``, imported lazily.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genedge.atomic import atomic_write_text
from genedge.errors import BadInputError

from .options import TRANSFORMER_FLAGS, TrainOptions, resolve_options


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions(
        kind=args.kind,
        data=args.data,
        out=Path(args.out),
        conditional=args.conditional,
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        image_size=args.image_size,
        latent_dim=args.latent_dim,
        sample_every=args.sample_every,
        eval_every=args.eval_every,
        resume=args.resume,
        overwrite=getattr(args, "overwrite", False),
        cell=args.cell,
        **{f: getattr(args, f, None) for f in ("arch", *TRANSFORMER_FLAGS)},
        progress=not args.no_progress,
        threads=getattr(args, "threads", None),
    )


def train_command(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    resolve_options(opts)  # flag errors first: before torch and the data load
    from .trainer import train_run

    train_run(opts)
    return 0


def eval_command(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if target.is_dir():  # the CLI routes bundles to the export stage; train never imports it
        raise BadInputError(
            f"eval: '{target}' is a folder; checkpoint evaluation takes a .safetensors file.",
            hint="Run `genedge eval BUNDLE` for bundles (needs genedge[export]).",
        )
    if target.is_file():
        if args.precision:
            raise BadInputError(
                "--precision applies to bundles (folders), not to a checkpoint file; drop it."
            )
        from .eval import evaluate_checkpoint

        metrics = evaluate_checkpoint(target, data=args.data, n=args.num_samples, seed=args.seed)
    else:
        raise BadInputError(
            f"eval: '{target}' does not exist.",
            hint="Pass RUN/generator.safetensors from `genedge train` or a bundle folder from `genedge export`.",
        )
    from .trainer import print_table

    print_table(f"metrics of {target}", metrics)
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(metrics, indent=2, default=str) + "\n")
    return 0

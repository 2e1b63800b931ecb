"""The ``genedge`` command line: argparse here, one plain library call per subcommand.

Every subcommand's flags are defined in this (dependency-free) module, so ``--help``
works with no extra installed. The handler lives in its stage's ``commands`` module and
is imported only when the subcommand runs; a missing extra becomes exit code 3 with the
``pip install 'genedge[extra]'`` line. ``GenedgeError`` -> one line on stderr and its exit
code; an OS error on a user's file -> exit 2, out of memory -> exit 3; anything else is a
bug: one line (exit 1) naming the file that holds the traceback (``GENEDGE_DEBUG=1`` prints
it). Single-file outputs are vetted by the output contract (``genedge.outputs``) first.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import MISSING, fields
from typing import Any, NoReturn

from genedge import __version__
from genedge.errors import MESSAGE_CHARS, GenedgeError, MissingExtraError, printable
from genedge.export.options import (
    CALIB_METHODS,
    DEFAULT_PROFILES,
    OUTPUT_FORMATS,
    TRT_PATHS,
    ExportOptions,
)
from genedge.interrupts import sigint_watch
from genedge.lazy import MODULE_EXTRAS
from genedge.outputs import check_output_file
from genedge.precisions import RUN_PRECISIONS
from genedge.runtime.latents import WALKS
from genedge.runtime.registry import AUTO, names
from genedge.runtime.stream import LATE_POLICIES
from genedge.train.options import (
    ARCHS,
    DEFAULT_ARCH,
    FAMILY_DEFAULTS,
    KINDS,
    RNN_CELLS,
    TOKENIZERS,
    TRANSFORMER_DEFAULTS,
    TrainOptions,
)

# subcommand -> (module:function, extra that provides it)
HANDLERS: dict[str, tuple[str, str]] = {
    "demo": ("genedge.demo:demo_command", "train"),
    "train": ("genedge.train.commands:train_command", "train"),
    "eval": ("genedge.train.commands:eval_command", "train"),
    "eval-bundle": ("genedge.export.commands:eval_bundle_command", "export"),
    "export": ("genedge.export.commands:export_command", "export"),
    "sample": ("genedge.runtime.commands:sample_command", "cpu"),
    "live": ("genedge.runtime.commands:live_command", "cpu"),
    "generate": ("genedge.runtime.commands:generate_command", "cpu"),
    "bench": ("genedge.bench.commands:bench_command", "cpu"),
    "tune": ("genedge.runtime.tune:tune_command", "cpu"),
    "inspect": ("genedge.export.inspection:inspect_command", "export"),
}


def _csv(kind: Callable[[str], object] = str) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(t.strip()) for t in text.split(",") if t.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list, got {text!r}"
            ) from None

    return parse


def whole_number(text: str) -> int:
    """An integer flag that also takes the ``1e9`` spelling of a whole number (its bound is
    checked where the option is validated, with the reason)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value.is_integer()):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def option_default(options: type, name: str) -> Any:
    """The default of field ``name`` of an options dataclass, as the flag takes it (a tuple
    as a list): the flag's default is read from the options, never restated."""
    f = next(f for f in fields(options) if f.name == name)
    value = f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
    return list(value) if isinstance(value, tuple) else value


def _per_kind(name: str) -> str:
    """A ``FAMILY_DEFAULTS`` field as ``--help`` shows it: one value, or one per kind."""
    values = {k: getattr(d, name) for k, d in FAMILY_DEFAULTS.items()}
    values = {k: v for k, v in values.items() if v is not None}
    if len(set(values.values())) == 1:
        return f"{next(iter(values.values())):g}"
    return ", ".join(f"{k} {v:g}" for k, v in values.items())


def _backends_text() -> str:
    return " | ".join((AUTO, *names()))


# subcommand -> the one example its --help ends with
EXAMPLES: dict[str, str] = {
    "demo": "genedge demo --quick --out demo-quick",
    "train": "genedge train gan --data digits --conditional --minutes 4 --out runs/gan",
    "eval": "genedge eval runs/gan/generator.safetensors --json metrics.json",
    "export": "genedge export runs/gan/generator.safetensors --out gan-bundle --precision fp32,int8",
    "sample": "genedge sample gan-bundle -n 64 --seed 0 --label 3 --out threes.png",
    "live": "genedge live gan-bundle --fps 30 --seconds 10 --video walk.mp4 --json live.json",
    "generate": 'genedge generate ar-bundle --prompt "Return the " --max-new-tokens 200',
    "bench": "genedge bench gan-bundle --batch 1,8,32 --json bench.json --plot bench.png",
    "tune": "genedge tune gan-bundle --batch 1,16 --threads 2",
    "inspect": "genedge inspect gan-bundle --json",
}


def default_text(value: object) -> str:
    """An option's default as ``--help`` shows it: lists comma-separated, as they are typed."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return '""' if value == "" else str(value)


class HelpFormatter(argparse.HelpFormatter):
    """Ends each option's help with its default, when it has one (not None, not a switch's
    False); text holding line breaks (an example) keeps its lines, the rest is wrapped."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if not action.option_strings or d is None or d is False or d == argparse.SUPPRESS:
            return text
        if "%(default)" in text:
            return text
        shown = default_text(d).replace("%", "%%")
        return f"{text} (default: {shown})".lstrip()

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores into the new option's destination and says, once
    per use on stderr, which spelling replaces it."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(
            f"genedge: warning: {option_string} is deprecated here; use {self.new} "
            f"(same meaning). The old spelling will be removed in a later release.",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_deprecated_alias(
    p: argparse.ArgumentParser, old: str, new: str, type: Callable | None = None
) -> None:
    """Accept ``old`` as a deprecated spelling of ``new`` (whose destination it fills)."""
    dest = new.lstrip("-").replace("-", "_")
    p.add_argument(
        old,
        dest=dest,
        type=type,
        action=DeprecatedAlias,
        new=new,
        default=argparse.SUPPRESS,
        help=f"deprecated spelling of {new}",
    )


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="end-to-end on the built-in digits data (train, export, sample, bench)"
    )
    p.add_argument("--out", default="demo-out", help="output folder for every artifact and picture")
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="GAN training budget (default: 4, --quick: less)",
    )
    p.add_argument("--quick", action="store_true", help="a fast smoke run with tiny budgets")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a generator (gan, vae) or a text model (ar)")
    p.add_argument(
        "kind",
        choices=KINDS,
        help="gan: (conditional) GAN; vae: variational autoencoder; ar: character-level text model",
    )
    p.add_argument(
        "--data",
        required=True,
        help="digits | mnist | fashion-mnist | stdlib-docs | image folder | .npz/.npy | "
        "MNIST IDX file | text file (mnist, fashion-mnist: downloaded once into ~/.cache/genedge)",
    )
    p.add_argument("--out", required=True, help="run folder (checkpoints, samples, metrics)")
    p.add_argument("--conditional", action="store_true", help="class-conditional (needs labels)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps",
        type=int,
        default=None,
        help="total optimizer steps (with --resume: the total to reach; default: "
        f"{_per_kind('steps')} when --minutes is not given)",
    )
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock training budget")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"images or text windows per step (default: {_per_kind('batch_size')}, ar --arch "
        f"transformer {TRANSFORMER_DEFAULTS.batch_size})",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"learning rate (default: {_per_kind('lr')}, ar --arch transformer "
        f"{TRANSFORMER_DEFAULTS.lr:g})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=option_default(TrainOptions, "seed"),
        help="seed of weights, data order and noise",
    )
    p.add_argument(
        "--device", default=option_default(TrainOptions, "device"), help="cpu | cuda | cuda:N"
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="resize images to this size (default: the data's own size, the nearest one the "
        "generators build; digits: 16)",
    )
    p.add_argument(
        "--latent-dim",
        type=int,
        default=None,
        help=f"size of z (default: {_per_kind('latent_dim')})",
    )
    p.add_argument(
        "--sample-every",
        type=int,
        default=None,
        help=f"steps between sample grids (default: {_per_kind('sample_every')})",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help=f"steps between evaluations (default: {_per_kind('eval_every')})",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from RUN's newest complete checkpoint"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start an existing run in --out over (only its own files are replaced; a folder "
        "holding other files is refused)",
    )
    p.add_argument(
        "--cell",
        choices=RNN_CELLS,
        default=None,
        help=f"ar: recurrent cell (default: {DEFAULT_ARCH})",
    )
    _add_transformer_flags(p)
    p.add_argument(
        "--no-progress", action="store_true", help="plain log lines instead of a progress bar"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice, "
        f"{TRANSFORMER_DEFAULTS.threads} for ar --arch transformer; 1 is fastest on a busy "
        "machine)",
    )


def _add_transformer_flags(p: argparse.ArgumentParser) -> None:
    """``train ar --arch transformer`` sizes; defaults live in train/options.py (shown in help)."""
    p.add_argument(
        "--arch",
        choices=ARCHS,
        default=None,
        help=f"ar: model (default: {DEFAULT_ARCH}; transformer: a small Llama-layout decoder)",
    )
    d = TRANSFORMER_DEFAULTS
    t = p.add_argument_group(
        f"ar --arch transformer (a {d.layers}-layer, {d.d_model}-wide Llama-layout decoder)"
    )
    t.add_argument("--layers", type=int, default=None, help=f"decoder layers (default: {d.layers})")
    t.add_argument("--d-model", type=int, default=None, help=f"hidden width (default: {d.d_model})")
    t.add_argument("--heads", type=int, default=None, help=f"attention heads (default: {d.heads})")
    t.add_argument(
        "--kv-heads",
        type=int,
        default=None,
        help="key/value heads, grouped-query attention (default: half of --heads, all if odd)",
    )
    t.add_argument(
        "--context", type=int, default=None, help=f"context in tokens (default: {d.context})"
    )
    t.add_argument(
        "--tokenizer",
        choices=TOKENIZERS,
        default=None,
        help="char: one token per byte; bpe: byte-level BPE trained on the data (default: "
        f"{d.tokenizer})",
    )
    t.add_argument(
        "--vocab-size",
        type=int,
        default=None,
        help=f"bpe: tokens in the vocabulary (default: {d.vocab_size})",
    )


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="quality metrics of a checkpoint or of a bundle's artifacts")
    p.add_argument("target", help="generator checkpoint (.safetensors) or bundle folder")
    p.add_argument(
        "--json", dest="json_out", default=None, help="write the metrics to this JSON file"
    )
    p.add_argument(
        "--data", default=None, help="reference data (default: what the model was trained on)"
    )
    p.add_argument(
        "-n", "--num-samples", type=int, default=1000, help="generated samples per metric"
    )
    p.add_argument("--seed", type=int, default=1234, help="seed of the generated samples")
    p.add_argument(
        "--precision",
        type=_csv(),
        default=None,
        help="bundle: artifacts to evaluate, e.g. fp32,int8 (default: every one)",
    )


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="checkpoint, your own PyTorch generator or ONNX file -> verified bundle",
        description="Export a genedge checkpoint (CKPT.safetensors), an existing ONNX generator "
        "(MODEL.onnx) or your own PyTorch generator (--module FILE.py:NAME --weights W) into a "
        "verified bundle: ONNX fp32/fp16/int8 and optionally TensorRT engines. WARNING: "
        "--module imports FILE.py, which runs that file's code with your permissions; only "
        "pass files you trust (docs/security.md).",
    )
    p.add_argument(
        "checkpoint",
        nargs="?",
        metavar="SOURCE",
        help="a genedge checkpoint (.safetensors) or an ONNX generator (.onnx); omit with --module",
    )
    p.add_argument("--out", required=True, help="bundle folder to write")
    byo = p.add_argument_group("your own generator (PyTorch module or ONNX file)")
    byo.add_argument(
        "--module",
        default=None,
        metavar="FILE.py:NAME",
        help="an nn.Module class or factory function in FILE.py. Importing FILE.py RUNS ITS "
        "CODE: only pass files you trust",
    )
    byo.add_argument(
        "--weights",
        default=None,
        metavar="W",
        help="weights for --module (required): .safetensors, or .pt/.pth loaded with "
        "torch.load(weights_only=True) (a state_dict, or a dict holding one); 'none' when NAME "
        "returns an already trained module",
    )
    byo.add_argument("--module-args", default=None, metavar="JSON", help="NAME's arguments")
    byo.add_argument(
        "--tokenizer",
        default=None,
        metavar="FILE",
        help="with --module: NAME is a causal language model (docs/text.md) and FILE its "
        "tokenizer.json",
    )
    byo.add_argument("--latent-dim", type=int, default=None, metavar="Z", help="size of z")
    byo.add_argument(
        "--num-classes", type=int, default=None, metavar="K", help="K > 0: module(z, labels)"
    )
    byo.add_argument(
        "--output-range",
        default=None,
        metavar="LO,HI",
        help="range of the generator's float output (default -1,1; 0,1 for a sigmoid); "
        "checked on seeded latents",
    )
    byo.add_argument(
        "--trust-output-range",
        action="store_true",
        default=None,
        help="export even when the outputs on seeded latents leave --output-range or fill only "
        "half of it (a model that means it)",
    )
    byo.add_argument(
        "--latent-shape",
        default=None,
        metavar="Z,1,1",
        help="the shape the module wants per sample (the classic DCGAN: Z,1,1)",
    )
    byo.add_argument(
        "--latent-dist",
        choices=["normal", "uniform"],
        default=None,
        help="the prior the generator was trained with (default normal; uniform: U(-1, 1))",
    )
    byo.add_argument("--latent-input", default=None, metavar="NAME", help="ONNX: latent input")
    byo.add_argument("--label-input", default=None, metavar="NAME", help="ONNX: label input")
    byo.add_argument("--image-output", default=None, metavar="NAME", help="ONNX: image output")
    p.add_argument(
        "--precision",
        type=_csv(),
        default=option_default(ExportOptions, "precisions"),
        help="precisions to build, comma-separated (fp32 is always built; bf16, asked for "
        "explicitly, gates the fp32 graph in bf16: on OpenVINO where the CPU has AVX-512 BF16 or "
        "AMX, else by emulated bf16 rounding on ONNX Runtime)",
    )
    p.add_argument(
        "--calib-method",
        choices=CALIB_METHODS,
        default=option_default(ExportOptions, "calib_method"),
        help="int8 calibration: how activation ranges are chosen",
    )
    p.add_argument(
        "--calib-samples",
        type=int,
        default=option_default(ExportOptions, "calib_samples"),
        help="int8 calibration: inputs drawn from the prior",
    )
    p.add_argument(
        "--calib-data", default=None, help="real data for calibration instead of the prior"
    )
    p.add_argument(
        "--eval-data",
        default=None,
        help="reference data for the task metric (default: what the checkpoint was trained on)",
    )
    p.add_argument(
        "--truncation",
        type=float,
        default=option_default(ExportOptions, "truncation"),
        help="calibration latents: truncation (0, 1]",
    )
    p.add_argument(
        "--max-quality-drop",
        type=float,
        default=option_default(ExportOptions, "max_quality_drop"),
        help="largest allowed drop of the task metric for int8 (e.g. 0.01 = 1 point)",
    )
    p.add_argument(
        "--min-psnr",
        type=float,
        default=option_default(ExportOptions, "min_psnr"),
        help="int8/fp16 PSNR floor vs fp32 (dB)",
    )
    p.add_argument(
        "--output-format",
        choices=OUTPUT_FORMATS,
        default=option_default(ExportOptions, "output_format"),
        help="image output: uint8 NHWC, or float NCHW in [-1, 1]",
    )
    p.add_argument(
        "--opset",
        type=int,
        default=option_default(ExportOptions, "opset"),
        help="ONNX opset of the exported graphs",
    )
    p.add_argument(
        "--trt",
        action="store_true",
        help="also build TensorRT engines (needs genedge[trt] and a GPU)",
    )
    p.add_argument(
        "--trt-profile",
        default=",".join(":".join(map(str, p)) for p in DEFAULT_PROFILES),
        metavar="MIN:OPT:MAX",
        help="TensorRT optimisation profile(s) of batch sizes (several: comma-separated)",
    )
    add_deprecated_alias(p, "--batch", "--trt-profile")
    p.add_argument(
        "--workspace-mb",
        type=int,
        default=option_default(ExportOptions, "workspace_mb"),
        help="TensorRT builder workspace limit (MiB)",
    )
    p.add_argument(
        "--trt-path",
        choices=TRT_PATHS,
        default=option_default(ExportOptions, "trt_path"),
        help="TensorRT precision path (legacy = builder flags + calibrator, TensorRT 10 only)",
    )
    p.add_argument(
        "--dla-core",
        type=int,
        default=None,
        help="Jetson: build the engines for this DLA core (default: the GPU)",
    )
    p.add_argument(
        "--version-compatible",
        action="store_true",
        help="TensorRT engines that later TensorRT versions load (they carry host code)",
    )
    p.add_argument(
        "--triton", default=None, metavar="DIR", help="also write a Triton model repository"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=option_default(ExportOptions, "seed"),
        help="seed of calibration and quality latents",
    )
    p.add_argument(
        "--force", action="store_true", help="rebuild everything even if the bundle is current"
    )


def _add_runtime(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("bundle", help="bundle folder written by `genedge export`")
    common.add_argument(
        "--backend",
        default=AUTO,
        help=f"{_backends_text()} ({AUTO}: the fastest available, measured by `genedge tune` "
        "where it ran, and says which)",
    )
    common.add_argument(
        "--precision",
        default=None,
        help=f"{' | '.join(RUN_PRECISIONS)} (default: best for the backend; bf16: openvino on a "
        "CPU with AVX-512 BF16 or AMX)",
    )
    common.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: the backend's choice)"
    )
    common.add_argument(
        "--allow-version-compatible",
        action="store_true",
        help="tensorrt: load version-compatible engines (they carry host code; trusted bundles only)",
    )

    p = sub.add_parser("sample", parents=[common], help="sample a grid of images from a bundle")
    p.add_argument("-n", type=int, default=64, help="images in the grid")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the latents (same seed, same images)"
    )
    p.add_argument(
        "--label",
        type=int,
        default=None,
        help="class of every image (default: 0, 1, 2, ... in turn)",
    )
    p.add_argument(
        "--truncation", type=float, default=1.0, help="latent truncation in (0, 1]; 1: none"
    )
    p.add_argument("--out", required=True, help="PNG file to write")

    p = sub.add_parser(
        "live", parents=[common], help="real-time stream loop (video file, window, summary)"
    )
    p.add_argument("--fps", type=float, default=30.0, help="frames per second to deliver")
    p.add_argument("--seconds", type=float, default=10.0, help="how long the stream runs")
    p.add_argument("--video", default=None, help="write the frames to this .mp4/.avi")
    p.add_argument("--window", action="store_true", help="show an OpenCV window")
    p.add_argument(
        "--walk",
        choices=WALKS,
        default="circle",
        help="latent walk between frames",
    )
    p.add_argument(
        "--late",
        choices=LATE_POLICIES,
        default=LATE_POLICIES[0],
        help="a frame not ready in time: drop (skip its slot) or block (deliver it late)",
    )
    p.add_argument(
        "--tile", type=int, default=1, metavar="N", help="images per frame, tiled (one inference)"
    )
    add_deprecated_alias(p, "--batch", "--tile", type=int)
    p.add_argument("--seed", type=int, default=0, help="seed of the latent walk")
    p.add_argument(
        "--label",
        type=int,
        default=None,
        help="class of every frame (default: tile i of a --tile frame shows class i)",
    )
    p.add_argument(
        "--realtime-priority",
        type=int,
        default=10,
        metavar="P",
        help="SCHED_FIFO priority of the frame loop, where permitted: on by default here, "
        "unlike the library's Sampler.stream; 0: normal scheduling",
    )
    p.add_argument(
        "--json",
        dest="json_out",
        default=None,
        metavar="FILE",
        help="also write the summary (counters, jitter and latency percentiles) as JSON",
    )

    p = sub.add_parser("generate", parents=[common], help="stream text from an `ar` bundle")
    p.add_argument("--prompt", default="", help="text the generation continues")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=200,
        help="tokens to generate (characters for a character-level model)",
    )
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0: greedy")
    p.add_argument(
        "--top-k", type=int, default=0, help="sample among the k likeliest characters; 0: all"
    )
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass; 1: no cut-off")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument(
        "--repetition-penalty",
        type=float,
        default=None,
        help="transformer bundles: divide the logits of tokens already seen (1: off)",
    )
    p.add_argument(
        "--stop",
        action="append",
        default=None,
        metavar="TEXT",
        help="transformer bundles: end the generation at TEXT (repeatable)",
    )
    p.add_argument(
        "--busy-machine",
        action="store_true",
        help="ONNX Runtime's worker threads sleep as each run returns instead of spinning "
        "300 us for the next token: faster where other work shares the cores, slower on an "
        "idle machine (docs/text.md)",
    )


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="latency/throughput benchmark with baselines and quality beside speed"
    )
    p.add_argument("bundle", help="bundle folder written by `genedge export`")
    p.add_argument(
        "--backend",
        type=_csv(),
        default=[AUTO],
        help=f"backends to time, comma-separated ({_backends_text()})",
    )
    p.add_argument(
        "--precision",
        type=_csv(),
        default=None,
        help="precisions to time, comma-separated (default: every one in the bundle)",
    )
    p.add_argument(
        "--batch", type=_csv(int), default=[1, 8, 32], help="batch sizes to time, comma-separated"
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--iters", type=whole_number, default=None, help="timed runs per case")
    budget.add_argument(
        "--seconds", type=float, default=None, help="time per case (default: 2 s, unless --iters)"
    )
    p.add_argument("--warmup", type=whole_number, default=20, help="untimed runs before timing")
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: the backend's choice)"
    )
    p.add_argument(
        "--fps", type=float, default=None, help="also run the real-time mode at this fps"
    )
    p.add_argument(
        "--baselines",
        type=_csv(),
        default=["torch", "torch-compile", "ort", "genai"],
        help="torch, torch-compile, ort, openvino, trtexec, genai (those available are run; for a "
        "transformer bundle torch is transformers' generate, torch-compile the same with a static "
        "cache, genai onnxruntime-genai's builder fp32 and int4, all on the source folder)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="source checkpoint for the torch baselines (a transformer bundle: its Hugging Face "
        "folder, when the manifest does not record it)",
    )
    p.add_argument(
        "--module",
        default=None,
        metavar="FILE.py:NAME",
        help="torch baselines of a bundle exported from your own module (as for `genedge export "
        "--module`); importing FILE.py RUNS ITS CODE: only pass files you trust",
    )
    p.add_argument("--weights", default=None, metavar="W", help="the weights for --module")
    p.add_argument("--module-args", default=None, metavar="JSON", help="NAME's arguments")
    p.add_argument(
        "--fps-seconds", type=float, default=5.0, help="duration of the real-time run at --fps"
    )
    p.add_argument(
        "--rounds", type=whole_number, default=10, help="interleaving rounds (A B C A B C ...)"
    )
    p.add_argument(
        "--cold-runs",
        type=whole_number,
        default=1,
        help="fresh-process cold starts per configuration (0: none)",
    )
    p.add_argument(
        "--max-new-tokens", type=int, default=64, help="ar bundles: tokens per timed generation"
    )
    p.add_argument(
        "--prompt-tokens",
        type=_csv(int),
        default=[16],
        help="transformer bundles: prompt lengths in tokens, comma-separated (e.g. 16,128)",
    )
    p.add_argument(
        "--new-tokens",
        type=_csv(int),
        default=None,
        help="transformer bundles: generation lengths, comma-separated (e.g. 64,256; default "
        "--max-new-tokens); every prompt length is timed with every generation length",
    )
    p.add_argument(
        "--check-targets",
        action="store_true",
        help="also grade genedge's own regression targets (speed-ups over torch, runtime "
        "overhead, int8 gain) in the report; for genedge's benchmark scripts",
    )
    p.add_argument(
        "--json",
        dest="json_out",
        default=None,
        metavar="FILE",
        help="also write the results as JSON",
    )
    p.add_argument(
        "--markdown", default=None, metavar="FILE", help="also write the report as Markdown"
    )
    p.add_argument(
        "--plot", default=None, metavar="FILE", help="also plot the latency distributions (PNG)"
    )


def _add_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="measure which backend and precision are fastest here, per batch size, for "
        "backend auto",
        description="Time every quality-approved (backend, precision) pair available on this "
        "machine for the bundle, per batch size, briefly and interleaved; cache the result "
        "outside the bundle (keyed by bundle, CPU, threads and library versions) so that "
        "--backend auto picks the fastest for the batch it is asked.",
    )
    p.add_argument("bundle", help="bundle folder written by `genedge export`")
    p.add_argument(
        "--batch", type=_csv(int), default=[1, 16], help="batch sizes to measure, comma-separated"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: the backend's choice)"
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="measuring time, all batch sizes together (default 6 s; at least 3 rounds)",
    )
    p.add_argument(
        "--backends",
        type=_csv(),
        default=None,
        help="backends to consider, comma-separated (default: every one installed here)",
    )


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="describe a bundle, an ONNX file or a checkpoint (I/O, precisions, engines, hashes)",
        description="Describe what a bundle, an ONNX file or a genedge checkpoint holds, without "
        "running it: inputs and outputs with shapes and dtypes; for a bundle also each "
        "precision's quality verdict and export-time CPU latency, its TensorRT engines and the "
        "TensorRT version and GPU they need, the source and the sha256 of every file.",
    )
    p.add_argument(
        "path",
        metavar="PATH",
        help="a bundle folder (or its manifest.json), an .onnx file or a .safetensors checkpoint",
    )
    p.add_argument("--json", action="store_true", help="print the description as JSON")


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (exit 2) that points at ``--help``, not the whole
    usage block; subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message, 400)} (see {self.prog} --help)\n")


# options whose value may start with '-' (a negative number): `--output-range -1,1` is joined
# into `--output-range=-1,1` before parsing, since argparse reads "-1,1" as a flag
NEGATIVE_VALUE_FLAGS = ("--output-range",)
_NUMBER_LIST = re.compile(r"-[0-9.]+([eE][-+]?[0-9]+)?(,[-+]?[0-9.]+([eE][-+]?[0-9]+)?)*")


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """``argv`` with each of ``NEGATIVE_VALUE_FLAGS`` followed by a negative number (list)
    written as one ``--flag=value`` token."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if tok in NEGATIVE_VALUE_FLAGS and nxt is not None and _NUMBER_LIST.fullmatch(nxt):
            out.append(f"{tok}={nxt}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="genedge",
        description="Train small generative models, export them to ONNX/TensorRT (FP16/INT8), "
        "sample them in real time, and benchmark them honestly.",
    )
    parser.add_argument("--version", action="version", version=f"genedge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (
        _add_demo,
        _add_train,
        _add_eval,
        _add_export,
        _add_runtime,
        _add_bench,
        _add_tune,
        _add_inspect,
    ):
        add(sub)
    for name, p in sub.choices.items():
        p.formatter_class = HelpFormatter
        p.epilog = f"example:\n  {EXAMPLES[name]}"
    return parser


def _handler_key(args: argparse.Namespace) -> str:
    """`eval` of a bundle folder belongs to the export stage; of a checkpoint, to train."""
    if args.command == "eval" and os.path.isdir(args.target):
        return "eval-bundle"
    return args.command


def _load_handler(command: str) -> Callable[[argparse.Namespace], int | None]:
    target, extra = HANDLERS[command]
    module_name, func = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except MissingExtraError:
        raise
    except ImportError as e:
        missing = (e.name or "a dependency").split(".")[0]
        if missing == "genedge":
            raise  # our own module is broken: a bug, keep the traceback
        extra = MODULE_EXTRAS.get(missing, extra)
        raise MissingExtraError(missing, extra, purpose=f"`genedge {command}`") from e
    return getattr(module, func)


def _missing_extra(command: str, e: ImportError) -> MissingExtraError | None:
    """An optional package that a handler imports where it uses it, as the extra to install."""
    missing = (e.name or "").split(".")[0]
    extra = MODULE_EXTRAS.get(missing)
    return MissingExtraError(missing, extra, purpose=f"`genedge {command}`") if extra else None


# subcommand -> its single-file outputs (argparse dest, flag, suffixes of what it writes),
# vetted before any work
_JSON, _PNG = (".json",), (".png",)
OUTPUT_FILES: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "sample": (("out", "--out", _PNG),),
    "live": (("video", "--video", (".mp4", ".avi")), ("json_out", "--json", _JSON)),
    "eval": (("json_out", "--json", _JSON),),
    "bench": (
        ("json_out", "--json", _JSON),
        ("markdown", "--markdown", (".md", ".markdown")),
        ("plot", "--plot", _PNG),
    ),
}


def check_output_files(args: argparse.Namespace) -> None:
    """Apply the output contract (``genedge.outputs``) to a command's single-file outputs."""
    for dest, flag, suffixes in OUTPUT_FILES.get(args.command, ()):
        value = getattr(args, dest, None)
        if value:
            check_output_file(value, flag=flag, suffixes=suffixes)


def _internal_error(command: str, e: BaseException) -> int:
    """A bug: one line on stderr naming where the traceback was saved (exit 1)."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    if os.environ.get("GENEDGE_DEBUG"):
        sys.stderr.write(text)
    where = "(set GENEDGE_DEBUG=1 to print it)"
    try:
        fd, path = tempfile.mkstemp(prefix="genedge-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(f"genedge {__version__}: genedge {command}\n{text}")
        where = f"saved in {path}"
    except OSError:
        pass
    print(
        f"genedge {command}: internal error: {type(e).__name__}: {printable(str(e))}. This is a bug "
        f"in genedge; please report it with the traceback {where}.",
        file=sys.stderr,
    )
    return 1


def _environment_error(command: str, e: BaseException) -> int | None:
    """Errors of the machine rather than of genedge: a file we cannot read, no memory."""
    if isinstance(e, MemoryError):
        print(
            f"genedge {command}: error: out of memory. Ask for less (fewer samples, a smaller "
            "batch) or free memory.",
            file=sys.stderr,
        )
        return 3
    if isinstance(e, OSError) and e.errno is not None:
        name = f" '{printable(e.filename)}'" if e.filename else ""
        print(
            f"genedge {command}: error:{name} {printable(e.strerror or str(e))}.", file=sys.stderr
        )
        return 2
    return None


class LogLine(logging.Formatter):
    """A genedge log record as the CLI prints it: its message through ``printable``, so a
    name, path or ``$GENEDGE_CACHE`` value in it reaches the terminal escaped, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), MESSAGE_CHARS)


@contextlib.contextmanager
def log_lines() -> Iterator[None]:
    """genedge's warnings on stderr through ``LogLine`` while a command runs (in place of
    Python's last-resort handler, which prints them raw)."""
    logger = logging.getLogger("genedge")
    if any(isinstance(h.formatter, LogLine) for h in logger.handlers):
        yield  # a command run by a command (demo): the outer one's handler prints
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(LogLine("%(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    if not args.command:
        parser.print_help()
        return 0
    try:
        with sigint_watch(f"genedge {args.command}"), log_lines():
            check_output_files(args)
            handler = _load_handler(_handler_key(args))
            return int(handler(args) or 0)
    except GenedgeError as e:
        if isinstance(e, MissingExtraError) and not e.purpose:  # a lazy module's first use
            e = MissingExtraError(e.module, e.extra, purpose=f"`genedge {args.command}`")
        print(f"genedge {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"genedge {args.command}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # genedge's handlers never exit: this came from a user's module
        print(
            f"genedge {args.command}: error: a module genedge ran (--module) called "
            f"sys.exit({printable(repr(e.code), 60)}); nothing was written. Guard script code "
            "with `if __name__ == '__main__':`.",
            file=sys.stderr,
        )
        return 2
    except ImportError as e:  # a lazily imported optional package; anything else is a bug
        missing = _missing_extra(args.command, e)
        if missing is None:
            return _internal_error(args.command, e)
        print(f"genedge {args.command}: error: {missing}", file=sys.stderr)
        return missing.exit_code
    except Exception as e:  # anything else is a bug, or the machine's (disk, memory)
        code = _environment_error(args.command, e)
        return code if code is not None else _internal_error(args.command, e)


if __name__ == "__main__":
    raise SystemExit(main())

"""``genedge export SOURCE``: which exporter a command line names, and its arguments.

A genedge checkpoint goes to ``bundle.export_bundle``, an ``.onnx`` file to
``source_onnx.export_onnx_file``, ``--module FILE.py:NAME`` to ``byo.export_module_file``,
a Hugging Face folder (``config.json`` inside) to ``text_source.export_hf_folder``, and a
``train ar --arch transformer`` checkpoint to it through a temporary Llama folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from genedge.errors import BadInputError, printable
from genedge.export.bundle import bundle_lock, export_bundle, source_path
from genedge.export.options import ExportOptions, validate_export_options
from genedge.export.routes.byo import (
    GeneratorSpec,
    Log,
    export_module_file,
    parse_output_range,
    parse_shape,
    validate_spec,
)
from genedge.export.routes.source_onnx import export_onnx_file, onnx_spec_from_args
from genedge.export.routes.text_module import export_text_module
from genedge.export.routes.text_source import HELD_OUT_CHARS, export_hf_folder, is_hf_folder
from genedge.manifest import sha256_file
from genedge.train.data import load_text_data, split_text


def _module_args(text: str | None) -> Any:
    from genedge.train.user_module import parse_module_args

    return parse_module_args(text)


BYO_FLAGS = (
    "module",
    "weights",
    "module_args",
    "latent_dim",
    "num_classes",
    "output_range",
    "trust_output_range",
    "latent_shape",
    "latent_dist",
    "latent_input",
    "label_input",
    "image_output",
)


def spec_from_args(args: Any, *, latent_dim: int | None = None) -> GeneratorSpec:
    """GeneratorSpec from the ``genedge export`` flags (``latent_dim`` when detected elsewhere)."""
    z = args.latent_dim if args.latent_dim is not None else latent_dim
    if z is None:
        raise BadInputError(
            "--module needs --latent-dim Z (the size of the generator's latent vector).",
            hint="For the classic DCGAN: --latent-dim 100 --latent-shape 100,1,1",
        )
    return GeneratorSpec(
        latent_dim=z,
        num_classes=args.num_classes or 0,
        output_range=parse_output_range(args.output_range) if args.output_range else (-1.0, 1.0),
        latent_shape=parse_shape(args.latent_shape),
        latent_dist=args.latent_dist or "normal",
        check_range=not args.trust_output_range,
    )


def export_transformer_checkpoint(ckpt: Path, opts: ExportOptions, log: Log) -> Path:
    """A ``train ar --arch transformer`` checkpoint: the same weights under Llama names in a
    temporary Hugging Face folder, exported as one; the manifest names the checkpoint."""
    import tempfile

    from genedge.train.checkpoint import hf_folder_from_checkpoint, read_checkpoint_info

    info = read_checkpoint_info(ckpt)
    source = {
        "type": "checkpoint",
        "checkpoint": ckpt.name,
        "path": source_path(ckpt, opts.out),
        "sha256": sha256_file(ckpt),
        "step": info.step,
        "model_type": "llama",
        **({"data": info.meta["data"]} if info.meta.get("data") else {}),
    }
    with tempfile.TemporaryDirectory(prefix="genedge-llama-") as tmp:
        folder = hf_folder_from_checkpoint(ckpt, Path(tmp) / ckpt.stem)
        if opts.eval_data is None:
            held = _held_out_file(info.meta.get("data"), Path(tmp))
            if held is not None:
                data = printable(info.meta["data"])
                log(f"held-out text: the part of {data} that training held out ({held.name})")
                opts = dataclasses.replace(opts, eval_data=str(held))
        return export_hf_folder(folder, opts, log=log, source=source)


def _held_out_file(data: str | None, folder: Path) -> Path | None:
    """The start of the held-out part (``split_text``) of the text a checkpoint trained on,
    written to ``folder``; None when that text cannot be read here (then export scores its
    default text)."""
    if not data:
        return None
    try:
        text = load_text_data(data).text
    except BadInputError:
        return None
    path = folder / f"{Path(data).name}.held-out.txt"  # the name the manifest records
    path.write_text(split_text(text)[1][:HELD_OUT_CHARS], encoding="utf-8")
    return path


def export_from_args(args: Any, opts: ExportOptions, log: Log) -> Path:
    """``genedge export``: a checkpoint, an ONNX file (SOURCE ends in .onnx) or ``--module``.

    ``--out``'s lock is taken first, before any source is read, imported or loaded: a second
    export into the same folder is refused (exit 4) at once, not after minutes of work.
    """
    check_arguments(args, opts)  # flag errors first: before torch or the user's file loads
    module_file = opts.module.rsplit(":", 1)[0] if opts.module else None
    inputs = (args.checkpoint, module_file, args.weights, opts.calib_data, opts.eval_data)
    sources = tuple(Path(p) for p in inputs if p and str(p).lower() != "none")
    with bundle_lock(Path(opts.out), sources=sources):
        return _export(args, opts, log)


def check_arguments(args: Any, opts: ExportOptions) -> None:
    """The errors the flags alone show (BadInputError), found without importing torch, a
    model library or the user's file."""
    validate_export_options(opts)
    source = args.checkpoint
    if opts.module:
        if source:
            raise BadInputError(
                f"genedge export received both SOURCE '{source}' and --module; pass one.",
                hint="--module FILE.py:NAME --weights W exports your module; SOURCE is a "
                "checkpoint or an .onnx file.",
            )
        if not args.weights:
            raise BadInputError(
                "--module needs --weights W: without it the bundle would hold the module's "
                "untrained initial weights.",
                hint="Pass the trained weights (.safetensors or .pt); if NAME already returns a "
                "trained module (a factory that loads its own weights), pass --weights none.",
            )
        if not getattr(args, "tokenizer", None):  # --tokenizer: a causal LM (text_module)
            validate_spec(spec_from_args(args))
    elif not source:
        raise BadInputError(
            "genedge export needs SOURCE (a checkpoint or an .onnx file) or --module FILE.py:NAME.",
            hint="For example: genedge export run/ckpt.safetensors --out bundle",
        )


def _export(args: Any, opts: ExportOptions, log: Log) -> Path:
    source = args.checkpoint
    if opts.module and getattr(args, "tokenizer", None):
        return export_text_module(
            opts.module,
            None if args.weights.lower() == "none" else args.weights,
            args.tokenizer,
            opts,
            module_args=_module_args(args.module_args),
            log=log,
        )
    if opts.module:
        return export_module_file(
            opts.module,
            None if args.weights.lower() == "none" else args.weights,
            opts.out,
            spec_from_args(args),
            module_args=_module_args(args.module_args),
            opts=opts,
            log=log,
        )
    if is_hf_folder(source):
        return export_hf_folder(Path(source), opts, log=log)
    from genedge.train.transformer import is_transformer_checkpoint

    if is_transformer_checkpoint(source):
        return export_transformer_checkpoint(Path(source), opts, log)
    if str(source).lower().endswith(".onnx"):
        return export_onnx_file(Path(source), opts, onnx_spec_from_args(args), log=log)
    given = [f"--{f.replace('_', '-')}" for f in BYO_FLAGS if getattr(args, f, None) is not None]
    if given:
        raise BadInputError(
            f"{', '.join(given)} apply to your own generator (--module or an .onnx SOURCE); "
            f"'{source}' is a genedge checkpoint, which records all of that itself.",
            hint="Drop those flags, or pass --module FILE.py:NAME / MODEL.onnx.",
        )
    return export_bundle(opts, log=log)

"""The CLI and the options agree: a flag left out means the options' default, and every choice
list is the constant the options validate against (``genedge/cli.py`` restates none)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from pathlib import Path

import pytest

from genedge.cli import build_parser, option_default
from genedge.export.options import (
    CALIB_METHODS,
    OUTPUT_FORMATS,
    TRT_PATHS,
    ExportOptions,
    parse_profiles,
)
from genedge.precisions import RUN_PRECISIONS
from genedge.runtime.latents import WALKS
from genedge.runtime.registry import AUTO, names
from genedge.runtime.stream import LATE_POLICIES
from genedge.train.options import (
    ARCHS,
    FAMILY_DEFAULTS,
    KINDS,
    RNN_CELLS,
    TOKENIZERS,
    TRANSFORMER_DEFAULTS,
    TrainOptions,
)


def _sub(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _flag(command: str, flag: str) -> argparse.Action:
    return next(a for a in _sub(command)._actions if flag in a.option_strings or a.dest == flag)


def test_option_default_reads_the_dataclass():
    assert option_default(ExportOptions, "precisions") == list(ExportOptions.precisions)
    assert option_default(ExportOptions, "calib_method") == ExportOptions.calib_method
    with pytest.raises(StopIteration):
        option_default(ExportOptions, "no_such_field")


def test_export_flags_left_out_give_the_options_defaults():
    from genedge.export.commands import options_from_args

    args = build_parser().parse_args(["export", "g.safetensors", "--out", "b"])
    got = options_from_args(args)
    assert got == ExportOptions(source=Path("g.safetensors"), out=Path("b"))
    assert parse_profiles(args.trt_profile) == ExportOptions.profiles


def test_export_module_is_its_own_field_and_source_its_weights():
    from genedge.export.commands import options_from_args

    argv = ["export", "--module", "g.py:G", "--weights", "w.safetensors", "--out", "b"]
    got = options_from_args(build_parser().parse_args(argv))
    assert (got.module, got.source) == ("g.py:G", Path("w.safetensors"))
    plain = options_from_args(build_parser().parse_args(["export", "m.onnx", "--out", "b"]))
    assert (plain.module, plain.source) == (None, Path("m.onnx"))
    # the module names no artifact: its identity is the source's hash, so keys do not move
    assert got.artifact_key("trt") == dataclasses.replace(got, module=None).artifact_key("trt")


def test_export_choices_are_the_constants_the_options_check():
    assert tuple(_flag("export", "--calib-method").choices) == CALIB_METHODS
    assert tuple(_flag("export", "--output-format").choices) == OUTPUT_FORMATS
    assert tuple(_flag("export", "--trt-path").choices) == TRT_PATHS
    assert ExportOptions.trt_path in TRT_PATHS


def test_train_flags_left_out_give_the_options_defaults():
    from genedge.train.commands import options_from_args

    args = build_parser().parse_args(["train", "ar", "--data", "stdlib-docs", "--out", "r"])
    got = options_from_args(args)
    assert got == TrainOptions(kind="ar", data="stdlib-docs", out=Path("r"))


def test_train_choices_and_shown_defaults_come_from_the_options():
    assert tuple(_flag("train", "kind").choices) == KINDS
    assert tuple(_flag("train", "--arch").choices) == ARCHS
    assert tuple(_flag("train", "--cell").choices) == RNN_CELLS
    assert tuple(_flag("train", "--tokenizer").choices) == TOKENIZERS
    text = _sub("train").format_help()
    d = TRANSFORMER_DEFAULTS
    assert f"a {d.layers}-layer, {d.d_model}-wide" in " ".join(text.split())
    assert f"(default: {d.vocab_size})" in " ".join(text.split())
    gan = FAMILY_DEFAULTS["gan"]
    assert f"gan {gan.latent_dim:g}" in _flag("train", "--latent-dim").help


def test_bench_flags_left_out_give_the_options_defaults():
    from genedge.bench.commands import options_from_args
    from genedge.bench.options import BASELINES, BenchOptions

    args = build_parser().parse_args(["bench", "b"])
    assert options_from_args(args) == BenchOptions(bundle=Path("b"))
    assert set(BenchOptions.baselines) <= set(BASELINES)
    for name in BASELINES:
        assert name in _flag("bench", "--baselines").help


def test_tune_flags_match_its_defaults():
    from genedge.runtime.tune import DEFAULT_BATCHES, DEFAULT_SECONDS

    args = build_parser().parse_args(["tune", "b"])
    assert tuple(args.batch) == DEFAULT_BATCHES
    assert f"default {DEFAULT_SECONDS:g} s" in _flag("tune", "--seconds").help


def test_runtime_flags_name_every_backend_and_precision_and_match_the_library():
    from genedge.runtime.sampler import Sampler
    from genedge.runtime.text import TextGenerator

    for command in ("sample", "live", "generate"):
        help_text = _flag(command, "--backend").help
        assert all(name in help_text for name in (AUTO, *names())), help_text
        assert all(p in _flag(command, "--precision").help for p in RUN_PRECISIONS)
        assert _flag(command, "--backend").default == AUTO
    assert tuple(_flag("live", "--walk").choices) == WALKS
    assert tuple(_flag("live", "--late").choices) == LATE_POLICIES
    bench_backends = _flag("bench", "--backend").help
    assert all(name in bench_backends for name in names())
    generate = inspect.signature(TextGenerator.generate).parameters
    args = build_parser().parse_args(["generate", "b"])
    for name in ("max_new_tokens", "temperature", "top_k", "top_p", "seed", "prompt"):
        assert getattr(args, name) == generate[name].default, name
    sample = inspect.signature(Sampler.sample).parameters
    args = build_parser().parse_args(["sample", "b", "--out", "x.png"])
    assert (args.seed, args.truncation) == (sample["seed"].default, sample["truncation"].default)
    args = build_parser().parse_args(["live", "b"])
    assert args.fps == inspect.signature(Sampler.stream).parameters["fps"].default

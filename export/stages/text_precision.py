"""Reduced precisions of a transformer ``decoder`` graph: weight-only int8/int4 and fp16.

Weight-only int8 and int4 replace every ``MatMul`` with a constant weight (the q/k/v/o
projections, the MLP and the language-model head) by ONNX Runtime's ``MatMulNBits``,
quantized block-wise along the input dimension by ONNX Runtime's own
``MatMulNBitsQuantizer``; activations, the KV cache and the embedding table stay float32.
``WEIGHT_ONLY`` holds each precision's recipes (tried in order until the gate passes one),
chosen by measured perplexity and decode speed (docs/text.md). fp16 is the image path's
conversion (``genedge.export.stages.fp16``): fp16 weights and math, fp32 I/O, and the
overflow guard keeping in fp32 every node whose activations leave the fp16 range on
calibration text.

No file here decides whether a precision is kept: ``genedge.export.checks.text_gate`` does, from
perplexity of held-out text.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genedge import lazy
from genedge.atomic import discard_staged
from genedge.export.checks.text_gate import gate_record, gate_text, reference_record, summary
from genedge.export.rewrites.sibling_matmuls import pack_sibling_matmuls
from genedge.export.routes.onnx_export import save_onnx
from genedge.export.stages.calibration import Feed
from genedge.export.stages.fp16 import fp16_from_onnx, name_nodes
from genedge.lazy import lazy_import
from genedge.runtime.perplexity import DEFAULT_WINDOW, TextScore, score_text
from genedge.runtime.select import open_file
from genedge.runtime.text_lm import KvDecoder

onnx = lazy_import("onnx")
numpy_helper = lazy_import("onnx.numpy_helper")
matmul_nbits_quantizer = lazy_import("onnxruntime.quantization.matmul_nbits_quantizer")

QUANTIZER_LOGGER = "onnxruntime.quantization.matmul_nbits_quantizer"


@dataclass(frozen=True)
class WeightOnlyRecipe:
    """One weight-only precision: ``bits`` per weight in blocks of ``block_size`` input rows,
    each block with its scale (and zero point unless ``symmetric``). ``accuracy_level`` is
    MatMulNBits' compute type on CPU (4: int8 activations, the fast path; 0/None: fp32)."""

    bits: int
    block_size: int
    symmetric: bool
    accuracy_level: int | None

    def record(self) -> dict[str, Any]:
        """The recipe as the manifest records it."""
        return {
            "method": "weight-only",
            "op": "com.microsoft.MatMulNBits",
            "quantizer": "onnxruntime MatMulNBitsQuantizer (default: round to nearest)",
            "bits": self.bits,
            "block_size": self.block_size,
            "symmetric": self.symmetric,
            "accuracy_level": self.accuracy_level or 0,
        }


# Each precision's recipes, tried in order: the first the perplexity gate passes is kept.
# Measured with examples/text_precision_recipes.py (README, "Transformer precisions"): accuracy
# level 4 (int8 compute on CPU) decodes faster than fp32, level 0 made int8 2-5x slower; the
# int8 recipes all sat within 0.05% of fp32's perplexity, so symmetric (no zero points); int4
# symmetric and asymmetric blocks were within 0.6% of each other, asymmetric is kept. Blocks
# of 128 input rows (the group size of GPTQ and AWQ) decode faster than blocks of 32 (fewer
# scales to read and apply: 0.61 vs 0.72 ms per token at int4, 0.85 vs 0.95 at int8, on the
# 27M reference); a model they cost too much perplexity on gets blocks of 32.
WEIGHT_ONLY: dict[str, tuple[WeightOnlyRecipe, ...]] = {
    "int8": (
        WeightOnlyRecipe(bits=8, block_size=128, symmetric=True, accuracy_level=4),
        WeightOnlyRecipe(bits=8, block_size=32, symmetric=True, accuracy_level=4),
    ),
    "int4": (
        WeightOnlyRecipe(bits=4, block_size=128, symmetric=False, accuracy_level=4),
        WeightOnlyRecipe(bits=4, block_size=32, symmetric=False, accuracy_level=4),
    ),
}


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Import and run ORT's quantizer without its log lines: its module calls
    ``logging.basicConfig(level=INFO)`` on import, which would switch the root logger of
    the calling program to INFO; the root logger's handlers and level are restored."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        lazy.load(matmul_nbits_quantizer)  # imported here: its import sets the root logger

        logging.getLogger(QUANTIZER_LOGGER).setLevel(logging.WARNING)
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def gemms_to_matmuls(model: Any) -> int:
    """Rewrite each ``Gemm(A, B[, C])`` with a constant 2-D ``B`` (no transposed A, alpha and
    beta 1) as ``MatMul(A, B)`` (+ ``Add C``), ``B`` transposed in place when ``transB``: the
    quantizer takes MatMuls only, and GPT-2's ``Conv1D`` layers export as Gemm. Same math;
    returns how many were rewritten."""
    inits = {t.name: t for t in model.graph.initializer}
    readers: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    nodes, done = [], 0
    for n in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        b = inits.get(n.input[1]) if n.op_type == "Gemm" else None
        plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
        if b is None or len(b.dims) != 2 or attrs.get("transA", 0) or not plain:
            nodes.append(n)
            continue
        if attrs.get("transB", 0):
            if readers[b.name] > 1:  # a weight shared with another node stays as it is
                nodes.append(n)
                continue
            b.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(b).T.copy(), b.name))
        has_c = len(n.input) > 2 and n.input[2]
        y = f"{n.output[0]}.matmul" if has_c else n.output[0]
        nodes.append(onnx.helper.make_node("MatMul", n.input[:2], [y], name=f"{n.name}.matmul"))
        if has_c:
            nodes.append(onnx.helper.make_node("Add", [y, n.input[2]], n.output, name=n.name))
        done += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return done


def weight_only_from_onnx(src: Path, dst: Path, recipe: WeightOnlyRecipe) -> list[Path]:
    """fp32 decoder ONNX ``src`` -> weight-only ``dst`` (MatMulNBits); returns the files written
    (``dst``, then its external data file for models past protobuf's 2 GiB)."""
    model = onnx.load(str(src))
    gemms_to_matmuls(model)
    pack_sibling_matmuls(model)  # a Llama MLP's gate and up: one MatMulNBits
    name_nodes(model)
    with _quiet_quantizer():
        quantizer = matmul_nbits_quantizer.MatMulNBitsQuantizer(
            model,
            bits=recipe.bits,
            block_size=recipe.block_size,
            is_symmetric=recipe.symmetric,
            accuracy_level=recipe.accuracy_level,
        )
        quantizer.process()
    return save_onnx(quantizer.model.model, dst)


def matmulnbits_count(path: Path) -> int:
    """How many MatMulNBits nodes ``path`` holds (0: the file runs its weights in float)."""
    model = onnx.load(str(path), load_external_data=False)
    return sum(n.op_type == "MatMulNBits" for n in model.graph.node)


def fp16_text_from_onnx(src: Path, dst: Path, feeds: list[Feed]) -> tuple[list[Path], list[str]]:
    """fp32 decoder ONNX ``src`` -> fp16 ``dst`` with fp32 I/O (the KV cache stays float32 at
    the graph's edge) and the overflow guard run on ``feeds``. Returns (files written, nodes
    kept in fp32)."""
    model = onnx.load(str(src))
    split_output_consumers(model)
    model, kept, _ = fp16_from_onnx(model, feeds)
    return save_onnx(model, dst), kept


def split_output_consumers(model: Any) -> int:
    """Give every graph output that other nodes also read (a layer's ``present`` keys and
    values, which attention reads too) an internal twin: the producer writes ``NAME.internal``,
    its readers read that, and an Identity writes ``NAME``. The fp16 converter keeps graph
    outputs fp32 by casting at the edge, but leaves such readers fed with the fp32 tensor
    (an ONNX type error at load). Returns how many outputs were split."""
    outputs = {o.name for o in model.graph.output}
    read = {i for n in model.graph.node for i in n.input}
    split = sorted(outputs & read)
    for name in split:
        twin = f"{name}.internal"
        for n in model.graph.node:
            n.input[:] = [twin if i == name else i for i in n.input]
            n.output[:] = [twin if o == name else o for o in n.output]
        model.graph.node.append(onnx.helper.make_node("Identity", [twin], [name], name=twin))
    return len(split)


def prefill_feeds(
    ids: np.ndarray, layers: int, kv_shape: tuple[int, ...], *, window: int, count: int = 4
) -> list[Feed]:
    """Up to ``count`` prefill inputs (batch 1, empty cache of ``kv_shape`` (1, H_kv, 0, D) per
    past input of ``layers`` layers) of ``window`` consecutive ``ids`` each, for the overflow
    guard (a decode step computes what a prefill's last position does)."""
    empty = np.zeros(kv_shape, np.float32)
    past = {f"past_key_values.{i}.{p}": empty for i in range(layers) for p in ("key", "value")}
    window = min(window, len(ids))
    starts = range(0, len(ids) - window + 1, window)[:count]
    return [
        {
            "input_ids": ids[s : s + window][None].astype(np.int64),  # (1, S)
            "position_ids": np.arange(window, dtype=np.int64)[None],  # (1, S)
            **past,
        }
        for s in starts
    ]


# ---------------------------------------------------------------- the export stages
def stage_text_precision(build: Any, precision: str) -> None:
    """Build ``precision``'s decoder graph in ``build.tmp``, score it and fp32 on held-out text
    through the runtime, and keep it (an artifact carrying the gate's record) or refuse it (no
    file; the record goes on the fp32 artifact's ``verification.refused`` and the reason into
    ``source.skipped``). A weight-only precision tries its recipes in order and keeps the first
    the gate passes; the kept record lists the recipes refused before it (``finer_after``).
    ``build`` is the export's ``text_source.TextBuild``."""

    texts = gate_texts(build)
    reference = fp32_score(build, texts)
    file = f"{build.spec.stem}.{precision}.onnx"
    refusals: list[dict[str, Any]] = []
    for recipe_in in WEIGHT_ONLY.get(precision, (None,)):
        build.log(f"{file}: building ({_what(precision, recipe_in)})")
        files, recipe = _build(build, precision, texts, recipe_in)
        if recipe.get("matmuls") == 0:  # a file labelled int4 that runs in float would be a lie
            _discard(build, files)
            build.skipped[precision] = "no MatMul or Gemm of the decoder has a constant weight"
            build.log(f"{precision} skipped: {build.skipped[precision]}")
            return
        score = score_file(build, build.tmp / file, texts.held_out)
        rec = gate_record(precision, score, reference, texts.source)
        build.log(f"{file}: {summary(rec)}")
        if rec["quality_approved"]:
            if refusals:
                recipe["finer_after"] = refusals
            build.add(
                file,
                format="onnx",
                precision=precision,
                verification=rec,
                recipe=recipe,
                quality_approved=True,
            )
            for extra in files[1:]:
                build.add(extra.name, format="onnx-data", precision=precision)
            return
        _discard(build, files)
        refusals.append(_refusal(rec, recipe))
    refused = _fp32_artifact(build)["verification"].setdefault("refused", {})
    refused[precision] = dict(rec, recipe=recipe)
    if len(refusals) > 1:
        refused[precision]["recipe"]["finer_after"] = refusals[:-1]
    build.skipped[precision] = f"refused by the perplexity gate: {summary(rec)}"
    build.log(f"{precision} skipped: {build.skipped[precision]}")


def _discard(build: Any, files: list[Path]) -> None:
    """Remove a refused precision's files from this export's staging folder (``build.tmp``)."""
    for f in files:
        discard_staged(build.tmp, f)


def _refusal(rec: dict[str, Any], recipe: dict[str, Any]) -> dict[str, Any]:
    """What the manifest keeps of a recipe the gate refused before a finer one was tried."""
    keep = ("perplexity", "perplexity_ratio", "bound", "verdict")
    return {"block_size": recipe.get("block_size"), **{k: rec.get(k) for k in keep}}


def _what(precision: str, recipe: WeightOnlyRecipe | None) -> str:
    if recipe is None:
        return "fp16 weights and math, fp32 I/O, overflow guard"
    return f"weight-only MatMulNBits, {recipe.bits} bits, blocks of {recipe.block_size}"


def _build(
    build: Any, precision: str, texts: Any, recipe: WeightOnlyRecipe | None
) -> tuple[list[Path], dict[str, Any]]:
    stem = build.spec.stem
    src, dst = build.tmp / f"{stem}.onnx", build.tmp / f"{stem}.{precision}.onnx"
    if recipe is None:
        files, kept = fp16_text_from_onnx(src, dst, guard_feeds(build, texts.calibration))
        return files, {"kept_float": kept, "overflow_guard_text": texts.calibration_source}
    files = weight_only_from_onnx(src, dst, recipe)
    return files, dict(recipe.record(), matmuls=matmulnbits_count(dst))


def tokenizer_of(build: Any) -> Any:
    """The build's tokenizer (its staged ``tokenizer.json``), for scoring and calibration."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(build.tmp / build.hf.config.tokenizer))


def score_window(build: Any) -> int:
    """Tokens per scored window: ``DEFAULT_WINDOW``, or the model's context if shorter."""
    return min(DEFAULT_WINDOW, build.hf.config.max_context)


GUARD_WINDOWS = 4  # prefill windows of calibration text the overflow guard runs


def guard_feeds(build: Any, text: str) -> list[Feed]:
    """Prefill feeds of ``text`` for the fp16 overflow guard (``GUARD_WINDOWS`` windows)."""
    c = build.hf.config
    ids = tokenizer_of(build).encode(text[:200_000], add_special_tokens=False).ids
    shape = (1, c.num_kv_heads, 0, c.head_dim)
    return prefill_feeds(
        np.asarray(ids, np.int64),
        c.num_layers,
        shape,
        window=score_window(build),
        count=GUARD_WINDOWS,
    )


def gate_texts(build: Any) -> Any:
    """The held-out and calibration texts of the build's options (``gate_text``)."""
    o = build.opts
    return gate_text(o.eval_data, build.trained_on, o.calib_data)


def open_decoder(path: Path, build: Any) -> Any:
    """The runtime's ``KvDecoder`` on the ONNX file ``path`` (ORT CPU), as generation runs it."""

    backend = open_file(path, inputs=build.spec.inputs, outputs=build.spec.outputs)
    return KvDecoder(backend, build.hf.config)


def score_file(build: Any, path: Path, text: str) -> Any:
    """``path`` scored on ``text`` through the runtime's ``KvDecoder`` on ORT CPU (as
    generation runs it)."""

    decoder = open_decoder(path, build)
    try:
        return score_text(
            decoder,
            tokenizer_of(build),
            text,
            window=score_window(build),
            bos_token_id=build.hf.config.bos_token_id,
        )
    finally:
        decoder.backend.close()


def fp32_score(build: Any, texts: Any) -> Any:
    """fp32's score on the held-out text: measured once per export and recorded on the fp32
    artifact's verification."""

    ver = _fp32_artifact(build)["verification"]
    if "perplexity" in ver:
        return TextScore(
            math.log(ver["perplexity"]), ver["perplexity_tokens"], ver["perplexity_chars"]
        )
    if texts.note:
        build.log(texts.note)
    score = score_file(build, build.tmp / f"{build.spec.stem}.onnx", texts.held_out)
    ver.update(reference_record(score, texts.source))
    build.log(
        f"{build.spec.stem}.onnx: perplexity {score.perplexity:.4g} on {score.tokens} tokens "
        f"of {texts.source}"
    )
    return score


def _fp32_artifact(build: Any) -> dict[str, Any]:
    return next(
        a for a in build.artifacts if a["format"] == "onnx" and a.get("precision") == "fp32"
    )


TEXT_PRECISION_STAGES: dict[str, Callable[[Any], None]] = {
    p: functools.partial(stage_text_precision, precision=p) for p in ("fp16", *WEIGHT_ONLY)
}

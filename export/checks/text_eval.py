"""``genedge eval BUNDLE --data FILE``: perplexity and bits per character of a transformer
bundle's precisions on a text (docs/text.md). No torch, no transformers.

Each ONNX artifact of the ``decoder`` graph is opened as users open it
(``TextGenerator.open(bundle, backend="ort-cpu", precision=...)``: hashes verified first)
and scores the same tokens with ``genedge.runtime.perplexity``; the ratio to fp32's
perplexity is the number the export gate bounds.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from genedge.errors import BadInputError, printable
from genedge.manifest import TRANSFORMER_GRAPH, Manifest
from genedge.runtime import registry

MAX_TEXT_BYTES = 64 << 20  # a held-out text to score; far more than MAX_EVAL_TOKENS need
MAX_EVAL_TOKENS = 16384  # tokens scored per precision (the text's first ones)


def is_text_bundle(manifest: Manifest) -> bool:
    """Whether ``manifest`` is a transformer language model's bundle."""
    return manifest.model.transformer is not None


def read_eval_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file (a BOM is dropped), or ``BadInputError`` saying what is wrong."""
    from genedge.readback import read_bytes

    raw = read_bytes(path, what="--data", limit=MAX_TEXT_BYTES, follow_symlinks=True)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInputError(
            f"--data '{printable(str(path))}' is not UTF-8: byte 0x{raw[e.start]:02x} at offset "
            f"{e.start}.",
            hint="Convert it, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`.",
        ) from None
    if len(text.strip()) < 2:
        raise BadInputError(
            f"--data '{printable(str(path))}' holds {len(text)} characters; expected a text "
            "to score (a few hundred characters or more)."
        )
    return text


def evaluate_text_bundle(
    manifest: Manifest,
    data: str | None,
    *,
    precisions: list[str] | None = None,
    max_tokens: int = MAX_EVAL_TOKENS,
) -> dict[str, Any]:
    """Perplexity and bits per character per ONNX artifact of ``manifest``'s decoder on the text
    file ``data``: ``{"bundle", "kind", "arch", "data", "artifacts": {file: {...}}}``.
    fp32 is scored whenever it is in the bundle (the reference of every ratio)."""
    from genedge.runtime.perplexity import DEFAULT_WINDOW, score_text
    from genedge.runtime.text import TextGenerator

    if not data:
        raise BadInputError(
            f"genedge eval on the transformer bundle '{printable(str(manifest.root))}' needs "
            "--data FILE: the text whose perplexity to report.",
            hint="For example: genedge eval BUNDLE --data held_out.txt --json metrics.json",
        )
    text = read_eval_text(data)
    arts = _artifacts(manifest, precisions)
    cfg = manifest.model.transformer
    result: dict[str, Any] = {
        "bundle": str(manifest.root),
        "kind": manifest.kind,
        "arch": "transformer",
        "data": Path(data).name,
        "artifacts": {},
    }
    cpu = registry.reference().name  # the same CPU backend for every artifact
    for a in arts:
        with TextGenerator.open(manifest.root, backend=cpu, precision=a.precision) as lm:
            score = score_text(
                lm.decoder,
                lm.tokenizer,
                text,
                window=min(DEFAULT_WINDOW, cfg.max_context),
                max_tokens=max_tokens,
                bos_token_id=cfg.bos_token_id,
            )
        result["artifacts"][a.file] = {
            "precision": a.precision,
            "backend": cpu,
            **score.to_dict(),
        }
    _add_ratios(result["artifacts"])
    return result


def _artifacts(manifest: Manifest, precisions: list[str] | None) -> list[Any]:
    found = manifest.find(graph=TRANSFORMER_GRAPH, format="onnx")
    have = [a.precision or "fp32" for a in found]
    if precisions is not None:
        missing = [p for p in precisions if p not in have]
        if missing:
            raise BadInputError(
                f"Bundle has no {', '.join(missing)} decoder graph; it has {', '.join(have)}.",
                hint=f"Pass --precision with some of: {','.join(have)}.",
            )
    wanted = set(have if precisions is None else [*precisions, "fp32"])
    return [a for a in found if (a.precision or "fp32") in wanted]


def _add_ratios(records: dict[str, dict[str, Any]]) -> None:
    ref = next((r for r in records.values() if r["precision"] == "fp32"), None)
    if ref is None or not ref["perplexity"]:
        return
    for r in records.values():
        ppl = r["perplexity"]
        r["perplexity_ratio"] = None if ppl is None else ppl / ref["perplexity"]


def text_metrics_text(metrics: dict[str, Any]) -> str:
    """The result as ``genedge eval`` prints it: one line per artifact."""
    lines = [
        f"perplexity of {printable(metrics['bundle'], None)} on {printable(metrics['data'])} "
        "(ort-cpu)"
    ]
    for file, r in metrics["artifacts"].items():
        ratio = r.get("perplexity_ratio")
        lines.append(
            f"  {printable(file):<20} {r['precision']:<5} perplexity {_num(r['perplexity'])}"
            f"  bits/char {_num(r['bits_per_char'])}"
            + ("" if ratio is None else f"  x{ratio:.4f} of fp32")
            + f"  ({r['tokens']} tokens, {r['chars']} chars)"
        )
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "non-finite" if x is None or not math.isfinite(x) else f"{x:.4f}"


def eval_text_command(args: Any, manifest: Manifest) -> int:
    """``genedge eval BUNDLE --data FILE [--precision ...] [--json OUT]`` on a text bundle."""
    import json

    from genedge.atomic import atomic_write_text

    metrics = evaluate_text_bundle(manifest, args.data, precisions=args.precision)
    print(text_metrics_text(metrics))
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(metrics, indent=2) + "\n")
    return 0

"""The perplexity gate of a transformer language model's reduced precisions (docs/text.md).

Each reduced-precision ``decoder`` graph and the fp32 one score the same held-out text
through ``genedge.runtime`` (``runtime.perplexity``: the runtime's ORT CPU backend, as
users run the files). A precision is kept when its perplexity is at most ``bound`` times
fp32's (``PERPLEXITY_BOUNDS``; a ratio exactly at the bound passes); a refused precision
keeps no file, and the numbers and the reason go into the manifest all the same: on the
fp32 artifact's ``verification.refused`` and in ``source.skipped``.

Held-out text: ``--eval-data FILE`` when given; else the last 5% of the corpus the model
was trained on (genedge's own models, the slice training held out too); else the last 5%
of ``stdlib-docs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genedge.errors import printable
from genedge.runtime import registry

# perplexity(precision) / perplexity(fp32) allowed, per precision (docs/text.md, README)
PERPLEXITY_BOUNDS: dict[str, float] = {"fp16": 1.01, "int8": 1.03, "int4": 1.10}
RATIO_RTOL = 1e-9  # relative slack when comparing a ratio with its bound (float rounding)
HOLDOUT = 0.05  # the trailing fraction of a corpus held out (as training holds it out)
STDLIB_DOCS = "stdlib-docs"


@dataclass(frozen=True)
class GateText:
    """The text the gate scores (``held_out``, described by ``source``) and the text the fp16
    overflow guard measures activation ranges on (``calibration``)."""

    held_out: str
    source: str
    calibration: str
    calibration_source: str
    note: str | None = None  # said once in the export log


def gate_text(eval_data: str | None, trained_on: str | None, calib_data: str | None) -> GateText:
    """The gate's texts: ``--eval-data`` FILE, else the held-out slice of the training corpus
    (``trained_on``: ``stdlib-docs`` or a text file that is still there), else of
    ``stdlib-docs``. The guard reads ``--calib-data`` FILE, else the corpus before its held-out
    slice (the FILE itself for ``--eval-data``)."""
    from genedge.train.data import load_text_data, split_text

    note = None
    if not eval_data and trained_on not in (None, STDLIB_DOCS) and not Path(trained_on).is_file():
        note = (
            f"the training corpus '{printable(trained_on)}' is not at hand, so the perplexity "
            f"gate scores {STDLIB_DOCS}; pass --eval-data FILE to score held-out text of your own"
        )
        trained_on = None
    if eval_data:
        data = load_text_data(eval_data)
        held, source = data.text, f"--eval-data {data.name}"
        calib, calib_source = held, source
    else:
        corpus = trained_on or STDLIB_DOCS
        data = load_text_data(corpus)
        calib, held = split_text(data.text, HOLDOUT)
        what = "the training corpus " if trained_on else ""
        source = f"{what}{data.name} (last {HOLDOUT:.0%}, held out)"
        calib_source = f"{data.name} (first {1 - HOLDOUT:.0%})"
    if calib_data:
        data = load_text_data(calib_data)
        calib, calib_source = data.text, f"--calib-data {data.name}"
    return GateText(held, source, calib, calib_source, note)


def within_bound(ratio: float, bound: float) -> bool:
    """``ratio <= bound`` up to float rounding; NaN and inf never pass."""
    return math.isfinite(ratio) and ratio <= bound * (1.0 + RATIO_RTOL)


def gate_record(
    precision: str,
    score: Any,
    reference: Any,
    text_source: str,
    *,
    bound: float | None = None,
) -> dict[str, Any]:
    """The verification record of ``precision`` (scores are ``runtime.perplexity.TextScore``s
    of the precision and of fp32 on the same tokens): perplexities, ratio, bound, tokens,
    where the text came from, the verdict and why."""
    bound = PERPLEXITY_BOUNDS[precision] if bound is None else bound
    ratio = score.perplexity / reference.perplexity if math.isfinite(score.perplexity) else math.inf
    passed = within_bound(ratio, bound)
    return {
        "perplexity": _finite_or_none(score.perplexity),
        "perplexity_fp32": reference.perplexity,
        "perplexity_ratio": _finite_or_none(ratio),
        "bound": bound,
        "bits_per_char": _finite_or_none(score.bits_per_char),
        "bits_per_char_fp32": reference.bits_per_char,
        "tokens": score.tokens,
        "text": text_source,
        "metrics": {"bpc": _finite_or_none(score.bits_per_char)},  # the export summary's column
        "metrics_fp32": {"bpc": reference.bits_per_char},
        "backend": registry.reference().name,
        "quality_approved": passed,
        "checks": ["perplexity"],
        "verdict": "pass" if passed else "fail",
        "reason": _reason(precision, score.perplexity, reference.perplexity, ratio, bound, passed),
    }


def reference_record(score: Any, text_source: str) -> dict[str, Any]:
    """What the fp32 artifact's verification gains: its own perplexity on the gate's text
    (``tokens`` and ``text`` there describe its parity check, hence the prefixed names)."""
    return {
        "perplexity": score.perplexity,
        "bits_per_char": score.bits_per_char,
        "perplexity_tokens": score.tokens,
        "perplexity_chars": score.chars,
        "perplexity_text": text_source,
    }


def _finite_or_none(x: float) -> float | None:
    """JSON has no inf or NaN: a non-finite perplexity is recorded as null (and fails)."""
    return x if math.isfinite(x) else None


def _reason(
    precision: str, ppl: float, ppl32: float, ratio: float, bound: float, passed: bool
) -> str:
    if not math.isfinite(ppl):
        return f"{precision} gives non-finite logits on the held-out text (fp32 perplexity {ppl32:.4g})"
    verb = "within" if passed else "past"
    return (
        f"{precision} perplexity {ppl:.4g} is {ratio:.4f}x fp32's {ppl32:.4g}, {verb} the "
        f"bound {bound:g}x"
    )


def summary(rec: dict[str, Any]) -> str:
    """A gate record in one line, for the export log."""
    return f"{rec['reason']} ({rec['tokens']} tokens of {printable(rec['text'])})"

"""Which ONNX file of a bundle a backend runs: the precision asked for, or its default.

Precision when not given: the backend's ``prefer`` list (``BackendSpec``), best first, where
the bundle's artifact qualifies: approved at export when the precision table says it needs
approval (int8, bf16, int4), else its verification passed (fp16), and this machine runs it
(bf16 needs a CPU that has it); on the reference CPU backend export's speed record decides
first when it has one (``speed_record.fastest_in_record``). Else fp32.
"""

from __future__ import annotations

import dataclasses
import logging

from genedge.errors import BadInputError, IncompatibleEnvironmentError, printable
from genedge.manifest import Artifact, Manifest
from genedge.precisions import INFERENCE_PRECISIONS, REFERENCE
from genedge.precisions import precision as precision_row

from . import registry
from .backend import BackendSpec
from .speed_record import fastest_in_record

log = logging.getLogger("genedge.runtime")


def onnx_artifacts(manifest: Manifest, graph: str) -> dict[str, Artifact]:
    """``{precision: Artifact}`` of ``graph``'s ONNX files, plus the precisions the fp32 file
    runs in by a backend's hint (``bf16``): those appear as the fp32 file with the hint's
    precision, verification and approval."""
    found = {a.precision or REFERENCE: a for a in manifest.find(graph=graph, format="onnx")}
    fp32 = found.get("fp32")
    hints = fp32.inference_precisions if fp32 is not None else None
    for prec, rec in hints.entries.items() if hints is not None else ():
        found[prec] = dataclasses.replace(
            fp32,
            precision=prec,
            verification=rec.verification,
            quality_approved=rec.quality_approved,
            speed=None,
            inference_precisions=None,
        )
    return found


def qualifies(a: Artifact) -> bool:
    """Whether ``auto`` may pick ``a`` unasked: approved at export where its precision needs
    approval, else verified."""
    row = precision_row(a.precision or REFERENCE)
    return a.verification.passed and (a.quality_approved or not row.needs_approval)


def require_supported(spec: BackendSpec, precision: str) -> None:
    """Refuse (exit 3) a precision this machine cannot run on ``spec`` (bf16 without the CPU)."""
    ok, why = spec.supports(precision)
    if not ok:
        raise IncompatibleEnvironmentError(
            f"Precision {precision} is not available here: {why}.",
            hint=f"Pass --precision {REFERENCE} (or another the bundle holds), or run on a "
            f"machine where backend '{spec.name}' runs {precision}.",
        )


def _hinted(manifest: Manifest, graph: str, spec: BackendSpec, precision: str) -> Artifact:
    """The fp32 file for a precision the bundle holds no record of (``bf16`` not gated at
    export): runs when asked for by name on its backend, with a warning."""
    runner = INFERENCE_PRECISIONS[precision]
    if spec.name != runner:
        raise BadInputError(
            f"Precision {precision} runs on backend '{runner}' only; received backend '{spec.name}'.",
            hint=f"Pass --backend {runner} --precision {precision}.",
        )
    fp32 = onnx_artifacts(manifest, graph).get(REFERENCE)
    if fp32 is None:
        raise BadInputError(f"Bundle has no fp32 ONNX graph for '{graph}' to run in {precision}.")
    log.warning(
        "%s in %s was not quality-gated at export (no manifest record); running it because it "
        "was asked for. Re-export with --precision %s on a CPU that has it to gate it.",
        printable(fp32.file),
        precision,
        precision,
    )
    return dataclasses.replace(fp32, precision=precision, quality_approved=False)


def onnx_artifact(
    manifest: Manifest, graph: str, spec: BackendSpec | str, precision: str | None
) -> Artifact:
    """The ONNX file ``spec`` (or the backend of that name) runs for ``graph``: the precision
    asked for, or its default."""
    spec = registry.spec(spec) if isinstance(spec, str) else spec
    found = onnx_artifacts(manifest, graph)
    if precision in INFERENCE_PRECISIONS and (
        spec.name != INFERENCE_PRECISIONS[precision] or (precision not in found and found)
    ):
        return _hinted(manifest, graph, spec, precision)  # raises on another backend
    found = {
        p: a for p, a in found.items() if p in spec.precisions or p not in INFERENCE_PRECISIONS
    }
    if not found:
        raise BadInputError(
            f"Bundle '{manifest.root}' has no ONNX graph '{graph}'.",
            hint="Re-export the bundle with `genedge export`.",
        )
    if precision is not None:
        return _asked(found, graph, spec, precision)
    return default_artifact(found, graph, spec)


def _asked(found: dict[str, Artifact], graph: str, spec: BackendSpec, precision: str) -> Artifact:
    if precision not in found:
        raise BadInputError(
            f"Bundle has no {precision} ONNX graph for '{graph}'; it has {', '.join(sorted(found))}.",
            hint=f"Pass --precision {sorted(found)[0]}, or re-export with --precision {precision}.",
        )
    if precision not in spec.precisions:
        raise BadInputError(
            f"Backend '{spec.name}' runs {', '.join(spec.precisions)}; received precision "
            f"{precision}.",
            hint="Pass another --backend or --precision.",
        )
    if not found[precision].verification.passed:
        log.warning(
            "%s failed its export verification; running it because it was asked for",
            printable(found[precision].file),
        )
    return found[precision]


def default_artifact(found: dict[str, Artifact], graph: str, spec: BackendSpec) -> Artifact:
    """The precision ``spec`` runs unasked: export's speed record on the reference backend,
    else the first of ``spec.prefer`` that qualifies here, else fp32."""
    if spec.reference:
        measured = fastest_in_record(found)
        if measured is not None:
            log.info(
                "precision auto -> %s on %s: %s", measured[0].precision, spec.name, measured[1]
            )
            return measured[0]
    for p in spec.prefer:
        a = found.get(p)
        if a is None or not qualifies(a) or not spec.supports(p)[0]:
            continue
        why = (
            "quality-approved" if precision_row(p).needs_approval else "it passed its export checks"
        )
        log.info("precision auto -> %s on %s: %s", p, spec.name, why)
        return a
    if REFERENCE not in found:
        raise BadInputError(f"Bundle has no fp32 ONNX graph for '{graph}'; pass --precision.")
    if len(found) > 1:
        log.info("precision auto -> fp32 on %s: no reduced precision qualifies", spec.name)
    return found[REFERENCE]

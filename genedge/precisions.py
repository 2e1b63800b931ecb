"""Every precision genedge knows, one row each: what export writes, what the runtime runs,
what bench times and what the CLI offers are read from this table.

A row says how the precision exists in a bundle (its own ONNX file with a suffix, or a way of
running the fp32 file: ``bf16`` is OpenVINO's inference hint), which model kinds it applies
to, whether ``auto`` may choose it only after export's quality gate approved it, the TensorRT
builder flags of the legacy precision path, and what it costs on a CPU (whether a CPU backend
computes in it, so that timing it there can pay off).
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_KINDS = ("gan", "vae")
TEXT_KINDS = ("ar",)


@dataclass(frozen=True)
class Precision:
    """One precision. ``suffix``: the ONNX file's infix (``model.<suffix>.onnx``; "" for the
    reference fp32 ``model.onnx``; None when the precision has no file of its own).
    ``runs_on``: the one backend that applies a hint precision (None: any backend that runs
    the file). ``trt_flags``: TensorRT ``BuilderFlag`` names of the legacy path.
    ``needs_approval``: ``auto`` chooses it only when export's quality gate approved it.
    ``cpu_compute``: a CPU backend computes in it (fp16 is stored, not computed, on CPUs).
    ``weight_only``: only the weights are reduced (``MatMulNBits``, language models)."""

    name: str
    suffix: str | None
    kinds: tuple[str, ...]
    needs_approval: bool
    cpu_compute: bool
    trt_flags: tuple[str, ...] = ()
    runs_on: str | None = None
    weight_only: bool = False

    @property
    def onnx_file(self) -> str | None:
        """The main graph's file name in a bundle (None for a hint precision)."""
        if self.suffix is None:
            return None
        return "model.onnx" if not self.suffix else f"model.{self.suffix}.onnx"


# In export stage order: the order CLI lists, manifests and reports show them in.
TABLE = (
    Precision("fp32", "", (*IMAGE_KINDS, *TEXT_KINDS), needs_approval=False, cpu_compute=True),
    Precision("fp16", "fp16", (*IMAGE_KINDS, *TEXT_KINDS), False, False, ("FP16",)),
    Precision("bf16", None, IMAGE_KINDS, True, True, runs_on="openvino"),
    Precision("int8", "int8", (*IMAGE_KINDS, *TEXT_KINDS), True, True, ("FP16", "INT8")),
    Precision("int4", "int4", TEXT_KINDS, True, True, weight_only=True),
)
BY_NAME = {p.name: p for p in TABLE}
REFERENCE = "fp32"  # what every reduced precision is measured and gated against

# Derived views, for the code that needs a plain collection.
RUN_PRECISIONS = tuple(p.name for p in TABLE)  # every precision a caller may ask for
INFERENCE_PRECISIONS = {p.name: p.runs_on for p in TABLE if p.runs_on}  # hint -> its backend
WEIGHT_ONLY_PRECISIONS = tuple(p.name for p in TABLE if p.weight_only)
PRECISIONS = tuple(  # the files of every model kind: export's default set
    p.name for p in TABLE if p.suffix is not None and not p.weight_only
)
ARTIFACT_PRECISIONS = (*PRECISIONS, *WEIGHT_ONLY_PRECISIONS)  # precisions a file can hold
SUFFIXES = {p.name: p.suffix for p in TABLE if p.suffix is not None}


def precision(name: str) -> Precision:
    """The row of ``name``; ``KeyError`` for a name not in the table (callers check first)."""
    return BY_NAME[name]


def onnx_file(name: str) -> str:
    """``model.<suffix>.onnx`` of a precision that has a file of its own."""
    file = BY_NAME[name].onnx_file
    if file is None:
        raise KeyError(f"{name} has no file of its own")
    return file


def choices(kind: str | None = None) -> tuple[str, ...]:
    """Precisions a caller may ask for (of ``kind`` when given), in table order."""
    return tuple(p.name for p in TABLE if kind is None or kind in p.kinds)


def image_precisions() -> tuple[str, ...]:
    """Precisions an image generator's bundle can hold or run in (every kind but text's)."""
    return tuple(p.name for p in TABLE if set(p.kinds) & set(IMAGE_KINDS))


def trt_flags(name: str) -> tuple[str, ...]:
    """TensorRT ``BuilderFlag`` names the legacy path sets for ``name``."""
    return BY_NAME[name].trt_flags

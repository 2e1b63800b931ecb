"""Your own PyTorch image generator -> verified bundle, through the same stages as a checkpoint.

    from genedge.export.routes.byo import export_generator
    export_generator(netG, "bundle", latent_dim=100, latent_shape=(100, 1, 1))

The module's ``forward(z)`` (or ``forward(z, labels)`` with ``num_classes > 0``) returns float
images ``(B, C, H, W)``, C in {1, 3}, in ``output_range``. The exported graph is genedge's
own ``generator`` contract (docs/bundle.md): ``z (B, Z) float32 [, label (B,) int64] ->
image uint8 (B, H, W, C)``, with the range mapping, rounding and layout fused in. Loading a
module from ``FILE.py`` imports that file, which runs its code: only export files you trust.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genedge.errors import BadInputError, printable
from genedge.export.bundle import LoadedModel, export_source
from genedge.export.options import ExportOptions, validate_export_options
from genedge.export.routes.graph_spec import B, GraphSpec
from genedge.export.routes.onnx_export import check_finite_weights, onnx_from_module
from genedge.interrupts import user_code
from genedge.latents import default_labels, seeded_latents
from genedge.lazy import lazy_import
from genedge.manifest import TensorSpec, sha256_file
from genedge.precisions import PRECISIONS

torch = lazy_import("torch")

LATENT_DISTS = ("normal", "uniform")
RANGE_MARGIN = 0.05  # outputs may overshoot the declared range by 5% of its span (rounding, BN)
PROBE_BATCH = 8
Log = Callable[[str], None]


@dataclass(frozen=True)
class GeneratorSpec:
    """How to call a user's generator and read its output.

    latent_dim: Z of the bundle's ``z (B, Z)``; latent_shape: the shape the module wants per
    sample, e.g. ``(Z, 1, 1)`` for the classic DCGAN (None: ``(Z,)``); num_classes: K > 0 means
    ``module(z, labels)`` with labels ``(B,)`` int64; output_range: (lo, hi) of the float images
    the module returns; latent_dist: the prior the module was trained with. The bundle's latent
    is always N(0, I): for ``uniform`` the graph maps it to U(-1, 1) with ``erf(z / sqrt 2)``,
    so seeds, walks, calibration and the runtime stay the same as for genedge's own models.
    """

    latent_dim: int
    num_classes: int = 0
    output_range: tuple[float, float] = (-1.0, 1.0)
    latent_shape: tuple[int, ...] | None = None
    latent_dist: str = "normal"
    check_range: bool = True  # False: export even when seeded outputs do not fit output_range

    def record(self) -> dict[str, Any]:
        return {
            "latent_dim": self.latent_dim,
            "num_classes": self.num_classes,
            "output_range": list(self.output_range),
            "latent_shape": None if self.latent_shape is None else list(self.latent_shape),
            "latent_dist": self.latent_dist,
        }


@dataclass(frozen=True)
class ByoConfig:
    """The manifest ``model`` section of a bundle made from a user's generator."""

    latent_dim: int
    num_classes: int
    image_size: int  # H (the runtime and the task metrics take square images as H x H)
    channels: int
    height: int
    width: int
    output_range: tuple[float, float]
    latent_prior: str  # the module's own prior; the graph's input is N(0, I) either way
    latent_shape: tuple[int, ...] | None = None


def validate_spec(spec: GeneratorSpec) -> GeneratorSpec:
    """Refuse impossible generator options (BadInputError naming the field); returns a clean copy."""
    z = spec.latent_dim
    if type(z) is not int or z < 1:
        raise BadInputError(f"latent_dim {z!r}: expected an integer >= 1 (the size of z).")
    k = spec.num_classes
    if type(k) is not int or k < 0:
        raise BadInputError(f"num_classes {k!r}: expected an integer >= 0 (0: unconditional).")
    try:
        lo, hi = (float(v) for v in spec.output_range)
    except (TypeError, ValueError):
        raise BadInputError(
            f"output_range {spec.output_range!r}: expected two numbers LO,HI such as -1,1 or 0,1."
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise BadInputError(f"output_range ({lo}, {hi}): expected finite LO < HI, e.g. -1,1.")
    shape = spec.latent_shape
    if shape is not None:
        shape = tuple(shape)
        if not shape or any(type(d) is not int or d < 1 for d in shape):
            raise BadInputError(f"latent_shape {shape!r}: expected positive integers, e.g. Z,1,1.")
        if math.prod(shape) != z:
            raise BadInputError(
                f"latent_shape {shape} holds {math.prod(shape)} values; latent_dim is {z}.",
                hint=f"Pass --latent-shape {z},1,1 (or change --latent-dim).",
            )
    if spec.latent_dist not in LATENT_DISTS:
        raise BadInputError(
            f"latent_dist {spec.latent_dist!r} is not one of {', '.join(LATENT_DISTS)}."
        )
    return dataclasses.replace(spec, output_range=(lo, hi), latent_shape=shape)


def parse_output_range(text: str) -> tuple[float, float]:
    """``"-1,1"`` -> (-1.0, 1.0); BadInputError otherwise."""
    try:
        lo, hi = (float(t) for t in str(text).split(","))
    except ValueError:
        raise BadInputError(
            f"--output-range received {text!r}; expected LO,HI such as -1,1 or 0,1."
        ) from None
    return lo, hi


def parse_shape(text: str | None, flag: str = "--latent-shape") -> tuple[int, ...] | None:
    """``"100,1,1"`` -> (100, 1, 1)."""
    if text in (None, ""):
        return None
    try:
        return tuple(int(t) for t in str(text).split(","))
    except ValueError:
        raise BadInputError(
            f"{flag} received {text!r}; expected integers such as 100,1,1."
        ) from None


# ---------------------------------------------------------------- the exported wrapper
def _wrapper_class():
    """``UserImageGraph``, defined on first use so importing this module does not import torch."""
    from genedge.export.routes.wrappers import GraphWrapper, to_image_output
    from genedge.train.user_module import FloatGenerator

    class UserImageGraph(GraphWrapper):
        """``z (B, Z) [, label (B,)] -> image``: the user's module as a ``FloatGenerator`` (prior
        mapping, reshape, range mapping to [-1, 1]) and genedge's output post-processing, all
        in one traced graph."""

        def __init__(self, module: torch.nn.Module, spec: GeneratorSpec, output_format: str):
            super().__init__()
            self.generator = FloatGenerator(
                module,
                num_classes=spec.num_classes,
                output_range=spec.output_range,
                latent_shape=spec.latent_shape,
                latent_dist=spec.latent_dist,
            )
            self.spec = spec
            self.output_format = output_format

        def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
            return to_image_output(self.generator(z, label), self.output_format)

        def build_onnx(self, gspec: Any, opset: int):
            """The traced, checked ONNX of this wrapper; an op torch cannot export is exit 2."""
            try:
                return onnx_from_module(self, gspec, opset=opset)
            except Exception as e:  # torch.onnx raises several types for one cause
                raise unexportable_error(e, opset) from None

    return UserImageGraph


def unexportable_error(e: Exception, opset: int) -> BadInputError:
    """A BadInputError naming the operator torch could not export, when its message names one."""
    text = str(e).strip()
    first = text.splitlines()[0][:300] if text else type(e).__name__
    m = re.search(r"operator '([\w:.]+)'", text) or re.search(r"\b(aten::\w+|prim::\w+)", text)
    what = f"operator {m.group(1)!r} is not supported" if m else f"{type(e).__name__}: {first}"
    return BadInputError(
        f"The generator cannot be exported to ONNX opset {opset}: {what}"
        f"{f' ({first})' if m else ''}.",
        hint="Replace that operation in the module with standard layers, or export the module "
        "to ONNX yourself and pass the .onnx file to `genedge export`.",
    )


def image_graph_for(module: Any, spec: GeneratorSpec, output_format: str) -> Any:
    return _wrapper_class()(module, spec, output_format)


# ---------------------------------------------------------------- probing the module
def probe_module(module: Any, spec: GeneratorSpec, where: str) -> tuple[int, int, int]:
    """Run the module once on seeded latents; return (C, H, W) or raise BadInputError.

    Checked: the output is one float tensor (B, C, H, W) with C in {1, 3}, finite, and inside
    ``output_range`` up to ``RANGE_MARGIN`` of its span.
    """
    from genedge.train.user_module import FloatGenerator

    raw = FloatGenerator(  # the module's own output range: no mapping
        module,
        num_classes=spec.num_classes,
        latent_shape=spec.latent_shape,
        latent_dist=spec.latent_dist,
    )
    z = torch.from_numpy(seeded_latents(PROBE_BATCH, spec.latent_dim, seed=0))
    labels = default_labels(PROBE_BATCH, spec.num_classes) if spec.num_classes else None
    shape = (PROBE_BATCH, *(spec.latent_shape or (spec.latent_dim,)))
    call = f"{where}(z{', labels' if spec.num_classes else ''})"
    try:
        with torch.no_grad():
            x = raw(z, None if labels is None else torch.from_numpy(labels))
    except Exception as e:
        said = str(e).strip()[:300].rstrip(".")
        raise BadInputError(
            f"{call} with z of shape {shape} raised {type(e).__name__}: {said}.",
            hint=_call_hint(spec, said),
        ) from None
    return _check_output(x, spec, call)


def _call_hint(spec: GeneratorSpec, said: str = "") -> str:
    """What to change, the likeliest cause first: labels the call lacks or has too many of,
    then the latent's shape."""
    if not spec.num_classes and "missing 1 required positional argument" in said:
        return (
            "forward() wants a second argument (class labels): pass --num-classes K, the number "
            "of classes (then it is called as module(z, labels))."
        )
    if spec.num_classes and re.search(r"takes \d+ positional arguments? but \d+ were given", said):
        return "forward() takes no labels: drop --num-classes (it is called as module(z))."
    if spec.latent_shape is None:
        return (
            f"A module that takes z as (B, {spec.latent_dim}, 1, 1) needs "
            f"--latent-shape {spec.latent_dim},1,1; check --latent-dim and --num-classes too."
        )
    return "Check --latent-dim, --latent-shape and --num-classes against the module's forward()."


def _check_output(x: Any, spec: GeneratorSpec, call: str) -> tuple[int, int, int]:
    if not isinstance(x, torch.Tensor):
        raise BadInputError(
            f"{call} returned {type(x).__name__}; expected one float tensor (B, C, H, W).",
            hint="Wrap the module so that forward() returns only the image batch.",
        )
    shape = tuple(x.shape)
    if (
        x.ndim != 4
        or shape[0] != PROBE_BATCH
        or shape[1] not in (1, 3)
        or not x.is_floating_point()
    ):
        raise BadInputError(
            f"{call} returned {str(x.dtype).replace('torch.', '')} {shape} for a batch of "
            f"{PROBE_BATCH}; expected float (B, C, H, W) with C = 1 or 3.",
            hint="genedge exports image generators: NCHW output, grey or RGB. Transpose NHWC "
            "outputs inside the module.",
        )
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise BadInputError(
            f"{call} returned {bad} NaN/Inf values on seeded N(0, I) latents.",
            hint="Check the weights (a diverged training run?) and --latent-dist.",
        )
    check_output_range(float(x.min()), float(x.max()), spec, call)
    return shape[1], shape[2], shape[3]


def check_output_range(seen_lo: float, seen_hi: float, spec: GeneratorSpec, call: str) -> None:
    """BadInputError unless the outputs seen on seeded latents fit ``spec.output_range``.

    Refused: values beyond the range by more than ``RANGE_MARGIN`` of its span, and values that
    stay in one half of it (a sigmoid's [0, 1] read as [-1, 1] comes out washed-out grey).
    ``spec.check_range=False`` (``--trust-output-range``) exports such a model as declared.
    """
    if not spec.check_range:
        return
    lo, hi = spec.output_range
    margin, mid = RANGE_MARGIN * (hi - lo), (lo + hi) / 2
    seen = f"[{seen_lo:.4g}, {seen_hi:.4g}]"
    declared = f"[{lo:g}, {hi:g}]"
    override = "--trust-output-range exports it as declared (a model that means it)."
    if seen_lo < lo - margin or seen_hi > hi + margin:
        raise BadInputError(
            f"{call} returned values in {seen} on seeded latents; the declared output range is "
            f"{declared}, exceeded by more than {RANGE_MARGIN:.0%} of its span.",
            hint="Pass the range the model really produces with --output-range LO,HI (0,1 for "
            f"a sigmoid, -1,1 for tanh); {override}",
        )
    upper = seen_lo >= mid and seen_hi > mid + margin  # nothing below the middle
    lower = seen_hi <= mid and seen_lo < mid - margin
    half = "upper" if upper else "lower" if lower else None
    if half:
        guess = f"{mid:g},{hi:g}" if half == "upper" else f"{lo:g},{mid:g}"
        raise BadInputError(
            f"{call} returned values in {seen} on seeded latents: only the {half} half of the "
            f"declared output range {declared}, so the images would come out washed-out.",
            hint=f"Pass the range the model really produces, e.g. --output-range {guess} "
            f"(0,1 for a sigmoid); {override}",
        )


def config_for(spec: GeneratorSpec, chw: tuple[int, int, int]) -> ByoConfig:
    c, h, w = chw
    return ByoConfig(
        latent_dim=spec.latent_dim,
        num_classes=spec.num_classes,
        image_size=h,
        channels=c,
        height=h,
        width=w,
        output_range=spec.output_range,
        latent_prior=spec.latent_dist,
        latent_shape=spec.latent_shape,
    )


def image_graph_spec_for(cfg: ByoConfig, output_format: str):
    """The ``generator`` GraphSpec (docs/bundle.md) for an image of cfg's (C, H, W)."""
    inputs = [TensorSpec("z", "float32", (B, cfg.latent_dim))]
    if cfg.num_classes:
        inputs.append(TensorSpec("label", "int64", (B,)))
    if output_format == "float":
        out = TensorSpec("image", "float32", (B, cfg.channels, cfg.height, cfg.width), "NCHW")
    else:
        out = TensorSpec("image", "uint8", (B, cfg.height, cfg.width, cfg.channels), "NHWC")
    return GraphSpec("generator", "model", tuple(inputs), (out,))


# ---------------------------------------------------------------- source records
def _state_dict_sha(module: Any) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def combined_sha256(*parts: Any) -> str:
    """One sha256 over JSON-able parts: the identity of a source for artifact reuse."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def module_source(
    module: Any,
    spec: GeneratorSpec,
    *,
    file: Path | None = None,
    name: str | None = None,
    weights: Path | None = None,
    module_args: Any = None,
) -> dict[str, Any]:
    """The manifest ``source`` record: module path (and file sha256), weights (and sha256).

    ``sha256`` identifies the generator as a whole (weights, code, call options): an
    unchanged re-export reuses the artifacts already in the bundle.
    """
    cls = type(module)
    rec: dict[str, Any] = {"type": "module", "generator": spec.record()}
    if file is not None:
        rec.update(module=f"{file}:{name}", module_sha256=sha256_file(file))
        if module_args is not None:
            rec["module_args"] = module_args
    else:
        rec["module"] = f"{cls.__module__}.{cls.__qualname__}"
    if weights is not None:
        rec.update(weights=weights.name, weights_sha256=sha256_file(weights))
    else:
        rec["weights_sha256"] = _state_dict_sha(module)
    rec["sha256"] = combined_sha256(
        rec.get("module_sha256"),
        rec["module"],
        rec["weights_sha256"],
        rec["generator"],
        module_args,
    )
    return rec


# ---------------------------------------------------------------- entry points
def _prepared(module: Any, spec: GeneratorSpec, where: str) -> tuple[Any, ByoConfig]:
    """An eval-mode float32 CPU copy of ``module`` (the caller's is untouched) and its config."""
    if not isinstance(module, torch.nn.Module):
        raise BadInputError(
            f"export_generator received {type(module).__name__}; expected a torch.nn.Module."
        )
    model = copy.deepcopy(module).cpu().float().eval()
    check_finite_weights(model, where)
    return model, config_for(spec, probe_module(model, spec, where))


def export_generator(
    module: Any,
    out: str | Path,
    *,
    latent_dim: int,
    num_classes: int = 0,
    output_range: tuple[float, float] = (-1.0, 1.0),
    precisions: tuple[str, ...] = PRECISIONS,
    latent_shape: tuple[int, ...] | None = None,
    latent_dist: str = "normal",
    check_range: bool = True,
    log: Log | None = None,
    **options: Any,
) -> Path:
    """Export a PyTorch image generator into the bundle folder ``out``; returns its path.

    ``module(z)`` (``module(z, labels)`` when ``num_classes > 0``) returns float images
    (B, C, H, W), C in {1, 3}, in ``output_range``; z is (B, latent_dim) float32, reshaped to
    ``(B, *latent_shape)`` when given (the classic DCGAN: ``latent_shape=(Z, 1, 1)``); labels
    are (B,) int64. Outputs outside ``output_range``, or in only one half of it, are refused
    unless ``check_range=False``. ``options`` are ``ExportOptions`` fields (``calib_samples``, ``eval_data``,
    ``trt``, ...). The caller's module is not modified (a copy is exported). Progress and each
    precision's verdict (with what it rests on) go to ``log``, by default to stderr; pass
    ``log=lambda line: None`` for silence.

    Raises BadInputError (exit 2) for a module, output or option that cannot work, and the
    errors of ``export_bundle``; nothing is left at ``out`` on failure.
    """
    spec = validate_spec(
        GeneratorSpec(
            latent_dim, num_classes, tuple(output_range), latent_shape, latent_dist, check_range
        )
    )
    where = type(module).__name__
    opts = _options(Path(f"<{where}>"), Path(out), precisions, options)
    model, cfg = _prepared(module, spec, where)
    source = module_source(model, spec)
    path = _export(opts, model, cfg, spec, source, log or _stderr_log)
    if log is None:
        from genedge.manifest import read_manifest
        from genedge.verdicts import gate_lines

        for line in gate_lines(read_manifest(path)):
            _stderr_log(line)
        _stderr_log(f"bundle: {path}")
    return path


def _stderr_log(line: str) -> None:
    import sys

    print(f"genedge export: {printable(line, None)}", file=sys.stderr, flush=True)


def export_module_file(
    ref: str,
    weights: str | Path | None,
    out: str | Path,
    spec: GeneratorSpec,
    *,
    module_args: Any = None,
    opts: ExportOptions | None = None,
    log: Log | None = None,
) -> Path:
    """``genedge export --module FILE.py:NAME --weights W``: import FILE.py (runs its code),
    build NAME(**module_args), load W into it, and export it like ``export_generator``."""
    from genedge.train.user_module import module_from_files, split_module_ref

    spec = validate_spec(spec)
    path, name = split_module_ref(ref)
    wpath = Path(weights) if weights else None
    with user_code(f"--module {ref}"):  # its forward runs in probing, export and parity
        module = module_from_files(ref, wpath, module_args)  # weights are read before FILE.py
        model, cfg = _prepared(module, spec, name)
        source = module_source(
            model, spec, file=path, name=name, weights=wpath, module_args=module_args
        )
        opts = opts or ExportOptions(source=wpath or path, out=Path(out))
        opts = dataclasses.replace(opts, source=wpath or path, out=Path(out), module=ref)
        return _export(opts, model, cfg, spec, source, log)


def _options(
    source: Path, out: Path, precisions: tuple[str, ...], options: dict[str, Any]
) -> ExportOptions:
    known = {f.name for f in dataclasses.fields(ExportOptions)} - {"source", "out", "module"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BadInputError(
            f"Unknown export option(s) {unknown}; expected some of {sorted(known)}."
        )
    opts = ExportOptions(source=source, out=out, precisions=tuple(precisions), **options)
    return validate_export_options(opts)  # before the module is copied and run


def _export(
    opts: ExportOptions,
    model: Any,
    cfg: ByoConfig,
    spec: GeneratorSpec,
    source: dict[str, Any],
    log: Log | None,
) -> Path:
    def load() -> LoadedModel:
        gspec = image_graph_spec_for(cfg, opts.output_format)
        return LoadedModel(
            model, cfg, "gan", [(gspec, image_graph_for(model, spec, opts.output_format))]
        )

    return export_source(opts, source, load, log=log or (lambda _msg: None))

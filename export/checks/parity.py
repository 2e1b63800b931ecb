"""Run exported graphs through ``genedge.runtime`` and compare them with torch on fixed seeds.

A failing comparison raises ``ParityError``; the bundle being built is then discarded,
so nothing final is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import genedge.runtime.select as select
from genedge.errors import CorruptArtifactError, IntegrityError
from genedge.export.routes.graph_spec import GraphSpec
from genedge.export.stages.calibration import Feed, encoder_feed, image_feed, single_thread_torch
from genedge.lazy import lazy_import
from genedge.manifest import Verification
from genedge.runtime import trt_backend
from genedge.runtime.ort_backend import MissingKernelError

onnx_reference = lazy_import("onnx.reference")
torch = lazy_import("torch")

# max |onnx - torch| allowed per output dtype: one grey level for uint8 (rounding at .5)
PARITY_TOL = {"uint8": 1.0, "float32": 1e-3}


class ParityError(IntegrityError):
    """An exported graph disagrees with the model it came from."""


class CollapsedOutputError(CorruptArtifactError):
    """The model's images are all at the ends of the output range: nothing worth exporting."""


class ArtifactRunner:
    """One exported file run through ``genedge.runtime``: ``run(feed) -> {name: array}``.

    ONNX files run on the runtime's ORT CPU backend and engines on its ``TrtBackend``: the
    backends users sample with. Results are copies (a backend overwrites its output buffers
    on the next run), so they can be kept and fed back. ``backend`` names what ran:
    ``onnxruntime-cpu``, ``tensorrt``, or ``onnx-reference`` for a graph ORT CPU has no
    kernel for (some fp16 ops).
    """

    def __init__(self, impl: Any, backend: str) -> None:
        self._impl, self.backend = impl, backend

    def run(self, feed: Feed) -> dict[str, np.ndarray]:
        return {k: np.array(v, copy=True) for k, v in self._impl.run(feed).items()}

    def close(self) -> None:
        self._impl.close()


class _ReferenceEvaluator:
    """``onnx.reference`` behind ``run(feed) -> {name: array}``: slow, but it has every kernel."""

    def __init__(self, path: Path) -> None:
        self._sess = onnx_reference.ReferenceEvaluator(str(path))

    def run(self, feed: Feed) -> dict[str, np.ndarray]:
        outs = self._sess.run(None, feed)
        return dict(zip(self._sess.output_names, outs, strict=True))

    def close(self) -> None:
        self._sess = None


def onnx_runner(path: str | Path, spec: GraphSpec | None = None) -> ArtifactRunner:
    """``path`` on the runtime's ORT CPU backend, its tensors checked against ``spec`` when given.

    ORT CPU lacks fp16 kernels for some ops; such a graph runs on ``onnx.reference``.
    """
    io = {} if spec is None else {"inputs": spec.inputs, "outputs": spec.outputs}
    try:
        b = select.open_file(path, **io)
    except MissingKernelError:
        return ArtifactRunner(_ReferenceEvaluator(Path(path)), "onnx-reference")
    return ArtifactRunner(b, "onnxruntime-cpu")


def engine_runner(
    path: Path,
    record: dict[str, Any],
    spec: GraphSpec,
    *,
    precision: str,
    allow_version_compatible: bool = False,
) -> ArtifactRunner:
    """A TensorRT engine on the runtime's ``TrtBackend`` (``record``: its manifest engine record). GPU only."""
    opts = select.BackendOptions(allow_version_compatible=allow_version_compatible)
    b = select.open_file(
        path,
        trt_backend.SPEC.name,
        precision,
        opts,
        inputs=spec.inputs,
        outputs=spec.outputs,
        engine=record,
    )
    return ArtifactRunner(b, trt_backend.SPEC.name)


def torch_outputs(wrapper: Any, spec: GraphSpec, feed: Feed) -> dict[str, np.ndarray]:
    """Run the torch wrapper on a numpy feed: {output name: array}."""
    with torch.no_grad(), single_thread_torch():
        outs = wrapper(*(torch.from_numpy(np.asarray(feed[t.name])) for t in spec.inputs))
    outs = outs if isinstance(outs, tuple) else (outs,)
    return {t.name: o.numpy() for t, o in zip(spec.outputs, outs, strict=True)}


def parity_feed(
    spec: GraphSpec, cfg: Any, kind: str, seed: int, n: int = 8, *, decoder_runner=None
) -> Feed:
    """Fixed-seed inputs for ``spec``: latents, uint8 images (VAE encoder) or tokens + state (ar)."""
    if spec.name in ("generator", "decoder"):
        return image_feed(cfg, n, seed)
    if spec.name == "encoder":
        rng = np.random.default_rng(seed)
        shape = (n, cfg.image_size, cfg.image_size, cfg.channels)
        return encoder_feed(rng.integers(0, 256, shape, dtype=np.uint8))
    rng = np.random.default_rng(seed)
    feed: Feed = {"token": rng.integers(0, cfg.vocab_size, n, dtype=np.int64)}
    for s in cfg.state_names:
        feed[s] = (0.5 * rng.standard_normal((cfg.layers, n, cfg.hidden))).astype(np.float32)
    return feed


def max_abs_error(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Largest |a - b| over every output (as float64)."""
    return max(
        float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)), initial=0.0))
        for k in a
    )


def tolerance_for(spec: GraphSpec) -> float:
    return max(PARITY_TOL.get(t.dtype, 1e-3) for t in spec.outputs)


def check_parity(
    wrapper: Any, onnx_path: Path, spec: GraphSpec, cfg: Any, kind: str, seeds: tuple[int, ...]
) -> Verification:
    """Compare torch and ONNX Runtime fp32 on ``seeds``; raise ParityError past the tolerance.

    Returns the verification record: ``max_abs_err_vs_torch``, ``seeds``, ``verdict``.
    """
    runner, tol, worst = onnx_runner(onnx_path, spec), tolerance_for(spec), 0.0
    collapsed = spec.name in ("generator", "decoder")
    for seed in seeds:
        feed = parity_feed(spec, cfg, kind, seed)
        out = runner.run(feed)
        worst = max(worst, max_abs_error(torch_outputs(wrapper, spec, feed), out))
        collapsed = collapsed and all(at_range_ends(v) for v in out.values())
    if kind == "ar":
        worst = max(worst, step_sequence_error(wrapper, runner, spec, cfg, seeds[0]))
    if not np.isfinite(worst) or worst > tol:
        raise ParityError(
            f"Graph '{spec.name}' fails parity: max |onnx - torch| = {worst:.4g} on seeds {list(seeds)}, "
            f"tolerance {tol:g}. Nothing was written.",
            hint="This is an exporter problem; please report it with the checkpoint.",
        )
    if collapsed:
        raise CollapsedOutputError(
            f"Graph '{spec.name}' gives only the ends of its output range (every value 0 or 255 "
            f"for uint8, -1 or 1 for float) on seeds {list(seeds)}: the model has collapsed or "
            "its weights are broken, so its images carry no content. Nothing was written.",
            hint="Check it with `genedge eval CKPT`; retrain, or resume from an earlier checkpoint.",
        )
    return Verification(max_abs_err_vs_torch=worst, seeds=tuple(seeds), verdict="pass")


def at_range_ends(x: np.ndarray) -> bool:
    """True when every value of an image output sits at an end of its range: 0/255 (uint8),
    <= -1 or >= 1 (float in [-1, 1]). Saturated, constant or all-NaN-cast output."""
    if x.dtype == np.uint8:
        return bool(np.all((x == 0) | (x == 255)))
    return bool(np.all((x <= -1.0) | (x >= 1.0)))


def step_sequence_error(
    wrapper: Any, runner: ArtifactRunner, spec: GraphSpec, cfg: Any, seed: int, steps: int = 8
) -> float:
    """Feed each engine its own state for ``steps`` steps; the worst error over the sequence."""
    feed = parity_feed(spec, cfg, "ar", seed, n=4)
    t_feed, o_feed, worst = dict(feed), dict(feed), 0.0
    for _ in range(steps):
        t_out, o_out = torch_outputs(wrapper, spec, t_feed), runner.run(o_feed)
        worst = max(worst, max_abs_error(t_out, o_out))
        nxt = t_out["logits"].argmax(-1).astype(np.int64)
        t_feed = {"token": nxt, **{s: t_out[f"{s}_out"] for s in cfg.state_names}}
        o_feed = {"token": nxt, **{s: o_out[f"{s}_out"] for s in cfg.state_names}}
    return worst

"""``genedge eval BUNDLE``: re-run the quality metrics on a bundle's ONNX artifacts.

Every artifact is compared with the bundle's fp32 graph on seeded inputs (the runtime's
seeding, docs/bundle.md): PSNR/SSIM and max error for image graphs, plus task metrics
(``genedge.train.eval``) when reference data is available; bits per character for ``ar``.
The metrics are defined in ``genedge.metrics`` and ``genedge.train.eval``; this module runs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genedge.errors import BadInputError
from genedge.export.checks.parity import onnx_runner
from genedge.export.checks.quality import image_quality, image_task_metrics, load_reference_data
from genedge.export.stages.calibration import image_feed, split_feed
from genedge.limits import MAX_EVAL_SAMPLES, check_count
from genedge.manifest import MAIN_GRAPH, ModelConfig, read_manifest
from genedge.metrics import bits_per_char


def evaluate_bundle(
    path: str | Path,
    *,
    precisions: list[str] | None = None,
    n: int = 1000,
    seed: int = 1234,
    data: str | None = None,
) -> dict[str, Any]:
    """Metrics per ONNX artifact of the bundle's main graph: ``{"kind", "seed", "n", "artifacts": {file: {...}}}``.

    Hashes are verified before any file is opened. ``precisions`` filters (default: all).
    ``data`` is the reference data for task metrics (default: the training data named in the
    checkpoint, if known). ``n`` samples (images) or token rows x steps (``ar``).
    """
    check_count("eval -n", n, MAX_EVAL_SAMPLES, "evaluation keeps every sample in memory")
    m = read_manifest(path)
    main = MAIN_GRAPH[m.kind]
    arts = [
        a
        for a in m.find(graph=main, format="onnx")
        if precisions is None or a.precision in precisions
    ]
    if not arts:
        have = (
            ", ".join(sorted({a.precision or "fp32" for a in m.find(graph=main, format="onnx")}))
            or "none"
        )
        raise BadInputError(
            f"Bundle has no ONNX graph in precision(s) {', '.join(precisions or [])}; it has {have}.",
            hint=f"Pass --precision with some of: {have}.",
        )
    ref_art = m.find(graph=main, format="onnx", precision="fp32")[0]
    ref = onnx_runner(m.path_of(ref_art))
    cfg = _Cfg(m.model)
    result: dict[str, Any] = {
        "bundle": str(m.root),
        "kind": m.kind,
        "seed": seed,
        "n": n,
        "artifacts": {},
    }
    for a in arts:
        runner = ref if a is ref_art else onnx_runner(m.path_of(a))
        if m.kind == "ar":
            result["artifacts"][a.file] = _eval_text(ref, runner, cfg, n, seed)
        else:
            real = _reference_data(data or m.source.get("data"), m.model.image_size)
            result["artifacts"][a.file] = _eval_images(ref, runner, m, cfg, n, seed, real)
        result["artifacts"][a.file].update(precision=a.precision, backend=runner.backend)
    return result


class _Cfg:
    """The model config as export's feeds read it: the typed fields, then ``extra`` (an ``ar``
    model's ``layers`` and ``hidden``)."""

    def __init__(self, model: ModelConfig) -> None:
        self._model = model

    def __getattr__(self, name: str) -> Any:
        if name in self._model.extra:
            return self._model.extra[name]
        return getattr(self._model, name)


def _reference_data(src: str | None, image_size: int | None):
    return load_reference_data(src, image_size)


def _eval_images(ref, runner, m, cfg, n: int, seed: int, real) -> dict[str, Any]:
    layout = "NCHW" if m.model.output_format == "float" else "NHWC"
    feeds = split_feed(image_feed(cfg, n, seed), 100)
    a = np.concatenate([ref.run(f)["image"] for f in feeds])
    b = a if runner is ref else np.concatenate([runner.run(f)["image"] for f in feeds])
    labels = np.concatenate([f["label"] for f in feeds]) if "label" in feeds[0] else None
    out: dict[str, Any] = image_quality(a, b, layout) if runner is not ref else {}
    metrics = image_task_metrics(b, layout, labels, real)
    if metrics:
        out["metrics"] = metrics
    return out


def _eval_text(ref, runner, cfg, n: int, seed: int, steps: int = 64) -> dict[str, Any]:
    rows = max(1, min(n // steps, 64))
    tokens = _sample_tokens(ref, cfg, rows, steps, seed)
    return {"metrics": {"bpc_on_fp32_samples": bits_per_char(runner, cfg, tokens)}}


def _sample_tokens(runner, cfg, rows: int, steps: int, seed: int) -> np.ndarray:
    """(rows, steps) int64 tokens sampled from ``runner`` (temperature 1), seeded."""
    rng = np.random.default_rng(seed)
    tok = rng.integers(1, cfg.vocab_size, rows).astype(np.int64)
    state = {s: np.zeros((cfg.layers, rows, cfg.hidden), np.float32) for s in cfg.state_names}
    out = [tok]
    for _ in range(steps - 1):
        res = runner.run({"token": tok, **state})
        p = np.exp(res["logits"] - res["logits"].max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        tok = np.array([rng.choice(len(q), p=q) for q in p], dtype=np.int64)
        state = {s: res[f"{s}_out"] for s in cfg.state_names}
        out.append(tok)
    return np.stack(out, axis=1)

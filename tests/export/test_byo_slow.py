"""A trained class-conditional 28x28 DCGAN (examples/byo) through the whole chain: its int8
artifact keeps conditional accuracy within 2 points of fp32 by a classifier genedge did not
train, or the quality gate refuses it with the recipe recorded. Minutes of CPU: ``slow``."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "byo"


def _example(name: str):
    import sys

    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"byo_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def independent_classifier():
    """Logistic regression on the bundled digits at 28x28 (sklearn; nothing of genedge)."""
    from sklearn.linear_model import LogisticRegression

    x, y = _example("train_dcgan").load_data(None, 28)  # (N, 1, 28, 28) in [-1, 1]
    clf = LogisticRegression(max_iter=2000).fit(x.reshape(len(x), -1).numpy(), y.numpy())
    return clf


def accuracy(clf, images_uint8: np.ndarray, labels: np.ndarray) -> float:
    x = images_uint8.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0  # (N, 1, 28, 28)
    return float(np.mean(clf.predict(x.reshape(len(x), -1)) == labels))


@pytest.mark.slow
def test_trained_dcgan_int8_keeps_accuracy_or_is_refused(tmp_path):
    import genedge.export.bundle  # noqa: F401  (every stage's code loaded before minutes of training)
    import genedge.export.checks.parity  # noqa: F401
    import genedge.export.checks.quality  # noqa: F401
    import genedge.export.stages.fp16  # noqa: F401
    import genedge.export.stages.int8  # noqa: F401
    import genedge.export.stages.mixed  # noqa: F401
    import genedge.export.stages.speed  # noqa: F401
    import genedge.train.eval  # noqa: F401
    from genedge.export.routes.byo import export_generator
    from genedge.runtime import Sampler

    train = _example("train_dcgan")
    args = argparse.Namespace(
        mnist=None,
        size=28,
        minutes=6.0,
        steps=800,
        nz=64,
        ngf=32,
        batch_size=64,
        conditional=True,
        seed=0,
    )
    torch.set_num_threads(2)
    G, k = train.train(args)
    assert k == 10
    bundle = export_generator(
        G,
        tmp_path / "b",
        latent_dim=64,
        latent_shape=(64, 1, 1),
        num_classes=10,
        precisions=("fp32", "int8"),
        eval_data="digits",
    )
    m = json.loads((bundle / "manifest.json").read_text())
    int8 = [a for a in m["artifacts"] if a.get("precision") == "int8" and a["format"] == "onnx"]
    if not int8:  # skipped: no int8 weight survived the search; the reason is recorded
        assert "int8" in m["source"].get("skipped", {})
        return
    clf = independent_classifier()
    labels = np.arange(1000) % 10
    acc = {}
    for prec in ("fp32", "int8"):
        with Sampler.open(bundle, backend="ort-cpu", precision=prec) as s:
            acc[prec] = accuracy(clf, s.sample(1000, seed=99, labels=labels), labels)
    v = int8[0]["verification"]
    print(f"independent accuracy {acc}; gate: approved={int8[0]['quality_approved']}, {v}")
    assert acc["fp32"] > 0.5, f"training did not learn the classes: {acc}"
    if int8[0]["quality_approved"]:
        assert acc["fp32"] - acc["int8"] <= 0.02, acc
    else:
        assert int8[0]["verification"]["verdict"] == "fail" and "kept_float" in int8[0]["recipe"]

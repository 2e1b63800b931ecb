"""The judge: a classifier trained on a dataset's own labels, cached by a hash of the data."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from genedge.train import judge as judge_mod
from genedge.train.data import ImageData, load_image_data
from genedge.train.eval import feature_space, image_metrics
from genedge.train.judge import (
    JudgeConfig,
    JudgeTraining,
    judge_for,
    judge_unavailable_reason,
    load_judge,
    stratified_split,
    train_judge,
)

pytest.importorskip("scipy")

QUICK = JudgeTraining(max_epochs=4, warmup=0.1, batch_size=64)  # ~90% on 28x28 digits, ~1 s


def _write_idx(folder: Path, images_u8: np.ndarray, labels: np.ndarray) -> Path:
    """MNIST-style IDX files (images + labels beside them); returns the images file."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images_u8.shape
    images = folder / "train-images-idx3-ubyte"
    images.write_bytes(struct.pack(">HBB3I", 0, 8, 3, n, h, w) + images_u8.tobytes())
    (folder / "train-labels-idx1-ubyte").write_bytes(
        struct.pack(">HBBI", 0, 8, 1, n) + labels.astype(np.uint8).tobytes()
    )
    return images


@pytest.fixture(scope="module")
def digits28_idx(tmp_path_factory) -> Path:
    """600 of scikit-learn's digits upscaled to 28x28, written as MNIST IDX files."""
    d = load_image_data("digits", image_size=28)
    x = np.rint((d.images[:600, 0] + 1.0) * 127.5).astype(np.uint8)  # (600, 28, 28)
    return _write_idx(tmp_path_factory.mktemp("idx"), x, d.labels[:600])


@pytest.fixture(scope="module")
def digits28(digits28_idx) -> ImageData:
    return load_image_data(str(digits28_idx))


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty judge cache and no judges remembered by this process."""
    monkeypatch.setenv("GENEDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(judge_mod, "_MEMO", {})
    return tmp_path / "cache" / "judges"


def _lines():
    said: list[str] = []
    return said, said.append


def test_stratified_split():
    labels = np.repeat(np.arange(4), [100, 20, 7, 1])
    train, held = stratified_split(labels, 0.15, seed=0)
    assert np.bincount(labels[held], minlength=4).tolist() == [15, 3, 1, 0]
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == len(labels)
    again = stratified_split(labels, 0.15, seed=0)
    assert np.array_equal(held, again[1])
    assert not np.array_equal(held, stratified_split(labels, 0.15, seed=1)[1])


def test_architecture_is_sized_to_the_image():
    assert JudgeConfig(1, 16, 10).widths == (16, 32) and JudgeConfig(1, 16, 10).final_size == 4
    assert JudgeConfig(1, 28, 10).widths == (16, 32) and JudgeConfig(1, 28, 10).final_size == 7
    rgb64 = JudgeConfig(3, 64, 5)
    assert rgb64.input_size == 32 and rgb64.widths == (16, 32, 64) and rgb64.final_size == 4
    assert JudgeConfig(1, 8, 2).widths == (16,)
    for cfg in (JudgeConfig(1, 8, 2), JudgeConfig(1, 28, 10), rgb64):
        model = judge_mod.Judge(cfg)
        x = torch.zeros(2, cfg.channels, cfg.image_size, cfg.image_size)
        assert model(x).shape == (2, cfg.num_classes)
        assert model.features(x).shape == (2, cfg.feature_dim)


def test_trains_caches_and_reloads_without_training(fresh, digits28):
    said, say = _lines()
    first = judge_for(digits28, QUICK, say=say)
    assert first.source == "trained" and any("held-out accuracy" in line for line in said)
    assert first.train_images + first.heldout_images == 600 and first.heldout_images == 90
    assert first.heldout_accuracy >= 0.8, first.heldout_accuracy
    (cached,) = fresh.glob("judge-*.safetensors")
    assert first.path == cached
    from safetensors import safe_open

    with safe_open(str(cached), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["config"]) == {
        "channels": 1,
        "image_size": 28,
        "num_classes": 10,
        "feature_dim": 64,
    }
    assert float(meta["heldout_accuracy"]) == first.heldout_accuracy

    assert judge_for(digits28, QUICK).source == "memory"  # same process: no disk read
    judge_mod._MEMO.clear()  # a new process: reads the cache, trains nothing
    said2, say2 = _lines()
    second = judge_for(digits28, QUICK, say=say2)
    assert second.source == "cache" and said2 == []
    assert second.heldout_accuracy == first.heldout_accuracy
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k]), k


def test_training_is_deterministic(digits28):
    a, acc_a, *_ = train_judge(digits28, QUICK, say=lambda _: None)
    b, acc_b, *_ = train_judge(digits28, QUICK, say=lambda _: None)
    assert acc_a == acc_b
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_cache_is_keyed_by_the_data(fresh, digits28):
    base = judge_for(digits28, QUICK, say=lambda _: None)
    relabelled = replace(digits28, labels=(digits28.labels + 1) % 10)
    other = judge_for(relabelled, QUICK, say=lambda _: None)
    assert other.source == "trained" and other.path != base.path
    brighter = replace(digits28, images=np.clip(digits28.images + 0.01, -1, 1).astype(np.float32))
    assert judge_for(brighter, QUICK, say=lambda _: None).path not in (base.path, other.path)
    resized = load_image_data("digits", image_size=16)
    assert judge_for(resized, QUICK, say=lambda _: None).path not in (base.path, other.path)
    assert len(list(fresh.glob("judge-*.safetensors"))) == 4


def test_corrupt_cache_is_retrained(fresh, digits28):
    first = judge_for(digits28, QUICK, say=lambda _: None)
    cfg = first.model.cfg
    data_hash = judge_mod.data_sha256(digits28)
    good = first.path.read_bytes()
    raw = bytearray(good)
    raw[-10] ^= 0xFF  # inside the weights: parses, but the weights hash no longer matches
    for broken in (good[: len(good) // 2], b""):
        first.path.write_bytes(broken)
        assert load_judge(first.path, cfg, data_hash) is None
    for broken in (bytes(raw), b"garbage"):
        first.path.write_bytes(broken)
        assert load_judge(first.path, cfg, data_hash) is None
        judge_mod._MEMO.clear()
        again = judge_for(digits28, QUICK, say=lambda _: None)
        assert again.source == "trained" and again.heldout_accuracy == first.heldout_accuracy
        assert load_judge(first.path, cfg, data_hash) is not None  # rewritten, whole
    assert load_judge(first.path, cfg, "0" * 64) is None  # another data's judge is not used


def test_unwritable_cache_still_judges(monkeypatch, tmp_path, digits28):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENEDGE_CACHE", str(blocker))
    monkeypatch.setattr(judge_mod, "_MEMO", {})
    said, say = _lines()
    judge = judge_for(digits28, QUICK, say=say)
    assert judge.source == "trained" and "not cached" in said[-1]


def test_no_judge_without_labels(digits28):
    assert judge_unavailable_reason(replace(digits28, labels=None)) == "unlabelled data"
    one = replace(digits28, labels=np.zeros(len(digits28), np.int64))
    assert judge_unavailable_reason(one) == "a single class"
    few = ImageData(digits28.images[:20], digits28.labels[:20], 10, "few")
    assert "fewer than" in judge_unavailable_reason(few)
    singletons = ImageData(digits28.images[:100], np.arange(100), 100, "one per class")
    assert "too few per class" in judge_unavailable_reason(singletons)
    space = feature_space(few)
    assert space.name == "random-conv" and space.judge is None and "fewer than" in space.note


def test_random_conv_features_read_on_a_fixed_scale(digits28):
    """Unlabelled data: normalised random-conv FD is ~0 for the data itself, a few units for
    another sample of it, and hundreds for noise (raw random features gave ~1e-4)."""
    unlabelled = replace(digits28, labels=None, num_classes=0)
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, size=(300, 1, 28, 28)).astype(np.float32)
    half = ImageData(unlabelled.images[:300], None, 0, "half")
    itself = image_metrics(half.images, None, half)
    other = image_metrics(unlabelled.images[300:600], None, half)
    far = image_metrics(noise, None, half)
    assert itself["feature_space"] == "random-conv" and itself["feature_note"] == "unlabelled data"
    assert "judge_heldout_accuracy" not in itself and itself["conditional_accuracy"] is None
    assert itself["frechet_distance"] < 1e-3
    assert 0.5 < other["frechet_distance"] < 50, other
    assert (
        100 < far["frechet_distance"] < 1e5
        and far["frechet_distance"] > 20 * other["frechet_distance"]
    ), far


def test_eval_cli_json_reports_the_judge(tmp_path, digits28_idx, capsys):
    """A conditional GAN checkpoint on MNIST-style IDX data: `genedge eval --json`."""
    from genedge.cli import main
    from genedge.train import save_checkpoint
    from genedge.train.gan import GanConfig, Generator

    torch.manual_seed(0)
    cfg = GanConfig(num_classes=10, image_size=28, g_width=16)
    ckpt = save_checkpoint(
        tmp_path / "g.safetensors",
        Generator(cfg),
        cfg,
        kind="gan",
        step=1,
        extra={"data": str(digits28_idx), "image_size": "28"},
    )
    out = tmp_path / "m.json"
    assert main(["eval", str(ckpt), "-n", "100", "--json", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["feature_space"] == "judge" and "feature_note" not in m
    assert 0.8 <= m["judge_heldout_accuracy"] <= 1.0
    assert 0.0 <= m["conditional_accuracy"] < 0.5  # an untrained generator
    assert m["frechet_distance"] > 0 and m["num_samples"] == 100
    printed = capsys.readouterr().out
    assert re.search(r"feature_space +judge\n +judge_heldout_accuracy +0\.\d{4}\n", printed)


@pytest.mark.slow  # trains a full default judge: ~10 s of one core, longer on a busy machine
def test_default_judge_on_mnist_style_idx(fresh, tmp_path):
    """All 1797 digits upscaled to 28x28 as IDX files: the default judge holds >= 0.97."""
    import time

    d = load_image_data("digits", image_size=28)
    x = np.rint((d.images[:, 0] + 1.0) * 127.5).astype(np.uint8)  # (1797, 28, 28)
    data = load_image_data(str(_write_idx(tmp_path / "idx", x, d.labels)))
    said, say = _lines()
    t0 = time.process_time()
    judge = judge_for(data, say=say)
    assert time.process_time() - t0 < 120
    assert judge.heldout_images == 269 and judge.heldout_accuracy >= 0.97, said
    assert said[0].startswith("judge: training a classifier") and "cached in" in said[-1]


def test_a_hostile_cache_path_is_escaped_in_the_judge_line(monkeypatch, tmp_path, digits28):
    monkeypatch.setenv("GENEDGE_CACHE", str(tmp_path / "cache\x1b[31m\x07"))
    monkeypatch.setattr(judge_mod, "_MEMO", {})
    said, say = _lines()
    judge_for(digits28, QUICK, say=say)
    assert "cached in" in said[-1] and "\\x1b[31m\\x07" in said[-1], said[-1]
    assert "\x1b" not in said[-1] and "\x07" not in said[-1]

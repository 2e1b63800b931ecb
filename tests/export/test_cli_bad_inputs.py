"""Bad input across every command: its documented exit code, one clean line, nothing lost.

Each row is argv (with placeholders for the fixtures' paths) and the exit code DESIGN.md
section 7 documents: 2 bad input or corrupt artifact, 3 incompatible environment, 4 an
integrity or security refusal. stderr must hold no traceback and no raw control byte.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
from export_helpers import GAN_CFG, GRU_CFG, fast_options, make_checkpoint

from genedge.cli import main

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
HAS_TRT = importlib.util.find_spec("tensorrt") is not None

ROWS: list[tuple[str, str, int]] = [
    # demo
    ("demo-minutes-negative", "demo --out {tmp}/d --minutes -1", 2),
    ("demo-minutes-nan", "demo --out {tmp}/d --minutes nan", 2),
    ("demo-out-is-a-file", "demo --out {userfile}", 2),
    ("demo-out-foreign", "demo --out {userdir}", 2),
    # train
    ("train-missing-data", "train gan --data {tmp}/nope.npy --out {tmp}/r", 2),
    ("train-unknown-data", "train gan --data no-such-dataset --out {tmp}/r", 2),
    ("train-steps-0", "train gan --data {npy} --out {tmp}/r --steps 0", 2),
    ("train-lr-nan", "train gan --data {npy} --out {tmp}/r --lr nan", 2),
    ("train-lr-inf", "train gan --data {npy} --out {tmp}/r --lr inf", 2),
    ("train-lr-negative", "train gan --data {npy} --out {tmp}/r --lr -1", 2),
    ("train-batch-0", "train gan --data {npy} --out {tmp}/r --batch-size 0", 2),
    ("train-image-size-7", "train gan --data {npy} --out {tmp}/r --image-size 7", 2),
    ("train-device-tpu", "train gan --data {npy} --out {tmp}/r --device tpu", 2),
    ("train-threads-0", "train gan --data {npy} --out {tmp}/r --threads 0", 2),
    ("train-threads-huge", "train gan --data {npy} --out {tmp}/r --threads 1000000", 2),
    ("train-minutes-nan", "train gan --data {npy} --out {tmp}/r --minutes nan", 2),
    ("train-minutes-inf", "train gan --data {npy} --out {tmp}/r --minutes inf", 2),
    ("train-latent-0", "train gan --data {npy} --out {tmp}/r --latent-dim 0", 2),
    ("train-out-is-a-file", "train gan --data {npy} --out {userfile}", 2),
    ("train-out-foreign", "train gan --data {npy} --out {userdir}", 2),
    ("train-out-is-cwd", "train gan --data {npy} --out .", 2),
    ("train-ar-conditional", "train ar --data {text} --out {tmp}/r --conditional", 2),
    ("train-ar-missing-text", "train ar --data {tmp}/none.txt --out {tmp}/r", 2),
    ("train-empty-npy", "train vae --data {emptynpy} --out {tmp}/r", 2),
    ("train-resume-and-overwrite", "train vae --data {npy} --out {tmp}/r --resume --overwrite", 2),
    # eval
    ("eval-missing", "eval {tmp}/none.safetensors", 2),
    ("eval-garbage", "eval {garbage}", 2),
    ("eval-n-0", "eval {ckpt} -n 0", 2),
    ("eval-n-negative", "eval {ckpt} -n -5", 2),
    ("eval-json-foreign", "eval {ckpt} --json {userfile}", 2),
    ("eval-empty-folder", "eval {emptydir}", 2),
    # export
    ("export-missing", "export {tmp}/none.safetensors --out {tmp}/b", 2),
    ("export-garbage", "export {garbage} --out {tmp}/b", 2),
    ("export-precision-fp64", "export {ckpt} --out {tmp}/b --precision fp64", 2),
    ("export-min-psnr-nan", "export {ckpt} --out {tmp}/b --min-psnr nan", 2),
    ("export-quality-drop-nan", "export {ckpt} --out {tmp}/b --max-quality-drop nan", 2),
    ("export-truncation-0", "export {ckpt} --out {tmp}/b --truncation 0", 2),
    ("export-truncation-nan", "export {ckpt} --out {tmp}/b --truncation nan", 2),
    ("export-calib-samples-0", "export {ckpt} --out {tmp}/b --calib-samples 0", 2),
    ("export-calib-samples-huge", "export {ckpt} --out {tmp}/b --calib-samples 1000000000", 2),
    ("export-opset-3", "export {ckpt} --out {tmp}/b --opset 3", 2),
    ("export-opset-1000", "export {ckpt} --out {tmp}/b --opset 1000", 2),
    ("export-batch-unordered", "export {ckpt} --out {tmp}/b --trt-profile 8:1:32", 2),
    ("export-batch-text", "export {ckpt} --out {tmp}/b --trt-profile x", 2),
    ("export-out-is-a-file", "export {ckpt} --out {userfile}", 2),
    ("export-out-foreign", "export {ckpt} --out {userdir}", 2),
    ("export-out-holds-input", "export {runckpt} --out {run}", 2),
    ("export-workspace-0", "export {ckpt} --out {tmp}/b --workspace-mb 0", 2),
    ("export-garbage-onnx", "export {garbageonnx} --out {tmp}/b", 2),
    (
        "export-module-missing",
        "export --module {tmp}/none.py:G --weights {ckpt} --latent-dim 8 --out {tmp}/b",
        2,
    ),
    # sample
    ("sample-missing-bundle", "sample {tmp}/none -n 4 --out {tmp}/s.png", 2),
    ("sample-n-0", "sample {gan} -n 0 --out {tmp}/s.png", 2),
    ("sample-n-huge", "sample {gan} -n 1000000000 --out {tmp}/s.png", 2),
    ("sample-seed-negative", "sample {gan} -n 4 --seed -1 --out {tmp}/s.png", 2),
    ("sample-label-99", "sample {gan} -n 4 --label 99 --out {tmp}/s.png", 2),
    ("sample-truncation-nan", "sample {gan} -n 4 --truncation nan --out {tmp}/s.png", 2),
    ("sample-backend-unknown", "sample {gan} -n 4 --backend nope --out {tmp}/s.png", 2),
    ("sample-precision-fp64", "sample {gan} -n 4 --precision fp64 --out {tmp}/s.png", 2),
    ("sample-threads-0", "sample {gan} -n 4 --threads 0 --out {tmp}/s.png", 2),
    ("sample-threads-huge", "sample {gan} -n 4 --threads 1000000 --out {tmp}/s.png", 2),
    ("sample-out-foreign", "sample {gan} -n 4 --out {userfile}", 2),
    ("sample-out-folder", "sample {gan} -n 4 --out {userdir}", 2),
    ("sample-text-bundle", "sample {ar} -n 4 --out {tmp}/s.png", 2),
    ("sample-escaped-missing-file", "sample {evil} -n 4 --out {tmp}/s.png", 4),
    # live
    ("live-fps-0", "live {gan} --fps 0 --seconds 1", 2),
    ("live-fps-nan", "live {gan} --fps nan --seconds 1", 2),
    ("live-seconds-negative", "live {gan} --seconds -1", 2),
    ("live-video-gif", "live {gan} --seconds 1 --video {tmp}/v.gif", 2),
    ("live-tile-0", "live {gan} --seconds 1 --tile 0", 2),
    ("live-priority-1000", "live {gan} --seconds 1 --realtime-priority 1000", 2),
    ("live-json-foreign", "live {gan} --seconds 1 --json {userfile}", 2),
    # generate
    ("generate-image-bundle", "generate {gan} --prompt a", 2),
    ("generate-tokens-negative", "generate {ar} --max-new-tokens -1", 2),
    ("generate-tokens-huge", "generate {ar} --max-new-tokens 1000000000", 2),
    ("generate-temperature-nan", "generate {ar} --temperature nan", 2),
    ("generate-top-k-negative", "generate {ar} --top-k -1", 2),
    ("generate-top-p-2", "generate {ar} --top-p 2", 2),
    ("generate-huge-prompt", "generate {ar} --prompt {hugeprompt}", 2),
    # bench
    ("bench-missing", "bench {tmp}/none", 2),
    ("bench-batch-0", "bench {gan} --batch 0", 2),
    ("bench-iters-0", "bench {gan} --iters 0", 2),
    ("bench-seconds-nan", "bench {gan} --seconds nan", 2),
    ("bench-rounds-0", "bench {gan} --rounds 0", 2),
    ("bench-backend-unknown", "bench {gan} --backend nope", 2),
    ("bench-warmup-negative", "bench {gan} --warmup -1", 2),
    ("bench-threads-huge", "bench {gan} --threads 1000000", 2),
    ("bench-json-foreign", "bench {gan} --json {userfile}", 2),
    ("bench-markdown-folder", "bench {gan} --markdown {userdir}", 2),
]
if not HAS_TRT:
    ROWS.append(("export-trt-without-tensorrt", "export {ckpt} --out {tmp}/b --trt", 3))
    ROWS.append(
        ("sample-backend-tensorrt", "sample {gan} -n 4 --backend tensorrt --out {tmp}/s.png", 3)
    )


@pytest.fixture(scope="module")
def places(tmp_path_factory, ckpts, gan_bundle) -> dict[str, str]:
    import numpy as np

    from genedge.export.bundle import export_bundle

    root = tmp_path_factory.mktemp("bad")
    (root / "user.txt").write_text("the user's file")
    (root / "userdir").mkdir()
    (root / "userdir" / "notes.txt").write_text("the user's notes")
    (root / "empty").mkdir()
    (root / "garbage.safetensors").write_bytes(b"\x00garbage" * 10)
    (root / "garbage.onnx").write_bytes(b"\x08\x07garbage" * 10)
    np.save(root / "x.npy", np.random.default_rng(0).random((24, 8, 8), dtype=np.float32))
    np.save(root / "empty.npy", np.zeros((0, 8, 8), np.float32))
    (root / "text.txt").write_text("abc de " * 200)
    run = root / "run"
    run.mkdir()
    shutil.copy(ckpts["gan"], run / "generator.safetensors")
    ar = export_bundle(
        fast_options(make_checkpoint(root / "ar.safetensors", "ar", GRU_CFG), root / "ar")
    )
    evil = root / "evil"
    shutil.copytree(gan_bundle, evil)
    manifest = json.loads((evil / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        a["file"] = "\x1b[31mred\x07" + a["file"]
    (evil / "manifest.json").write_text(json.dumps(manifest))
    assert GAN_CFG.num_classes == 4
    return {
        "tmp": str(root), "userfile": str(root / "user.txt"), "userdir": str(root / "userdir"),
        "emptydir": str(root / "empty"), "garbage": str(root / "garbage.safetensors"),
        "garbageonnx": str(root / "garbage.onnx"), "npy": str(root / "x.npy"),
        "emptynpy": str(root / "empty.npy"), "text": str(root / "text.txt"),
        "ckpt": str(ckpts["gan"]), "run": str(run), "runckpt": str(run / "generator.safetensors"),
        "gan": str(gan_bundle), "ar": str(ar), "evil": str(evil), "hugeprompt": "a" * 2_000_000,
    }  # fmt: skip


def _snapshot(root: Path) -> dict[str, bytes]:
    names = ("user.txt", "userdir", "run", "empty")
    return {
        str(p): p.read_bytes()
        for n in names
        for p in [root / n, *(root / n).rglob("*")]
        if p.is_file()
    }


@pytest.mark.parametrize(("argv", "code"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_gets_its_exit_code_and_one_clean_message(
    argv, code, places, capsys, monkeypatch
):
    root = Path(places["tmp"])
    monkeypatch.chdir(root / "empty")
    monkeypatch.delenv("DISPLAY", raising=False)
    before = _snapshot(root)
    args = [a.format(**places) for a in argv.split()]
    try:
        got = main(args)
    except SystemExit as e:  # argparse's own usage errors
        got = e.code
    err = capsys.readouterr().err
    assert got == code, err[-2000:]
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    assert not CONTROL.search(err), repr(err[-500:])
    assert _snapshot(root) == before
    assert not (root / "b").exists() and not (root / "r").exists() and not (root / "s.png").exists()


def test_the_table_covers_every_command():
    commands = {argv.split()[0] for _, argv, _ in ROWS}
    assert commands == {"demo", "train", "eval", "export", "sample", "live", "generate", "bench"}
    assert len(ROWS) >= 60

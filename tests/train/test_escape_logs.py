"""Values from checkpoints and training data reach messages and progress lines escaped."""

from __future__ import annotations

import json

import pytest

from genedge.errors import GenedgeError

HOSTILE = "x\x1b[31m\x07\x1b]0;title\x07\n"
CONTROL = [chr(c) for c in range(32)] + ["\x7f", "\x9b"]


def _clean(text: str) -> None:
    bad = [c for c in CONTROL if c in text]
    assert not bad, f"raw control characters {bad!r} in {text!r}"


def test_a_progress_line_escapes_sample_text(capsys):
    from genedge.train.progress import Progress

    p = Progress(total_steps=10, total_seconds=None, start_step=0, enabled=True, fancy=False)
    p.note_metrics(5, {"bpc": 2.5, "sample": HOSTILE * 100})
    line = capsys.readouterr().out
    assert line.endswith("\n") and line.count("\n") == 1
    _clean(line[:-1])
    assert len(line) < 400


@pytest.mark.parametrize(
    "meta",
    [
        {"kind": HOSTILE},
        {"config": json.dumps({"latent_dim": HOSTILE})},
        {"config": HOSTILE},
        {"step": HOSTILE},
    ],
)
def test_hostile_checkpoint_metadata_gives_a_clean_message(tmp_path, meta):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    from genedge.train.checkpoint import load_checkpoint

    base = {
        "format": "genedge.checkpoint",
        "version": "1",
        "kind": "gan",
        "config": json.dumps({"latent_dim": 8}),
        "step": "0",
    }
    path = tmp_path / f"bad{HOSTILE[:2]}.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={**base, **meta})
    with pytest.raises(GenedgeError) as info:
        load_checkpoint(path)
    _clean(f"{info.value} {info.value.message} {info.value.hint or ''}")

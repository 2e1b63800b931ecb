"""Fuzz the checkpoint loader: mutated and random files give a model or a genedge error."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from genedge.errors import CorruptArtifactError, GenedgeError  # noqa: E402
from genedge.train import load_checkpoint, save_checkpoint  # noqa: E402
from genedge.train.gan import GanConfig, Generator  # noqa: E402

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))


def _seed_files() -> dict[str, bytes]:
    cfg = GanConfig(latent_dim=4, g_width=8, image_size=8, embed_dim=4)
    model = Generator(cfg)
    with tempfile.TemporaryDirectory() as d:
        st_path = save_checkpoint(Path(d) / "g.safetensors", model, cfg, kind="gan")
        pt_path = Path(d) / "g.pt"
        torch.save(
            {
                "format": "genedge.checkpoint",
                "kind": "gan",
                "config": '{"latent_dim": 4, "g_width": 8, "image_size": 8, "embed_dim": 4}',
                "state_dict": model.state_dict(),
            },
            pt_path,
        )
        return {".safetensors": st_path.read_bytes(), ".pt": pt_path.read_bytes()}


SEEDS = _seed_files()


def _load(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"generator{suffix}"
        path.write_bytes(data)
        try:
            load_checkpoint(path)
        except GenedgeError:
            pass


def _mutated(data, seed: bytes) -> bytes:
    buf = bytearray(seed)
    # bias towards the header, where the structure lives
    head = min(len(buf) - 1, 2048)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        pos = data.draw(st.one_of(st.integers(0, head), st.integers(0, len(buf) - 1)))
        if op == "flip" and pos < len(buf):
            buf[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del buf[pos : pos + data.draw(st.integers(1, 32))]
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del buf[pos:]
        if not buf:
            break
    return bytes(buf)


def test_the_seeds_load():
    for suffix, data in SEEDS.items():
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / f"g{suffix}").write_bytes(data)
            assert load_checkpoint(Path(d) / f"g{suffix}")[1].latent_dim == 4


@FAST
@given(st.data(), st.sampled_from(sorted(SEEDS)))
def test_mutated_checkpoints(data, suffix):
    _load(_mutated(data, SEEDS[suffix]), suffix)


@FAST
@given(st.binary(max_size=300), st.sampled_from(sorted(SEEDS)))
def test_random_bytes_as_checkpoint(data, suffix):
    _load(data, suffix)


@pytest.mark.slow
@LONG
@given(st.data(), st.sampled_from(sorted(SEEDS)))
def test_mutated_checkpoints_long(data, suffix):
    _load(_mutated(data, SEEDS[suffix]), suffix)


def test_a_storage_type_byte_flipped_is_a_corrupt_checkpoint():
    """One flipped bit turns a storage type into a string torch's unpickler then reads
    ``.dtype`` from (found by ``test_mutated_checkpoints``)."""
    buf = bytearray(SEEDS[".pt"])
    buf[556] ^= 1
    with pytest.raises(CorruptArtifactError, match="truncated or corrupt"):
        _load_strict(bytes(buf), ".pt")


def _load_strict(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"generator{suffix}"
        path.write_bytes(data)
        load_checkpoint(path)

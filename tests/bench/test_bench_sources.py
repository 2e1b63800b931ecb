"""Where the torch baselines' checkpoint comes from, and the text benchmark on a fake generator."""

from __future__ import annotations

from pathlib import Path

from genedge.bench.baselines import find_checkpoint
from genedge.bench.options import BenchOptions
from genedge.bench.text import _one
from genedge.manifest import Manifest, sha256_file


def _manifest(root: Path, name: str, sha: str | None, path: str | None = None) -> Manifest:
    return Manifest(
        root=root,
        kind="gan",
        model={},
        graphs={},
        artifacts=(),
        producer={},
        source={
            "checkpoint": name,
            **({"sha256": sha} if sha else {}),
            **({"path": path} if path else {}),
        },
    )


def test_checkpoint_found_through_the_manifests_source_path(tmp_path):
    """source.path (relative to the bundle) finds a checkpoint no name search would."""
    bundle = tmp_path / "out" / "bundles" / "b"
    bundle.mkdir(parents=True)
    ckpt = tmp_path / "elsewhere" / "deep" / "g.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    sha = sha256_file(ckpt)
    rel = "../../../elsewhere/deep/g.safetensors"
    found, why = find_checkpoint(_manifest(bundle, "g.safetensors", sha, rel), None)
    assert found == bundle / rel and found.resolve() == ckpt.resolve()
    assert str(found) in why and "source.path" in why and "sha256 matches" in why
    found, _ = find_checkpoint(_manifest(bundle, "g.safetensors", sha, str(ckpt)), None)
    assert found == ckpt  # an absolute source.path
    # the file at source.path changed since export: not used, and the note says why
    found, why = find_checkpoint(_manifest(bundle, "g.safetensors", "0" * 64, rel), None)
    assert found is None and "sha256" in why and "--checkpoint" in why
    # without source.path (older bundles) the name search is all there is: not found here
    found, why = find_checkpoint(_manifest(bundle, "g.safetensors", sha), None)
    assert found is None and "no source checkpoint found" in why
    # --checkpoint wins over source.path
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"weights")
    found, why = find_checkpoint(_manifest(bundle, "g.safetensors", sha, rel), other)
    assert found == other and "--checkpoint" in why


def test_source_path_that_moved_falls_back_to_the_name_search(tmp_path):
    (tmp_path / "bundle").mkdir()
    ckpt = tmp_path / "run" / "generator.safetensors"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")
    m = _manifest(
        tmp_path / "bundle", "generator.safetensors", sha256_file(ckpt), "../gone/x.safetensors"
    )
    found, why = find_checkpoint(m, None)
    assert found == ckpt and "found by the name" in why


def test_checkpoint_found_in_sibling_run_folder_and_hash_checked(tmp_path):
    (tmp_path / "bundle").mkdir()
    ckpt = tmp_path / "run" / "generator.safetensors"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")
    found, _ = find_checkpoint(
        _manifest(tmp_path / "bundle", "generator.safetensors", sha256_file(ckpt)), None
    )
    assert found == ckpt
    found, why = find_checkpoint(
        _manifest(tmp_path / "bundle", "generator.safetensors", "0" * 64), None
    )
    assert found is None and "sha256" in why
    found, why = find_checkpoint(_manifest(tmp_path / "bundle", "other.safetensors", None), None)
    assert found is None and "--checkpoint" in why
    found, why = find_checkpoint(
        _manifest(tmp_path / "bundle", "x", None), tmp_path / "missing.safetensors"
    )
    assert found is None and "does not exist" in why


class FakeTextGenerator:
    info = {"backend": "fake", "precision": "fp32"}
    closed = False

    def generate(self, prompt: str, max_new_tokens: int, seed: int = 0):
        yield from "x" * max_new_tokens

    def close(self) -> None:
        self.closed = True


def test_text_bench_counts_runs_and_tokens():
    gen = FakeTextGenerator()
    o = BenchOptions(bundle=Path("."), iters=40, warmup=0, max_new_tokens=8)
    res = _one(gen, o, "fake", "fp32")
    assert res["runs"] == 5 and res["tokens"] == 40  # iters counts tokens for ar bundles
    assert res["per_token"]["n"] == 5 * 7
    assert res["tokens_per_s"] > 0 and gen.closed


def test_busy_machine_note():
    from genedge.bench.suite import busy_machine_notes

    assert (
        busy_machine_notes(
            {"usable_cpus": 2, "load_average": [1.0, 1, 1], "load_average_end": [1.5, 1, 1]}, 2
        )
        == []
    )
    [note] = busy_machine_notes(
        {"usable_cpus": 2, "load_average": [9.4, 9, 8], "load_average_end": None}, 2
    )
    assert "9.4 on 2 usable CPUs" in note


def test_a_user_module_is_importable_by_name_for_torch_compile(tmp_path):
    """torch.compile (dynamo) imports a model's module by name: the user file must be there."""
    import sys

    from genedge.train.user_module import import_user_file

    path = tmp_path / "gen.py"
    path.write_text(
        "from dataclasses import dataclass\n\n@dataclass\nclass Cfg:\n    nz: int = 4\n"
    )
    mod = import_user_file(path)
    assert sys.modules[mod.__name__] is mod and mod.Cfg().nz == 4

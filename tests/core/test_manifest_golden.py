"""The JSON on disk does not change: committed schema-1 manifests parse and write back
byte for byte; a record's fields drive both its parsing and its writing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from genedge.errors import CorruptArtifactError
from genedge.manifest import (
    MANIFEST_NAME,
    EngineRecord,
    Verification,
    manifest_from_dict,
    transformer_config_from,
    write_manifest,
)
from genedge.record_fields import Int, Items, Text, entry, record_from, record_to_dict

GOLDEN = sorted((Path(__file__).parent / "golden").glob("manifest_v1_*.json"))


def test_there_are_golden_manifests_of_every_kind():
    kinds = {json.loads(p.read_text())["kind"] for p in GOLDEN}
    assert kinds == {"gan", "ar"} and len(GOLDEN) == 3


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_a_committed_manifest_is_written_back_identical(path, tmp_path):
    text = path.read_text(encoding="utf-8")
    m = manifest_from_dict(json.loads(text), tmp_path, check_files=False)
    write_manifest(tmp_path, m)
    assert (tmp_path / MANIFEST_NAME).read_text(encoding="utf-8") == text


def test_the_golden_gan_manifest_is_read_into_typed_records(tmp_path):
    path = next(p for p in GOLDEN if p.stem.endswith("gan"))
    m = manifest_from_dict(json.loads(path.read_text()), tmp_path, check_files=False)
    fp32, int8, engine = m.artifacts
    assert isinstance(int8.verification, Verification)
    assert int8.verification.metrics == {"fid_proxy": 1.25, "acc": None}
    assert int8.verification.extra == {"tolerance": 0.05}  # an unmodelled key is kept
    assert isinstance(engine.engine, EngineRecord) and engine.engine.profiles == ((1, 4, 8),)
    assert engine.engine.extra == {"strongly_typed": True} and not engine.verification.passed
    assert fp32.speed.others["openvino"][8] == 1.5
    assert fp32.inference_precisions.entries["bf16"].verification.psnr_vs_fp32 == 38.0
    assert int8.calibration.method == "entropy" and int8.calibration.samples == 128
    assert int8.recipe.kept_float == ("/Conv_0",) and int8.recipe.sensitivity["/Conv_0"] == 0.3


def test_the_golden_transformer_recipe_is_typed(tmp_path):
    path = next(p for p in GOLDEN if p.stem.endswith("transformer"))
    m = manifest_from_dict(json.loads(path.read_text()), tmp_path, check_files=False)
    (int4,) = m.find(precision="int4")
    assert (int4.recipe.bits, int4.recipe.block_size, int4.recipe.matmuls) == (4, 32, 14)
    assert int4.recipe.symmetric is True and int4.recipe.kept_float is None


@pytest.mark.parametrize(
    "key, value, named",
    [
        ("recipe", {"kept_float": "/Conv_0"}, "recipe.kept_float"),
        ("recipe", {"bits": 0}, "recipe.bits"),
        ("recipe", {"symmetric": "yes"}, "recipe.symmetric"),
        ("calibration", {"samples": -1}, "calibration.samples"),
        ("calibration", {"method": 3}, "calibration.method"),
    ],
)
def test_a_malformed_calibration_or_recipe_is_refused_by_name(tmp_path, key, value, named):
    path = next(p for p in GOLDEN if p.stem.endswith("gan"))
    raw = json.loads(path.read_text())
    raw["artifacts"][1][key] = value
    with pytest.raises(CorruptArtifactError) as info:
        manifest_from_dict(raw, tmp_path, check_files=False)
    assert f"{named} is" in info.value.message


@dataclass(frozen=True)
class _Probe:
    """A record declared only by its fields: the generic reader and writer do the rest."""

    name: str = entry(Text(("a", "b")))
    size: int = entry(Int(1, 9))
    tags: tuple[str, ...] = entry(Items(str, "a list of strings"), (), omit="empty")
    note: str | None = entry(Text(optional=True), None, omit="none")


def test_a_record_is_parsed_and_written_from_its_fields_alone():
    p = record_from(_Probe, {"name": "a", "size": 3, "tags": ["x"]}, "Probe", "probe")
    assert p == _Probe("a", 3, ("x",))
    assert record_to_dict(p) == {"name": "a", "size": 3, "tags": ["x"]}
    assert record_to_dict(_Probe("b", 9)) == {"name": "b", "size": 9}  # empty and None left out


@pytest.mark.parametrize(
    "raw, named, expected",
    [
        ({"size": 3}, "probe.name", "one of ('a', 'b')"),  # required and absent
        ({"name": "c", "size": 3}, "probe.name", "one of ('a', 'b')"),
        ({"name": "a", "size": 10}, "probe.size", "at most 9"),
        ({"name": "a", "size": True}, "probe.size", "an integer >= 1"),
        ({"name": "a", "size": 1, "tags": "x"}, "probe.tags", "a list of strings"),
        ({"name": "a", "size": 1, "colour": 1}, "probe key 'colour'", "only ["),
    ],
)
def test_a_malformed_field_is_refused_by_name(raw, named, expected):
    with pytest.raises(CorruptArtifactError) as info:
        record_from(_Probe, raw, "Probe", "probe")
    assert f"{named} is" in info.value.message and expected in info.value.message
    assert info.value.exit_code == 2


def test_an_engine_record_keeps_its_json_key_order_and_positional_fields():
    rec = EngineRecord("10.3.0", "8.7", device_name="L4")
    keys = list(rec.to_dict())
    assert keys[:3] == ["tensorrt_version", "device_name", "compute_capability"]
    assert rec.compute_capability == "8.7"


def _check(d: dict[str, Any]) -> None:
    transformer_config_from(d, "Manifest 'x'")


def test_cross_field_rules_run_after_the_fields():
    base = {"family": "llama", "tokenizer": "t.json", "vocab_size": 8, "num_layers": 1}
    base |= {"num_heads": 4, "num_kv_heads": 2, "head_dim": 8, "hidden_size": 32}
    base |= {"max_context": 16}
    _check(base)
    with pytest.raises(CorruptArtifactError, match="token id"):
        _check({**base, "eos_token_ids": [8]})
    with pytest.raises(CorruptArtifactError, match="model.num_kv_heads"):
        _check({**base, "num_kv_heads": 3})


def test_no_module_of_the_manifest_is_a_thousand_lines_again():
    core = Path(__file__).resolve().parents[2] / "genedge"
    files = ["manifest.py", "manifest_model.py", "manifest_records.py", "record_fields.py"]
    sizes = {f: len((core / f).read_text(encoding="utf-8").splitlines()) for f in files}
    assert max(sizes.values()) < 450, sizes


def test_every_name_imported_from_the_manifest_is_still_there():
    """The records moved into sibling modules; ``genedge.manifest`` still re-exports each."""
    import ast

    import genedge.manifest as manifest

    repo = Path(__file__).resolve().parents[2]
    missing = set()
    for stage in ("genedge", "train", "export", "runtime", "bench", "tests", "examples", "tools"):
        for path in (repo / stage).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module == "genedge.manifest":
                    missing |= {
                        f"{path.relative_to(repo)}: {a.name}"
                        for a in node.names
                        if not hasattr(manifest, a.name)
                    }
    assert not missing, sorted(missing)


def test_source_and_producer_are_typed_and_still_read_like_their_json(tmp_path):
    path = next(p for p in GOLDEN if p.stem.endswith("gan"))
    raw = json.loads(path.read_text())
    m = manifest_from_dict(raw, tmp_path, check_files=False)
    assert m.source.checkpoint == "gan.safetensors" and m.source.artifact_keys == {"fp32": "k1"}
    assert m.source["sha256"] == raw["source"]["sha256"] and m.source.get("data") is None
    assert m.source == raw["source"] and dict(m.producer) == raw["producer"]
    assert m.producer.torch == "2.5.0"


def test_a_source_in_another_key_order_is_written_back_in_its_own(tmp_path):
    """Each export route orders its source keys its own way; a read manifest keeps them."""
    path = next(p for p in GOLDEN if p.stem.endswith("gan"))
    raw = json.loads(path.read_text())
    raw["source"] = {"type": "checkpoint", "model_type": "llama", "sha256": "ab" * 32, "step": 3}
    m = manifest_from_dict(raw, tmp_path, check_files=False)
    assert list(m.to_dict()["source"]) == ["type", "model_type", "sha256", "step"]
    assert m.source.step == 3 and m.source.extra == {"model_type": "llama"}


@pytest.mark.parametrize(
    "section, value, named",
    [
        ("source", {"step": "3"}, "source.step"),
        ("source", {"skipped": {"int8": 1}}, "source.skipped.int8"),
        ("source", {"artifact_keys": []}, "source.artifact_keys"),
        ("producer", {"torch": 2.5}, "producer.torch"),
    ],
)
def test_a_malformed_source_or_producer_is_refused_by_name(tmp_path, section, value, named):
    path = next(p for p in GOLDEN if p.stem.endswith("gan"))
    raw = json.loads(path.read_text())
    raw[section] = value
    with pytest.raises(CorruptArtifactError) as info:
        manifest_from_dict(raw, tmp_path, check_files=False)
    assert f"{named} is" in info.value.message and info.value.exit_code == 2

"""The transformer ``model`` section of docs/text.md: parsed into ``TransformerConfig``, bounds
checked, written back unchanged; tokenizer and int4 artifacts; RNN sections unchanged."""

from __future__ import annotations

import pytest

from genedge.errors import CorruptArtifactError
from genedge.manifest import (
    RUN_PRECISIONS,
    TRANSFORMER_GRAPH,
    Manifest,
    main_graph,
    manifest_from_dict,
    model_config_from,
)

SECTION = {
    "arch": "transformer",
    "family": "llama",
    "tokenizer": "tokenizer.json",
    "vocab_size": 512,
    "num_layers": 4,
    "num_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 32,
    "hidden_size": 128,
    "max_context": 1024,
    "bos_token_id": None,
    "eos_token_ids": [0],
}


def test_section_round_trips():
    cfg = model_config_from(dict(SECTION), "ar", "m")
    t = cfg.transformer
    assert cfg.arch == "transformer" and cfg.vocab_size == 512
    assert (t.num_kv_heads, t.max_context, t.eos_token_ids) == (2, 1024, (0,))
    assert cfg.to_dict() == SECTION


def test_unknown_keys_are_kept_as_extra():
    cfg = model_config_from({**SECTION, "training": {"steps": 3}}, "ar", "m")
    assert cfg.extra["training"] == {"steps": 3}
    assert cfg.to_dict()["training"] == {"steps": 3}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_kv_heads": 3}, "num_kv_heads"),
        ({"num_heads": 0}, "num_heads"),
        ({"max_context": 1}, "max_context"),
        ({"max_context": 1 << 30}, "max_context"),
        ({"eos_token_ids": [512]}, "token id"),
        ({"eos_token_ids": 0}, "eos_token_ids"),
        ({"bos_token_id": -1}, "bos_token_id"),
        ({"family": "bert"}, "family"),
        ({"tokenizer": None}, "tokenizer"),
        ({"vocab_size": "512"}, "vocab_size"),
    ],
)
def test_bad_sections_are_refused_naming_the_field(change, field):
    with pytest.raises(CorruptArtifactError, match=field):
        model_config_from({**SECTION, **change}, "ar", "m")


def test_rnn_sections_are_unchanged():
    cfg = model_config_from({"vocab": "ab", "state_names": ["h"]}, "ar", "m")
    assert cfg.transformer is None and cfg.arch is None and cfg.vocab_size == 2


def _manifest(tmp_path, artifacts) -> Manifest:
    raw = {
        "format": "genedge.bundle",
        "schema_version": 1,
        "kind": "ar",
        "model": SECTION,
        "graphs": {},
        "artifacts": artifacts,
    }
    return manifest_from_dict(raw, tmp_path, check_files=False)


def test_tokenizer_and_int4_artifacts_parse_and_main_graph_is_decoder(tmp_path):
    arts = [
        {"file": "tokenizer.json", "graph": "decoder", "format": "tokenizer", "sha256": "0", "size": 1},
        {"file": "model.int4.onnx", "graph": "decoder", "format": "onnx", "precision": "int4",
         "sha256": "0", "size": 1},
    ]  # fmt: skip
    m = _manifest(tmp_path, arts)
    assert main_graph(m) == TRANSFORMER_GRAPH == "decoder"
    assert [a.precision for a in m.find(graph="decoder")] == [None, "int4"]
    assert "int4" in RUN_PRECISIONS


def test_unknown_precision_still_refused(tmp_path):
    arts = [{"file": "m.onnx", "graph": "decoder", "format": "onnx", "precision": "int3",
             "sha256": "0", "size": 1}]  # fmt: skip
    with pytest.raises(CorruptArtifactError, match="artifact.precision is .int3."):
        _manifest(tmp_path, arts)

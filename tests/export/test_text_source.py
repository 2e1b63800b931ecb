"""``genedge export HF_FOLDER``: tiny random models of every supported family, exported with a
KV cache, checked against ``transformers`` (logits in the manifest, greedy tokens through the
runtime), and the folders genedge must refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from text_fixtures import edit_config, export_folder, hf_folder, hf_greedy  # noqa: E402

from genedge.cli import main  # noqa: E402
from genedge.manifest import read_manifest  # noqa: E402

PROMPT = "Return the"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """family -> (HF folder, exported bundle)."""
    d = tmp_path_factory.mktemp("text")
    out = {}
    for family in ("llama", "gpt2", "qwen2", "mistral"):
        folder = hf_folder(d / family, family)
        out[family] = (folder, export_folder(folder, d / f"{family}-bundle"))
    return out


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_greedy_tokens_and_text_equal_transformers_generate(bundles, family):
    from tokenizers import Tokenizer

    from genedge.runtime import TextGenerator

    folder, bundle = bundles[family]
    want = hf_greedy(folder, PROMPT, 40)
    with TextGenerator.open(bundle, backend="ort-cpu") as tg:
        g = tg.generate(PROMPT, max_new_tokens=40, temperature=0)
        streamed = "".join(g)
    assert g.tokens == want
    text = Tokenizer.from_file(str(folder / "tokenizer.json")).decode(want)
    assert g.text == streamed == text


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2", "mistral"])
def test_manifest_records_parity_and_model_section(bundles, family):
    from genedge.export.routes.text_source import PARITY_DECODE

    folder, bundle = bundles[family]
    m = read_manifest(bundle)
    cfg = json.loads((folder / "config.json").read_text())
    t = m.model.transformer
    assert (m.kind, m.model.arch, t.family) == ("ar", "transformer", family)
    heads = cfg.get("num_attention_heads", cfg.get("n_head"))
    kv = cfg.get("num_key_value_heads", heads)
    assert (t.num_heads, t.num_kv_heads, t.vocab_size) == (heads, kv, cfg["vocab_size"])
    (onnx,) = m.find(graph="decoder", format="onnx", precision="fp32")
    v = onnx.verification
    assert v.max_abs_err_vs_torch is not None and v.max_abs_err_vs_torch < 1e-3
    assert v.extra["decode_tokens"] == PARITY_DECODE and v.extra["prefill_tokens"] > 1
    (tok,) = m.find(format="tokenizer")
    assert tok.file == t.tokenizer == "tokenizer.json"
    assert (bundle / "tokenizer.json").read_bytes() == (folder / "tokenizer.json").read_bytes()


def test_qwen2_bias_and_tied_head_are_in_the_graph(bundles):
    """Qwen2's q/k/v biases and its tied head: parity would fail without them; check they
    really are there (a bias-free model would pass trivially)."""
    import torch
    from transformers import AutoModelForCausalLM

    folder, _ = bundles["qwen2"]
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.bias is not None and torch.count_nonzero(attn.q_proj.bias) == 0
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_qwen2_nonzero_bias_parity(tmp_path):
    """Random init leaves biases at zero: set them, re-save, and the export still matches."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = hf_folder(tmp_path / "q", "qwen2")
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    torch.manual_seed(1)
    with torch.no_grad():
        for layer in model.model.layers:
            for lin in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                lin.bias.normal_(0, 0.5)
    model.save_pretrained(folder)
    bundle = export_folder(folder, tmp_path / "b")
    (onnx,) = read_manifest(bundle).find(format="onnx")
    assert onnx.verification.max_abs_err_vs_torch < 1e-3
    from genedge.runtime import TextGenerator

    with TextGenerator.open(bundle, backend="ort-cpu") as tg:
        g = tg.generate(PROMPT, max_new_tokens=16, temperature=0)
        list(g)
    assert g.tokens == hf_greedy(folder, PROMPT, 16)


def test_eos_of_the_folder_stops_generation_as_transformers_does(tmp_path):
    folder = hf_folder(tmp_path / "l", "llama")
    free = hf_greedy(folder, PROMPT, 30)
    eos = next(t for t in free[3:] if t != free[0])  # a token greedy reaches after a few steps
    edit_config(folder, eos_token_id=eos)
    gen = json.loads((folder / "generation_config.json").read_text())
    gen["eos_token_id"] = eos
    (folder / "generation_config.json").write_text(json.dumps(gen))
    want = hf_greedy(folder, PROMPT, 30)
    assert want[-1] == eos and len(want) < 30
    from genedge.runtime import TextGenerator

    with TextGenerator.open(export_folder(folder, tmp_path / "b"), backend="ort-cpu") as tg:
        g = tg.generate(PROMPT, max_new_tokens=30, temperature=0)
        list(g)
    assert g.tokens == want and g.stop_reason == "eos"


def test_cli_export_then_generate(bundles, tmp_path, capsys):
    folder, _ = bundles["gpt2"]
    out = tmp_path / "cli-bundle"
    assert main(["export", str(folder), "--out", str(out), "--precision", "fp32"]) == 0
    capsys.readouterr()
    rc = main(
        ["generate", str(out), "--prompt", PROMPT, "--max-new-tokens", "12", "--temperature", "0"]
    )
    captured = capsys.readouterr()
    assert rc == 0 and captured.out.startswith(PROMPT)
    assert "tok/s" in captured.err


# ---------------------------------------------------------------- refusals
def _refused(capsys, folder: Path, out: Path, *words: str) -> None:
    rc = main(["export", str(folder), "--out", str(out), "--precision", "fp32"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err
    assert not out.exists()  # nothing partial at --out


@pytest.fixture
def llama(tmp_path) -> Path:
    return hf_folder(tmp_path / "src", "llama")


def test_refuses_unsupported_model_type(llama, tmp_path, capsys):
    edit_config(llama, model_type="bert")
    _refused(capsys, llama, tmp_path / "o", "'bert'", "llama, qwen2, mistral, gpt2")


def test_refuses_remote_code(llama, tmp_path, capsys):
    edit_config(llama, auto_map={"AutoModelForCausalLM": "modeling_x.XForCausalLM"})
    _refused(capsys, llama, tmp_path / "o", "auto_map", "trust_remote_code")


def test_refuses_missing_weights(llama, tmp_path, capsys):
    (llama / "model.safetensors").rename(llama / "pytorch_model.bin")
    _refused(capsys, llama, tmp_path / "o", "no *.safetensors", "pytorch_model.bin")


def test_refuses_missing_tokenizer(llama, tmp_path, capsys):
    (llama / "tokenizer.json").unlink()
    _refused(capsys, llama, tmp_path / "o", "no tokenizer.json")


def test_refuses_weights_of_another_config(llama, tmp_path, capsys):
    edit_config(llama, num_hidden_layers=3)  # layer 2 has no weights in the file
    _refused(capsys, llama, tmp_path / "o", "do not match config.json", "missing keys")


def test_refuses_weights_of_another_shape(llama, tmp_path, capsys):
    edit_config(llama, intermediate_size=96)
    _refused(capsys, llama, tmp_path / "o", "weights")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_refuses_weights_whose_own_logits_are_not_finite(llama, tmp_path, capsys, bad):
    """NaN/Inf in the source's weights is the source's fault, not a wrapper bug (exit 2)."""
    from safetensors.numpy import load_file, save_file

    weights = load_file(llama / "model.safetensors")
    name = next(k for k in weights if k.endswith("mlp.down_proj.weight"))
    weights[name] = weights[name].copy()
    weights[name][0, :3] = bad
    save_file(weights, llama / "model.safetensors")
    _refused(capsys, llama, tmp_path / "o", "NaN or infinite", "weights are broken")


def test_refuses_garbage_config(llama, tmp_path, capsys):
    (llama / "config.json").write_text("{not json")
    _refused(capsys, llama, tmp_path / "o", "config.json", "is not valid JSON")


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_refuses_a_config_or_tokenizer_that_is_not_a_regular_file(
    llama, tmp_path, capsys, name, kind
):
    """A FIFO would block the read and /dev/zero would never end: both are refused from the
    file's type, before anything is read, with the same exit and message as other refusals."""
    import os

    path = llama / name
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    expected = {"fifo": "is a FIFO", "dev-zero": "is a device", "folder": "is a folder"}[kind]
    _refused(capsys, llama, tmp_path / "o", name, expected, "expected a regular file")


def test_refuses_a_huge_config(llama, tmp_path, capsys):
    with open(llama / "config.json", "ab") as f:
        f.truncate(17 << 20)  # sparse: 17 MiB of nothing after the JSON
    _refused(capsys, llama, tmp_path / "o", "config.json", "the limit for it is 16 MiB")


def test_refuses_length_dependent_rope(llama, tmp_path, capsys):
    edit_config(
        llama, rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}
    )
    _refused(capsys, llama, tmp_path / "o", "'dynamic'", "default, linear")


def test_refuses_tokenizer_larger_than_vocab(tmp_path, capsys):
    from text_fixtures import write_tokenizer

    folder = hf_folder(tmp_path / "src", "llama", vocab_size=280, tokenizer=False)
    write_tokenizer(folder, vocab_size=320)
    _refused(capsys, folder, tmp_path / "o", "320 tokens", "vocab_size is 280")


def test_int4_is_refused_for_image_bundles(ckpts, tmp_path):
    from genedge.errors import BadInputError
    from genedge.export.bundle import export_bundle
    from genedge.export.options import ExportOptions

    opts = ExportOptions(ckpts["gan"], tmp_path / "o", precisions=("fp32", "int4"))
    with pytest.raises(BadInputError, match="transformer language models only"):
        export_bundle(opts)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "rope",
    [
        {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0},
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
            "rope_theta": 500000.0,
        },
    ],
)
def test_scaled_rope_kinds_export_with_parity(tmp_path, rope):
    folder = hf_folder(tmp_path / "l", "llama", rope_parameters=rope)
    (onnx,) = read_manifest(export_folder(folder, tmp_path / "b")).find(format="onnx")
    assert onnx.verification.max_abs_err_vs_torch < 1e-3


def test_mistral_sliding_window_caps_the_context(tmp_path):
    folder = hf_folder(tmp_path / "m", "mistral", sliding_window=48)
    m = read_manifest(export_folder(folder, tmp_path / "b"))
    assert m.model.transformer.max_context == 48


def test_eval_data_file_is_the_held_out_text(tmp_path):
    from text_fixtures import sample_text

    text = tmp_path / "held.txt"
    text.write_text(sample_text()[-4000:], encoding="utf-8")
    folder = hf_folder(tmp_path / "g", "gpt2")
    m = read_manifest(export_folder(folder, tmp_path / "b", eval_data=str(text)))
    (onnx,) = m.find(format="onnx")
    assert onnx.verification.extra["text"] == "held.txt"


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_graph_runs_batches_of_two_with_a_cache(bundles, family):
    """B is symbolic: two rows prefilled, then one cached step, against transformers."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForCausalLM

    folder, bundle = bundles[family]
    m = read_manifest(bundle)
    t = m.model.transformer
    ids = np.random.default_rng(0).integers(0, t.vocab_size, (2, 9)).astype(np.int64)
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    kv = np.zeros((2, t.num_kv_heads, 0, t.head_dim), np.float32)
    feed = {"input_ids": ids[:, :8], "position_ids": np.tile(np.arange(8), (2, 1))}
    for i in range(t.num_layers):
        feed[f"past_key_values.{i}.key"] = feed[f"past_key_values.{i}.value"] = kv
    names = [o.name for o in sess.get_outputs()]
    first = dict(zip(names, sess.run(None, feed), strict=True))
    step = {"input_ids": ids[:, 8:], "position_ids": np.full((2, 1), 8)}
    for i in range(t.num_layers):
        for p in ("key", "value"):
            step[f"past_key_values.{i}.{p}"] = first[f"present.{i}.{p}"]
    last = sess.run(["logits"], step)[0]
    got = np.concatenate([first["logits"], last], axis=1)  # (2, 9, V)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(ids)).logits.numpy()
    assert np.abs(got - ref).max() < 1e-3


# ---------------------------------------------------------------- --module causal LM
def test_module_causal_lm_exports_and_generates_its_own_greedy_tokens(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file
    from text_fixtures import write_tokenizer
    from text_user_lm import TinyLM, greedy

    from genedge.runtime import TextGenerator

    here = Path(__file__).with_name("text_user_lm.py")
    torch.manual_seed(0)
    module = TinyLM().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(3.0)
    save_file(module.state_dict(), str(tmp_path / "w.safetensors"))
    tok = write_tokenizer(tmp_path)
    out = tmp_path / "b"
    argv = ["export", "--module", f"{here}:TinyLM", "--weights", str(tmp_path / "w.safetensors")]
    argv += ["--tokenizer", str(tok), "--out", str(out), "--precision", "fp32"]
    assert main(argv) == 0, capsys.readouterr().err
    m = read_manifest(out)
    assert (m.model.transformer.family, m.model.transformer.max_context) == ("module", 128)
    (onnx,) = m.find(format="onnx")
    v = onnx.verification
    assert v.reference == "module" and v.verdict == "pass"
    assert v.max_abs_err_vs_torch <= v.extra["tolerance"]
    with TextGenerator.open(out, backend="ort-cpu") as tg:
        g = tg.generate(PROMPT, max_new_tokens=30, temperature=0)
        list(g)
        want = greedy(module, tg.encode(PROMPT), 30)
    assert g.tokens == want


def test_module_breaking_the_call_contract_is_refused(tmp_path, capsys):
    from text_fixtures import write_tokenizer

    src = tmp_path / "bad_lm.py"
    src.write_text(
        "import torch\n"
        "class Bad(torch.nn.Module):\n"
        "    num_layers, num_kv_heads, head_dim, vocab_size, max_context = 1, 1, 4, 320, 64\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.e = torch.nn.Embedding(320, 320)\n"
        "    def forward(self, ids, pos, past):\n"
        "        return self.e(ids), []\n"
    )
    tok = write_tokenizer(tmp_path)
    out = tmp_path / "b"
    argv = ["export", "--module", f"{src}:Bad", "--weights", "none", "--tokenizer", str(tok)]
    rc = main([*argv, "--out", str(out), "--precision", "fp32"])
    err = capsys.readouterr().err
    assert rc == 2 and "present of 0 layers; expected 1" in err and "Traceback" not in err
    assert not out.exists()

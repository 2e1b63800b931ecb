"""The shared-cache decoder graph (docs/text.md): ONNX Runtime's ``GroupQueryAttention`` writes
keys and values into one buffer per layer that ``KvDecoder`` binds as both past and present.
Checked against ``transformers`` for any split of the tokens into feeds, across generations
that reuse the buffer, and in the weight-only int4 file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("onnxruntime")

from text_fixtures import export_folder, hf_folder, hf_greedy  # noqa: E402

from genedge.errors import BadInputError  # noqa: E402
from genedge.manifest import read_manifest  # noqa: E402
from genedge.runtime import TextGenerator  # noqa: E402

PROMPT = "Return the"


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def bundle(request, tmp_path_factory) -> tuple[str, Path, Path]:
    """(family, HF folder, bundle) with fp32 and int4."""
    d = tmp_path_factory.mktemp(request.param)
    folder = hf_folder(d / "hf", request.param, max_position_embeddings=64)
    return request.param, folder, export_folder(folder, d / "b", precisions=("fp32", "int4"))


def _torch_logits(folder: Path, ids: np.ndarray) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    with torch.no_grad():
        return model(torch.from_numpy(ids[None])).logits[0].numpy()


@pytest.mark.parametrize("file", ["model.onnx", "model.int4.onnx"])
def test_graph_attends_with_group_query_attention_on_one_buffer(bundle, file):
    import onnx

    _, _, b = bundle
    model = onnx.load(str(b / file))
    ops = [n.op_type for n in model.graph.node]
    layers = read_manifest(b).model.transformer.num_layers
    assert ops.count("GroupQueryAttention") == layers
    assert "Concat" not in {n.op_type for n in model.graph.node if "present" in "".join(n.output)}
    dims = {
        vi.name: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in list(model.graph.input) + list(model.graph.output)
    }
    assert dims["past_key_values.0.key"][2] == dims["present.0.key"][2] == "M"
    # q/k/v reach the op packed (key and value inputs empty), with no Split in between
    gqa = [n for n in model.graph.node if n.op_type == "GroupQueryAttention"]
    assert all(n.input[1] == n.input[2] == "" for n in gqa)
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert "Split" not in {producers[n.input[0]] for n in gqa}


def test_llama_residual_adds_are_fused_with_the_norms(bundle):
    """Each residual add and the RMSNorm after it: one SkipSimplifiedLayerNormalization."""
    import onnx

    family, _, b = bundle
    if family != "llama":
        pytest.skip("the Llama families' RMSNorm")
    layers = read_manifest(b).model.transformer.num_layers
    nodes = onnx.load(str(b / "model.onnx")).graph.node
    norms = [n for n in nodes if n.op_type == "SkipSimplifiedLayerNormalization"]
    assert len(norms) == 2 * layers
    # their unread statistics are unnamed (ORT would allocate them every run)
    assert all(list(n.output[1:3]) in ([], ["", ""]) for n in norms)


def test_any_split_into_feeds_matches_transformers(bundle):
    """Prefill 5, then 3 tokens at once at P > 0, then one at a time: the cache is written in
    place where the positions say."""
    _, folder, b = bundle
    ids = np.random.default_rng(1).integers(3, 300, 12).astype(np.int64)
    with TextGenerator.open(b, backend="ort-cpu", precision="fp32") as tg:
        dec = tg.decoder
        assert dec.shared
        dec.reserve(len(ids))
        got = [dec.feed(ids[:5]).copy(), dec.feed(ids[5:8]).copy()]
        got += [dec.feed(ids[i : i + 1]).copy() for i in range(8, 12)]
    ref = _torch_logits(folder, ids)
    assert np.abs(np.concatenate(got) - ref).max() < 1e-4


def test_generations_reusing_the_buffer_equal_transformers(bundle):
    """A long generation, then a short one on the same (stale) buffer, then a longer
    reservation: each one's greedy tokens are transformers' own."""
    _, folder, b = bundle
    with TextGenerator.open(b, backend="ort-cpu", precision="fp32") as tg:
        for prompt, n in ((PROMPT + " value of the", 30), (PROMPT, 8), (PROMPT, 50)):
            g = tg.generate(prompt, max_new_tokens=n, temperature=0)
            list(g)
            assert g.tokens == hf_greedy(folder, prompt, n)


def test_int4_generates_from_its_own_buffer(bundle):
    _, _, b = bundle
    with TextGenerator.open(b, backend="ort-cpu", precision="int4") as tg:
        assert tg.decoder.shared
        g = tg.generate(PROMPT, max_new_tokens=20, temperature=0, eos=False)
        list(g)
        first = list(g.tokens)
        g = tg.generate(PROMPT, max_new_tokens=20, temperature=0, eos=False)
        list(g)
        assert len(first) == 20 and g.tokens == first  # the stale buffer changes nothing


def test_tensorrt_sources_are_the_concatenated_cache_trace(tmp_path):
    """TensorRT cannot parse GroupQueryAttention: its engines are built from the same wrapper
    traced with the concatenated cache, whose P and S the engine profiles cover."""
    from types import SimpleNamespace

    import onnx
    import onnxruntime as ort

    from genedge.export.routes.text_source import load_hf_folder
    from genedge.export.routes.text_wrappers import DecoderShape, LlamaDecoder, decoder_graph_spec
    from genedge.export.stages.text_tensorrt import (
        engine_graphs,
        text_profile_shapes,
        text_profiles,
    )

    folder = hf_folder(tmp_path / "hf", "llama", max_position_embeddings=64)
    hf = load_hf_folder(folder)
    c = hf.config
    shape = DecoderShape(c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size)
    wrapper = LlamaDecoder(hf.model, shape, shared=True)
    build = SimpleNamespace(
        wrapper=wrapper,
        spec=decoder_graph_spec(shape, shared=True),
        opts=SimpleNamespace(opset=17),
        tmp=tmp_path / "bundle",
    )
    inputs, files = engine_graphs(build, {"fp32", "int4"}, tmp_path)
    assert list(files) == ["fp32"] and wrapper.shared  # int4 gets no engine; wrapper restored
    model = onnx.load(str(files["fp32"]))
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}
    assert "GroupQueryAttention" not in {n.op_type for n in model.graph.node}
    assert all(text_profile_shapes(inputs, p) for p in text_profiles(c.max_context))
    ids = np.arange(3, 12, dtype=np.int64)
    kv = np.zeros((1, c.num_kv_heads, 0, c.head_dim), np.float32)
    feed = {"input_ids": ids[None], "position_ids": np.arange(len(ids))[None]}
    feed |= {t["name"]: kv for t in inputs if t["name"].startswith("past_key_values")}
    sess = ort.InferenceSession(str(files["fp32"]), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], feed)[0][0]
    assert np.abs(got - _torch_logits(folder, ids)).max() < 1e-4


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ({}, ("1", "", "300")),
        ({"spin_between_runs": False}, ("1", "1", "")),
        ({"spin_us": 50}, ("1", "", "50")),
        ({"spin": False}, ("0", "", "")),
    ],
)
def test_decoder_workers_spin_through_a_generation_then_sleep(bundle, given, want):
    """A transformer bundle runs once per token with a short Python gap between runs: its
    ORT workers spin a bounded time after each run (awake through the generation, asleep
    soon after it), unless the caller chooses the spin policy."""
    _, _, b = bundle
    with TextGenerator.open(b, backend="ort-cpu", threads=2, **given) as tg:
        so = tg.backend._sess.get_session_options()
        keys = (
            "session.intra_op.allow_spinning",
            "session.force_spinning_stop",
            "session.intra_op.spin_duration_us",
        )
        assert tuple(_entry(so, k) for k in keys) == want


@pytest.mark.parametrize("bad", [-1, 1.5, "300", 10**7, True])
def test_a_spin_time_that_is_not_microseconds_is_refused(bundle, bad):
    _, _, b = bundle
    with pytest.raises(BadInputError, match="spin_us"):
        TextGenerator.open(b, backend="ort-cpu", spin_us=bad)


def _entry(so, key: str) -> str:
    """A session config entry, "" when unset (ORT raises for an unknown key)."""
    try:
        return so.get_session_config_entry(key)
    except Exception:
        return ""


def test_a_short_reservation_after_a_long_one_binds_a_cache_of_its_own_size(bundle):
    """The buffer from a long reservation is kept, but a shorter one binds only its own
    positions (attention strides over the cache it uses) and refuses feeds past them."""
    _, _, b = bundle
    ids = np.arange(3, 15, dtype=np.int64)
    with TextGenerator.open(b, backend="ort-cpu", precision="fp32") as tg:
        dec = tg.decoder
        dec.reserve(40)
        first = dec.feed(ids).copy()
        buffer = dec._kv
        dec.reserve(len(ids))
        assert (dec.capacity, dec.reserved) == (40, len(ids)) and dec._kv is buffer
        np.testing.assert_allclose(dec.feed(ids), first, rtol=1e-5, atol=1e-5)
        shapes = {tuple(v.shape()) for v in tg.backend._binding.get_outputs()}
        cfg = dec.cfg
        assert (1, cfg.num_kv_heads, len(ids), cfg.head_dim) in shapes
        assert (1, cfg.num_kv_heads, 40, cfg.head_dim) not in shapes
        with pytest.raises(BadInputError, match="the cache holds 12 positions"):
            dec.feed(ids[:1])


def test_a_decode_step_after_close_is_refused_not_run(bundle):
    """The one-token step reruns the bound arrays; once the generator is closed it refuses."""
    _, _, b = bundle
    tg = TextGenerator.open(b, backend="ort-cpu", precision="fp32")
    g = tg.start(PROMPT, max_new_tokens=10, temperature=0, eos=False)
    g.step()
    g.step()  # the step arrays are bound now
    tg.close()
    with pytest.raises(BadInputError, match="closed"):
        g.step()
    assert len(g.tokens) == 2


@pytest.mark.parametrize("precision", ["fp32", "int4"])
def test_a_prompt_computes_the_head_for_its_last_position_only(bundle, precision):
    """The exported graph has the optional logits_from input: a prefill asks for the last
    position's logits (the same numbers), and a later feed still gets every position's."""
    _, _, b = bundle
    ids = np.arange(3, 15, dtype=np.int64)
    with TextGenerator.open(b, backend="ort-cpu", precision=precision) as tg:
        assert tg.backend.optional_inputs == {"logits_from"}
        dec = tg.decoder
        dec.reserve(len(ids))
        last = dec.feed_last(ids).copy()
        assert dec._logits.size == last.size  # one row: the buffer was bound as (1, 1, V)
        dec.reserve(len(ids))
        every = dec.feed(ids).copy()
        assert every.shape == (len(ids), last.size)
        # the same numbers (int4: MatMulNBits' one-row and many-row kernels round apart)
        np.testing.assert_allclose(last, every[-1], rtol=1e-5, atol=1e-5)

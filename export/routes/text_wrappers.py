"""The ``decoder`` graph of a transformer language model, one small wrapper per family shape.

Both wrappers implement the contract of docs/text.md: ``input_ids`` int64 (B, S),
``position_ids`` int64 (B, S) and per layer ``past_key_values.{i}.key/value`` float32
(B, H_kv, P, D) in; ``logits`` float32 (B, S, V) and ``present.{i}.key/value`` float32
(B, H_kv, P + S, D) out. The causal mask is computed in the graph from S and P. Weights are
read from the loaded ``transformers`` model's public modules (its own norms and MLPs run
as they are); attention, rotary embedding and the cache are written out here so that the
traced graph has the flat I/O above.

``LlamaDecoder`` covers ``llama``, ``qwen2`` (q/k/v bias comes with its ``Linear``s) and
``mistral``; ``Gpt2Decoder`` covers ``gpt2``. Built with ``shared=True`` (what export uses),
both trace the shared cache layout instead: past and present one buffer of M positions
(B, H_kv, M, D) each, attention, rotary embedding and the cache write in ONNX Runtime's
``GroupQueryAttention`` (``GroupQueryAttention.symbolic``, fed the packed q/k/v projection),
and for the Llama families each residual add fused with the RMSNorm after it
(``SkipRmsNorm``); ``shared=False`` traces the concatenated layout with standard ops, which
TensorRT builds engines from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genedge.export.rewrites.last_logits import add_logits_from
from genedge.export.rewrites.rms_scale import restore_rms_scales
from genedge.export.rewrites.unread_outputs import drop_unread_outputs
from genedge.export.routes.onnx_export import slim_model
from genedge.export.routes.wrappers import B, GraphSpec
from genedge.lazy import lazy_import
from genedge.manifest import TensorSpec

onnx = lazy_import("onnx")

GRAPH = "decoder"
STEM = "model"


@dataclass(frozen=True)
class DecoderShape:
    """The sizes the graph's I/O is declared with."""

    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int


def decoder_graph_spec(shape: DecoderShape, shared: bool = False) -> GraphSpec:
    """The ``decoder`` GraphSpec of docs/text.md: symbolic B, S, P, T = P + S; with ``shared``
    the cache is one buffer of M positions that is both past and present (M for both)."""
    kv = (B, shape.num_kv_heads, "M" if shared else "P", shape.head_dim)
    present = (B, shape.num_kv_heads, "M" if shared else "T", shape.head_dim)
    inputs = [
        TensorSpec("input_ids", "int64", (B, "S")),
        TensorSpec("position_ids", "int64", (B, "S")),
    ]
    outputs = [TensorSpec("logits", "float32", (B, "S", shape.vocab_size))]
    for i in range(shape.num_layers):
        for part in ("key", "value"):
            inputs.append(TensorSpec(f"past_key_values.{i}.{part}", "float32", kv))
            outputs.append(TensorSpec(f"present.{i}.{part}", "float32", present))
    return GraphSpec(GRAPH, STEM, tuple(inputs), tuple(outputs))


def dynamic_axes(spec: GraphSpec) -> dict[str, dict[int, str]]:
    """Every symbolic dimension of ``spec``, by name, as ``torch.onnx.export`` takes them."""
    return {
        t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)}
        for t in spec.inputs + spec.outputs
    }


def causal_bias(S: int, P: int, device: Any) -> torch.Tensor:
    """float (S, P + S), added to attention scores: 0 where query i (absolute position P + i)
    may see key j (j <= P + i), the most negative float elsewhere. Built once per run."""
    keys = torch.arange(P + S, device=device)  # (T,)
    queries = torch.arange(S, device=device) + P  # (S,)
    visible = keys[None, :] <= queries[:, None]  # (S, T)
    return torch.zeros(visible.shape, device=device).masked_fill(~visible, torch.finfo().min)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float
) -> torch.Tensor:
    """Softmax attention with grouped kv heads: q (B, H, S, D), k/v (B, Hkv, T, D) -> (B, S, H*D).

    The H / Hkv query heads of one kv head are stacked along the query axis, so each kv head
    is multiplied once and never copied per query head (no repeat of the cache per step).
    """
    Bq, H, S, D = q.shape
    Hkv, T = k.shape[1], k.shape[2]
    r = H // Hkv  # query heads per kv head
    q = q.reshape(Bq, Hkv, r * S, D)  # (B, Hkv, r*S, D)
    att = torch.matmul(q, k.transpose(-1, -2)) * scale  # (B, Hkv, r*S, T)
    att = att.reshape(Bq, Hkv, r, S, T) + bias  # (B, Hkv, r, S, T)
    p = torch.softmax(att, dim=-1).reshape(Bq, Hkv, r * S, T)  # (B, Hkv, r*S, T)
    y = torch.matmul(p, v).reshape(Bq, H, S, D)  # (B, H, S, D)
    return y.transpose(1, 2).reshape(Bq, S, H * D)  # (B, S, H*D)


class GroupQueryAttention(torch.autograd.Function):
    """ONNX Runtime's ``com.microsoft::GroupQueryAttention`` on a shared cache buffer.

    qkv (B, S, (H + 2 Hkv) D): queries, keys and values side by side, as one packed projection
    makes them (the op's packed-QKV form: no Split before it); past_k/past_v (B, Hkv, M, D),
    the buffer whose first P = total - S positions hold the cache; ``seqlens_k`` int32 (B,) =
    total - 1, ``total`` int32 scalar; ``cos``/``sin`` (max positions, D/2) or None: rotary
    embedding (rotate-half form) applied to q and k at positions P .. total - 1 inside the op.
    Returns the attention output (B, S, H*D) and the buffers with the new keys/values written
    at P .. total - 1. The exported node is the contrib op (ORT writes into the buffer in place
    when past and present are bound to the same memory); ``forward`` is the same math in
    torch, which tracing runs.
    """

    @staticmethod
    def forward(ctx, qkv, past_k, past_v, seqlens_k, total, cos, sin, heads, kv_heads, scale):
        del ctx, seqlens_k
        Bq, S, _ = qkv.shape
        D = past_k.shape[-1]
        T = int(total)
        qk = (heads + kv_heads) * D
        q, k, v = qkv[..., : heads * D], qkv[..., heads * D : qk], qkv[..., qk:]
        q = q.reshape(Bq, S, heads, D)  # (B, S, H, D)
        k = k.reshape(Bq, S, kv_heads, D)  # (B, S, Hkv, D)
        if cos is not None:
            c = torch.cat((cos[T - S : T], cos[T - S : T]), -1)[:, None]  # (S, 1, D)
            s = torch.cat((sin[T - S : T], sin[T - S : T]), -1)[:, None]
            q, k = q * c + rotate_half(q) * s, k * c + rotate_half(k) * s
        present = []
        for buf, new in ((past_k, k), (past_v, v.reshape(Bq, S, kv_heads, D))):
            buf = buf.clone()
            buf[:, :, T - S : T] = new.transpose(1, 2)
            present.append(buf)
        bias = causal_bias(S, T - S, q.device)
        k_all, v_all = present[0][:, :, :T], present[1][:, :, :T]
        return attend(q.transpose(1, 2), k_all, v_all, bias, scale), present[0], present[1]

    @staticmethod
    def symbolic(g, qkv, past_k, past_v, seqlens_k, total, cos, sin, heads, kv_heads, scale):
        rotary = [] if cos is None else [cos, sin]
        absent = [_absent_input(g), _absent_input(g)]  # key, value: packed into qkv
        y, present_k, present_v = g.op(
            "com.microsoft::GroupQueryAttention",
            *(qkv, *absent, past_k, past_v, seqlens_k, total, *rotary),
            num_heads_i=heads,
            kv_num_heads_i=kv_heads,
            scale_f=scale,
            do_rotary_i=int(bool(rotary)),
            rotary_interleaved_i=0,
            outputs=3,
        )
        sizes = qkv.type().varyingSizes()  # (B, S, (H + 2 Hkv) D) -> (B, S, H D)
        if sizes and sizes[-1] is not None:
            sizes[-1] = sizes[-1] * heads // (heads + 2 * kv_heads)
        y.setType(qkv.type().with_sizes(sizes))
        for out, like in ((present_k, past_k), (present_v, past_v)):
            out.setType(like.type())
        return y, present_k, present_v


class SkipRmsNorm(torch.autograd.Function):
    """ONNX Runtime's ``com.microsoft::SkipSimplifiedLayerNormalization``: the residual add and
    the next RMSNorm in one node. x, skip (B, S, C), weight (C,) -> (weight * s / sqrt(mean(s^2)
    + eps), s) with s = x + skip: the normalized input of the next block and the residual
    stream. ``forward`` is the same math in torch, which tracing runs."""

    @staticmethod
    def forward(ctx, x, skip, weight, eps):
        del ctx
        s = x + skip  # (B, S, C)
        return weight * (s / torch.sqrt(s.pow(2).mean(-1, keepdim=True) + eps)), s

    @staticmethod
    def symbolic(g, x, skip, weight, eps):
        # outputs: normalized, mean and inv_std_var (unused: ORT's CPU kernel leaves them
        # unwritten), the sum x + skip
        y, _, _, s = g.op(
            "com.microsoft::SkipSimplifiedLayerNormalization",
            x,
            skip,
            weight,
            epsilon_f=eps,
            outputs=4,
        )
        y.setType(x.type())
        s.setType(x.type())
        return y, s


def _absent_input(g: Any) -> Any:
    """An omitted optional input of a node (exported as the empty name)."""
    n = g.op("prim::Constant")
    n.setType(torch._C.OptionalType.ofTensor())
    return n


def cache_lengths(position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``seqlens_k`` int32 (B,) and ``total`` int32 scalar from positions P .. P + S - 1 (the
    cache holds positions 0 .. P - 1): total = P + S."""
    last = position_ids[:, -1]  # (B,)
    return last.to(torch.int32), (last[0] + 1).to(torch.int32)


def max_positions(hf: nn.Module) -> int:
    """The model's context (``max_position_embeddings``), the rows of the rotary tables."""
    return int(hf.config.max_position_embeddings)


def rms_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's RMSNorm (its ``weight`` and ``variance_epsilon``) as x / sqrt(mean(x^2) + eps)
    * w: the form ONNX Runtime fuses into SimplifiedLayerNormalization when it loads the graph."""
    ms = x.pow(2).mean(-1, keepdim=True)  # (..., 1)
    return norm.weight * (x / torch.sqrt(ms + norm.variance_epsilon))


def skip_rms_norm(
    norm: nn.Module, x: torch.Tensor, skip: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``norm`` (the model's RMSNorm) of x + skip, and x + skip itself: one
    ``SkipSimplifiedLayerNormalization`` node in the graph."""
    return SkipRmsNorm.apply(x, skip, norm.weight, float(norm.variance_epsilon))


def packed(*linears: nn.Linear) -> nn.Linear:
    """One ``Linear`` computing ``linears`` side by side (weights and biases concatenated)."""
    w = torch.cat([x.weight.detach() for x in linears])  # (sum of outputs, C)
    biases = [x.bias for x in linears]
    out = nn.Linear(w.shape[1], w.shape[0], bias=biases[0] is not None)
    out.weight = nn.Parameter(w.clone())
    if biases[0] is not None:
        out.bias = nn.Parameter(torch.cat([b.detach() for b in biases]).clone())
    return out


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaDecoder(nn.Module):
    """llama / qwen2 / mistral: RMSNorm pre-norm blocks, rotary positions, GQA, SwiGLU MLP.

    ``inv_freq`` (D/2,) and ``attention_scaling`` are the model's own rotary tables (its
    rope type already applied: default, linear, llama3 or yarn).
    """

    def __init__(self, hf: nn.Module, shape: DecoderShape, shared: bool = False) -> None:
        super().__init__()
        base = hf.model
        self.shape, self.shared = shape, shared
        self.embed_tokens = base.embed_tokens
        self.layers = base.layers
        self.norm = base.norm
        self.lm_head = hf.lm_head
        self.register_buffer("inv_freq", base.rotary_emb.inv_freq.detach().float().clone())
        self.attention_scaling = float(base.rotary_emb.attention_scaling)
        self.scale = shape.head_dim**-0.5
        if shared:  # (max positions, D/2): the rope() tables of every position
            positions = torch.arange(max_positions(hf), dtype=torch.int64)[None]
            cos, sin = self.rope(positions)
            self.register_buffer("cos_cache", cos[0, 0, :, : shape.head_dim // 2].contiguous())
            self.register_buffer("sin_cache", sin[0, 0, :, : shape.head_dim // 2].contiguous())
        a = [layer.self_attn for layer in base.layers]
        # one MatMul for q, k, v (as ORT GenAI's builder packs them); gate and up stay two
        # MatMuls, the model's own MLP: packed, ORT's fp32 decode step was slower
        self.qkv = nn.ModuleList(packed(x.q_proj, x.k_proj, x.v_proj) for x in a)

    def rope(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin (B, 1, S, D) for absolute positions (B, S)."""
        freqs = position_ids[..., None].float() * self.inv_freq  # (B, S, D/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, S, D)
        cos = (emb.cos() * self.attention_scaling)[:, None]  # (B, 1, S, D)
        sin = (emb.sin() * self.attention_scaling)[:, None]  # (B, 1, S, D)
        return cos, sin

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        n = self.shape
        Bx, S = input_ids.shape
        P = past[0].shape[2]
        x = self.embed_tokens(input_ids)  # (B, S, C)
        if self.shared:
            return self._forward_shared(x, position_ids, past)
        cos, sin = self.rope(position_ids)
        present: list[torch.Tensor] = []
        H, Hkv, D = n.num_heads, n.num_kv_heads, n.head_dim
        bias = causal_bias(S, P, x.device)
        for i, layer in enumerate(self.layers):
            a = layer.self_attn
            h = rms_norm(layer.input_layernorm, x)
            q, k, v = self.qkv[i](h).split((H * D, Hkv * D, Hkv * D), dim=-1)
            q = q.view(Bx, S, H, D).transpose(1, 2)  # (B, H, S, D)
            k = k.view(Bx, S, Hkv, D).transpose(1, 2)  # (B, Hkv, S, D)
            v = v.view(Bx, S, Hkv, D).transpose(1, 2)  # (B, Hkv, S, D)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = torch.cat((past[2 * i], k), dim=2)  # (B, Hkv, T, D)
            v = torch.cat((past[2 * i + 1], v), dim=2)  # (B, Hkv, T, D)
            present += [k, v]
            x = x + a.o_proj(attend(q, k, v, bias, self.scale))
            x = x + layer.mlp(rms_norm(layer.post_attention_layernorm, x))  # SwiGLU
        logits = self.lm_head(rms_norm(self.norm, x))  # (B, S, V)
        return (logits.float(), *present)

    def _forward_shared(self, x, position_ids, past) -> tuple[torch.Tensor, ...]:
        """The same blocks with rotary embedding, attention and the cache in
        ``GroupQueryAttention`` nodes (rotary tables ``cos_cache``/``sin_cache``) fed the packed
        q/k/v projection, and each residual add fused with the RMSNorm after it
        (``SkipRmsNorm``): the first norm stays the traced pattern ORT fuses at load."""
        n = self.shape
        H, Hkv = n.num_heads, n.num_kv_heads
        seqlens_k, total = cache_lengths(position_ids)
        present: list[torch.Tensor] = []
        h = rms_norm(self.layers[0].input_layernorm, x)
        for i, layer in enumerate(self.layers):
            a = layer.self_attn
            y, pk, pv = GroupQueryAttention.apply(
                self.qkv[i](h), past[2 * i], past[2 * i + 1], seqlens_k, total,
                self.cos_cache, self.sin_cache, H, Hkv, self.scale,
            )  # fmt: skip
            present += [pk, pv]
            h, x = skip_rms_norm(layer.post_attention_layernorm, a.o_proj(y), x)
            following = (
                self.layers[i + 1].input_layernorm if i + 1 < len(self.layers) else self.norm
            )
            h, x = skip_rms_norm(following, layer.mlp(h), x)  # SwiGLU, then the next norm
        logits = self.lm_head(h)  # (B, S, V)
        return (logits.float(), *present)


class Gpt2Decoder(nn.Module):
    """gpt2: learned positions, LayerNorm pre-norm blocks, fused qkv ``Conv1D``, GELU MLP."""

    def __init__(self, hf: nn.Module, shape: DecoderShape, shared: bool = False) -> None:
        super().__init__()
        base = hf.transformer
        self.shape, self.shared = shape, shared
        self.wte, self.wpe, self.h, self.ln_f = base.wte, base.wpe, base.h, base.ln_f
        self.lm_head = hf.lm_head
        self.scale = shape.head_dim**-0.5 if hf.config.scale_attn_weights else 1.0

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        n = self.shape
        Bx, S = input_ids.shape
        P = past[0].shape[2]
        x = self.wte(input_ids) + self.wpe(position_ids)  # (B, S, C)
        C = x.shape[-1]
        present: list[torch.Tensor] = []
        if self.shared:
            seqlens_k, total = cache_lengths(position_ids)
            for i, block in enumerate(self.h):
                y, pk, pv = GroupQueryAttention.apply(
                    block.attn.c_attn(block.ln_1(x)), past[2 * i], past[2 * i + 1],
                    seqlens_k, total,
                    None, None, n.num_heads, n.num_heads, self.scale,
                )  # fmt: skip
                present += [pk, pv]
                x = x + block.attn.c_proj(y)
                x = x + block.mlp(block.ln_2(x))
            return (self.lm_head(self.ln_f(x)).float(), *present)
        bias = causal_bias(S, P, x.device)
        for i, block in enumerate(self.h):
            qkv = block.attn.c_attn(block.ln_1(x))  # (B, S, 3C)
            q, k, v = (
                t.view(Bx, S, n.num_heads, n.head_dim).transpose(1, 2)  # (B, H, S, D)
                for t in qkv.split(C, dim=2)
            )
            k = torch.cat((past[2 * i], k), dim=2)  # (B, H, T, D)
            v = torch.cat((past[2 * i + 1], v), dim=2)  # (B, H, T, D)
            present += [k, v]
            x = x + block.attn.c_proj(attend(q, k, v, bias, self.scale))
            x = x + block.mlp(block.ln_2(x))
        logits = self.lm_head(self.ln_f(x))  # (B, S, V)
        return (logits.float(), *present)


class ModuleDecoder(nn.Module):
    """A user's causal LM with the ``--module`` call contract of docs/text.md: its
    ``forward(input_ids, position_ids, past)`` takes and returns the cache as a list of
    ``(key, value)`` pairs; this wrapper flattens them into the graph's named tensors."""

    shared = False  # the user's forward concatenates its own cache

    def __init__(self, module: nn.Module, shape: DecoderShape) -> None:
        super().__init__()
        self.module, self.shape = module, shape

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        pairs = [(past[2 * i], past[2 * i + 1]) for i in range(self.shape.num_layers)]
        logits, present = self.module(input_ids, position_ids, pairs)
        return (logits.float(), *(t for pair in present for t in pair))


WRAPPERS: dict[str, type[nn.Module]] = {
    "llama": LlamaDecoder,
    "qwen2": LlamaDecoder,
    "mistral": LlamaDecoder,
    "gpt2": Gpt2Decoder,
    "module": ModuleDecoder,
}


def example_inputs(
    shape: DecoderShape, S: int = 3, P: int = 2, shared: bool = False
) -> tuple[torch.Tensor, ...]:
    """Trace inputs: batch 1, S new tokens after P cached positions (P > 0 so the concat and
    the mask trace with both lengths symbolic); a shared buffer holds P + S + 2 positions."""
    ids = torch.zeros(1, S, dtype=torch.int64)
    pos = torch.arange(P, P + S, dtype=torch.int64)[None]
    kv = torch.zeros(1, shape.num_kv_heads, P + S + 2 if shared else P, shape.head_dim)
    return (ids, pos, *([kv] * (2 * shape.num_layers)))


def onnx_from_decoder(
    wrapper: nn.Module, spec: GraphSpec, opset: int, logits_from: bool = True
) -> Any:
    """Trace ``wrapper`` with the TorchScript exporter into an ``onnx.ModelProto``: simplified
    with onnxslim (shape arithmetic folded: a third of the nodes), shape-inferred, checked,
    symbolic dims B, S, P, T as the spec names them.

    ORT's offline transformer optimizer is not run: no Attention/GQA/RotaryEmbedding pattern
    of it matches these graphs. Its one fusion that ORT's session optimizer (level "all") does
    not make at load, the residual Add into SkipSimplifiedLayerNormalization, the shared
    Llama-family wrapper writes itself (``SkipRmsNorm``). With ``logits_from`` the graph gains
    the optional ``logits_from`` input (``export/rewrites/last_logits.py``).
    """
    import io
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper.eval(),
            example_inputs(wrapper.shape, shared=getattr(wrapper, "shared", False)),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs],
            dynamic_axes=dynamic_axes(spec),
            do_constant_folding=True,
        )
    model = slim_model(onnx.load_from_string(buf.getvalue()))
    model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    restore_rms_scales(model)  # so ORT fuses an untrained model's first norm too
    drop_unread_outputs(model)  # the norms' mean and inv_std_var: allocated per run if named
    _name_dims(model, spec)
    if logits_from:  # the optional input that lets a prompt skip the head's rows
        add_logits_from(model)
    onnx.checker.check_model(model)
    return model


def _name_dims(model: Any, spec: GraphSpec) -> None:
    """Put the spec's symbolic names on the graph's I/O (the exporter invents some for T)."""
    declared = {t.name: t for t in spec.inputs + spec.outputs}
    for vi in list(model.graph.input) + list(model.graph.output):
        t = declared[vi.name]
        for d, want in zip(vi.type.tensor_type.shape.dim, t.shape, strict=True):
            if isinstance(want, str):
                d.dim_param = want
            else:
                d.dim_value = want

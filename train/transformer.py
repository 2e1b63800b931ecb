"""A small decoder-only transformer in the Llama layout, and its Hugging Face folder.

RMSNorm pre-norm, rotary position embeddings (the rotate-half form ``transformers`` uses),
causal attention through ``scaled_dot_product_attention`` with optional grouped-query
attention (``kv_heads`` < ``heads``), SwiGLU feed-forward. Parameter names are those of
``transformers``' ``LlamaForCausalLM`` (``model.layers.{i}.self_attn.q_proj.weight``, ...),
so ``checkpoint.hf_folder_from_checkpoint`` writes the weights unchanged beside a ``LlamaConfig``.

``forward(input_ids, position_ids, past)`` follows the causal-LM call contract of
docs/text.md: ``input_ids`` int64 (B, S), ``position_ids`` int64 (B, S) (default
``P .. P+S-1``), ``past`` one ``(key, value)`` pair per layer, each (B, H_kv, P, D), or
None; it returns ``(logits (B, S, V), present)`` with ``P + S`` positions per pair.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .options import TRANSFORMER_DEFAULTS
from .tokenizer import EOS_ID, EOS_TOKEN

ARCH = "transformer"
KVCache = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int = 257
    layers: int = TRANSFORMER_DEFAULTS.layers
    d_model: int = TRANSFORMER_DEFAULTS.d_model
    heads: int = TRANSFORMER_DEFAULTS.heads
    kv_heads: int = TRANSFORMER_DEFAULTS.kv_heads
    context: int = TRANSFORMER_DEFAULTS.context
    ffn_hidden: int = 0  # 0: about 8/3 d_model rounded up to a multiple of 32 (SwiGLU's usual)
    rope_theta: float = 10_000.0
    rms_norm_eps: float = 1e-5
    tie_embeddings: bool = True
    tokenizer: str = TRANSFORMER_DEFAULTS.tokenizer  # "char" | "bpe"; the JSON is beside it
    eos_token_id: int = EOS_ID
    arch: str = ARCH

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    @property
    def ffn(self) -> int:
        return self.ffn_hidden or 32 * math.ceil(8 * self.d_model / 3 / 32)

    def validate(self) -> None:
        for name in ("vocab_size", "layers", "d_model", "heads", "kv_heads", "context"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.d_model % self.heads or self.head_dim % 2:
            raise ValueError(
                f"d_model {self.d_model} must split into {self.heads} heads of an even size"
            )
        if self.heads % self.kv_heads:
            raise ValueError(f"heads {self.heads} must be a multiple of kv_heads {self.kv_heads}")
        if not 0 <= self.eos_token_id < self.vocab_size:
            raise ValueError(f"eos_token_id {self.eos_token_id} outside the vocabulary")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rotary(nn.Module):
    """cos/sin of ``position * theta^(-2i/D)``, duplicated over both halves of a head."""

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (D/2,)

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """position_ids (B, S) -> cos, sin (B, 1, S, D)."""
        freqs = position_ids[..., None].float() * self.inv_freq  # (B, S, D/2)
        angles = torch.cat((freqs, freqs), dim=-1)[:, None]  # (B, 1, S, D)
        return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + rotate_half(x) * sin  # (B, H, S, D)


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.H, self.H_kv, self.D = cfg.heads, cfg.kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, self.H * self.D, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, self.H_kv * self.D, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, self.H_kv * self.D, bias=False)
        self.o_proj = nn.Linear(self.H * self.D, cfg.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, S, _ = x.shape
        q = self.q_proj(x).view(B, S, self.H, self.D).transpose(1, 2)  # (B, H, S, D)
        k = self.k_proj(x).view(B, S, self.H_kv, self.D).transpose(1, 2)  # (B, H_kv, S, D)
        v = self.v_proj(x).view(B, S, self.H_kv, self.D).transpose(1, 2)  # (B, H_kv, S, D)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if past is not None:
            k = torch.cat((past[0], k), dim=2)  # (B, H_kv, T, D), T = P + S
            v = torch.cat((past[1], v), dim=2)
        present = (k, v)
        rep = self.H // self.H_kv  # query heads per key/value head, as transformers' repeat_kv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, **causal_mask(S, k.shape[2], x.device))
        y = y.transpose(1, 2).reshape(B, S, self.H * self.D)  # (B, S, H*D)
        return self.o_proj(y), present


def causal_mask(S: int, T: int, device: torch.device) -> dict[str, Any]:
    """SDPA arguments letting query ``i`` (absolute position ``T - S + i``) see keys ``<= it``."""
    if S == T:
        return {"is_causal": True}
    query_pos = torch.arange(T - S, T, device=device)[:, None]  # (S, 1)
    return {"attn_mask": torch.arange(T, device=device)[None, :] <= query_pos}  # (S, T)


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.ffn, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.ffn, bias=False)
        self.down_proj = nn.Linear(cfg.ffn, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, rope, past):
        h, present = self.self_attn(self.input_layernorm(x), rope, past)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), present


class Decoder(nn.Module):
    """``transformers``' ``LlamaModel`` part: embeddings, layers, final norm."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.rotary = Rotary(cfg.head_dim, cfg.rope_theta)


class TransformerLM(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.model = Decoder(cfg)
        # a tied head reads the embedding matrix: one tensor, saved once, as transformers does
        self.lm_head = (
            None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        )
        self.apply(self._init)
        # the attributes the causal-LM call contract (docs/text.md) names
        self.num_layers, self.num_kv_heads, self.head_dim = cfg.layers, cfg.kv_heads, cfg.head_dim
        self.vocab_size, self.max_context = cfg.vocab_size, cfg.context

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)  # LlamaConfig's initializer_range

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        past: KVCache | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """input_ids (B, S) -> logits (B, S, V) and the cache with P + S positions."""
        B, S = input_ids.shape
        P = past[0][0].shape[2] if past else 0
        if position_ids is None:
            position_ids = torch.arange(P, P + S, device=input_ids.device).expand(B, S)
        rope = self.model.rotary(position_ids)
        x = self.model.embed_tokens(input_ids)  # (B, S, C)
        present: KVCache = []
        for i, layer in enumerate(self.model.layers):
            x, kv = layer(x, rope, past[i] if past else None)
            present.append(kv)
        x = self.model.norm(x)
        W = self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(x, W), present  # (B, S, V)


# ---------------------------------------------------------------- Hugging Face folder
def llama_config(cfg: TransformerConfig) -> dict[str, Any]:
    """``config.json`` of the same model as ``transformers``' ``LlamaForCausalLM``."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn,
        "num_hidden_layers": cfg.layers,
        "num_attention_heads": cfg.heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.context,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "bos_token_id": None,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": None,
        "initializer_range": 0.02,
        "use_cache": True,
        "torch_dtype": "float32",
    }


def hf_state_dict(model: TransformerLM) -> dict[str, torch.Tensor]:
    """The weights under their ``LlamaForCausalLM`` names (a tied head has none of its own)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def is_transformer_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a genedge checkpoint of a transformer language model (reads only
    the safetensors header; anything else, including unreadable files, is False)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # not ours to diagnose here: the checkpoint loader says what is wrong
        return False
    return meta.get("kind") == "ar" and meta.get("arch") == ARCH


def tokenizer_config(cfg: TransformerConfig) -> dict[str, Any]:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS_TOKEN,
        "model_max_length": cfg.context,
        "clean_up_tokenization_spaces": False,
    }


def config_from_options(opts: Any, vocab_size: int) -> TransformerConfig:
    """The model ``genedge train ar --arch transformer`` builds from resolved options."""
    sizes = {k: getattr(opts, k) for k in ("layers", "d_model", "heads", "kv_heads", "context")}
    return TransformerConfig(vocab_size=vocab_size, tokenizer=opts.tokenizer, **sizes)

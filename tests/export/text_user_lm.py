"""A user's own causal LM with the ``--module`` call contract of docs/text.md (tests import it
as FILE.py:TinyLM): learned positions, grouped kv heads, a list of (key, value) per layer."""

import torch
from torch import nn


class TinyLM(nn.Module):
    def __init__(self, vocab_size=320, dim=48, layers=2, heads=4, kv_heads=2, context=128):
        super().__init__()
        self.num_layers, self.num_heads, self.num_kv_heads = layers, heads, kv_heads
        self.head_dim, self.vocab_size, self.max_context = dim // heads, vocab_size, context
        self.hidden_size, self.bos_token_id, self.eos_token_ids = dim, 0, [0]
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(context, dim)
        self.q = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.kv = nn.ModuleList(nn.Linear(dim, 2 * kv_heads * self.head_dim) for _ in range(layers))
        self.o = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, input_ids, position_ids, past):
        B, S = input_ids.shape
        H, Hkv, D = self.num_heads, self.num_kv_heads, self.head_dim
        x = self.tok(input_ids) + self.pos(position_ids)
        P = past[0][0].shape[2]
        T = P + S
        visible = torch.arange(T)[None, :] <= (torch.arange(S) + P)[:, None]  # (S, T)
        present = []
        for i in range(self.num_layers):
            q = self.q[i](x).view(B, S, H, D).transpose(1, 2)
            k, v = self.kv[i](x).view(B, S, 2, Hkv, D).permute(2, 0, 3, 1, 4)
            k = torch.cat((past[i][0], k), 2)
            v = torch.cat((past[i][1], v), 2)
            present.append((k, v))
            kk = k.repeat_interleave(H // Hkv, 1)
            vv = v.repeat_interleave(H // Hkv, 1)
            att = (q @ kk.transpose(-1, -2)) / D**0.5
            att = att.masked_fill(~visible, float("-inf")).softmax(-1)
            x = x + self.o[i]((att @ vv).transpose(1, 2).reshape(B, S, H * D))
        return self.head(x), present


def greedy(module, ids, n):
    """The module's own greedy continuation, recomputing the whole sequence each step."""
    ids = list(ids)
    out = []
    for _ in range(n):
        x = torch.tensor([ids])
        empty = torch.zeros(1, module.num_kv_heads, 0, module.head_dim)
        with torch.no_grad():
            logits, _ = module(
                x, torch.arange(len(ids))[None], [(empty, empty)] * module.num_layers
            )
        t = int(logits[0, -1].argmax())
        out.append(t)
        ids.append(t)
        if t in module.eos_token_ids:
            break
    return out

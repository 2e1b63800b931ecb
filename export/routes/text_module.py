"""A user's own causal LM class -> transformer bundle (docs/text.md, ``--module`` contract).

    genedge export --module mylm.py:TinyLM --weights lm.safetensors --tokenizer tokenizer.json --out B

``NAME`` (built with ``--module-args``) is an ``nn.Module`` whose
``forward(input_ids, position_ids, past)`` takes int64 (B, S) ids and positions and ``past``, a
list of one ``(key, value)`` pair per layer, float32 (B, H_kv, P, D) each (P = 0 on the first
call), and returns ``(logits, present)``: float32 (B, S, V) and the same list with P + S
positions. It carries ``num_layers``, ``num_kv_heads``, ``head_dim``, ``vocab_size`` and
``max_context`` (and optionally ``num_heads``, ``hidden_size``, ``bos_token_id``,
``eos_token_ids``). Loading imports FILE.py, which runs its code: only export files you trust.

The module is probed once on a short prompt (every shape above checked, exit 2 naming the
first that is off), then exported through the same stages as a Hugging Face folder; parity
compares the runtime's cached decode with the module's own uncached forward.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from genedge.errors import BadInputError, printable
from genedge.export.context import Log, silent
from genedge.export.options import ExportOptions
from genedge.export.routes.byo import combined_sha256
from genedge.export.routes.text_source import HfModel, export_text_model, load_tokenizer_file
from genedge.lazy import lazy_import
from genedge.manifest import sha256_file

torch = lazy_import("torch")

REQUIRED = ("num_layers", "num_kv_heads", "head_dim", "vocab_size", "max_context")
PROBE_TOKENS = 5
CONTRACT = (
    "forward(input_ids (B, S), position_ids (B, S), past: [(key, value)] * L) -> "
    "(logits (B, S, V), present: [(key, value)] * L, each (B, H_kv, P + S, D))"
)


class ModuleLogits:
    """The user's module behind the ``model(ids).logits`` call parity makes: one uncached
    forward from position 0."""

    def __init__(self, module: Any, num_layers: int, kv: tuple[int, int]) -> None:
        self.module, self.num_layers, self.kv = module, num_layers, kv

    def __call__(self, ids: Any) -> Any:
        import types

        B, S = ids.shape
        empty = torch.zeros(B, self.kv[0], 0, self.kv[1])
        past = [(empty, empty) for _ in range(self.num_layers)]
        pos = torch.arange(S)[None].expand(B, S)
        logits, _ = self.module(ids, pos, past)
        return types.SimpleNamespace(logits=logits)


def _attrs(module: Any, where: str) -> dict[str, int]:
    missing = [a for a in REQUIRED if not isinstance(getattr(module, a, None), int)]
    if missing:
        raise BadInputError(
            f"{where} has no integer attribute(s) {', '.join(missing)}; a causal LM module "
            f"carries {', '.join(REQUIRED)}.",
            hint="Set them in __init__ (docs/text.md, the --module call contract).",
        )
    return {a: int(getattr(module, a)) for a in REQUIRED}


def module_section(module: Any, where: str, tokenizer: Any) -> dict[str, Any]:
    """The manifest ``model`` section for the module (checked like a folder's)."""
    a = _attrs(module, where)
    H = int(getattr(module, "num_heads", a["num_kv_heads"]))
    eos = getattr(module, "eos_token_ids", [])
    eos = [eos] if isinstance(eos, int) else list(eos)
    bos = getattr(module, "bos_token_id", None)
    n_tok = tokenizer.get_vocab_size(with_added_tokens=True)
    if n_tok > a["vocab_size"]:
        raise BadInputError(
            f"--tokenizer has {n_tok} tokens; {where}.vocab_size is {a['vocab_size']}.",
            hint="Pass the tokenizer the model was trained with.",
        )
    return {
        "arch": "transformer",
        "family": "module",
        "tokenizer": "tokenizer.json",
        "vocab_size": a["vocab_size"],
        "num_layers": a["num_layers"],
        "num_heads": H,
        "num_kv_heads": a["num_kv_heads"],
        "head_dim": a["head_dim"],
        "hidden_size": int(getattr(module, "hidden_size", H * a["head_dim"])),
        "max_context": a["max_context"],
        "bos_token_id": bos if isinstance(bos, int) else None,
        "eos_token_ids": sorted(set(eos)),
    }


def probe_module(module: Any, section: dict[str, Any], where: str) -> None:
    """Call the module as the graph will (prefill, then one cached step); refuse (exit 2) any
    output that breaks the contract, naming it."""
    L, Hkv, D, V = (section[k] for k in ("num_layers", "num_kv_heads", "head_dim", "vocab_size"))
    ids = torch.zeros(1, PROBE_TOKENS, dtype=torch.int64)
    empty = torch.zeros(1, Hkv, 0, D)
    past: Any = [(empty, empty) for _ in range(L)]
    for P, S in ((0, PROBE_TOKENS - 1), (PROBE_TOKENS - 1, 1)):
        call = f"{where}.forward(S={S}, P={P})"
        try:
            with torch.no_grad():
                out = module(ids[:, P : P + S], torch.arange(P, P + S)[None], past)
        except Exception as e:
            raise BadInputError(
                f"{call} raised {type(e).__name__}: {printable(str(e).strip(), 200)}",
                hint=f"The call contract: {CONTRACT}.",
            ) from None
        past = _check_output(out, call, (1, S, V), (1, Hkv, P + S, D), L)


def _check_output(out: Any, call: str, logits_shape: tuple, kv_shape: tuple, L: int) -> Any:
    def bad(what: str) -> BadInputError:
        return BadInputError(f"{call} returned {what}.", hint=f"The call contract: {CONTRACT}.")

    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise bad(f"{type(out).__name__}; expected (logits, present)")
    logits, present = out
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != logits_shape:
        raise bad(
            f"logits {getattr(logits, 'shape', type(logits).__name__)}; expected {logits_shape}"
        )
    if not isinstance(present, list | tuple) or len(present) != L:
        raise bad(
            f"present of {len(present) if hasattr(present, '__len__') else '?'} layers; expected {L}"
        )
    for i, pair in enumerate(present):
        shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else None for t in pair]
        if len(shapes) != 2 or any(s != kv_shape for s in shapes):
            raise bad(f"present[{i}] of shapes {shapes}; expected two of {kv_shape}")
    if not torch.isfinite(logits).all():
        raise bad("NaN/Inf logits")
    return present


def export_text_module(
    ref: str,
    weights: str | os.PathLike | None,
    tokenizer: str | os.PathLike,
    opts: ExportOptions,
    *,
    module_args: Any = None,
    log: Log = silent,
) -> Path:
    """``genedge export --module FILE.py:NAME --weights W --tokenizer T``: returns the bundle.

    Errors as ``export_hf_folder``; nothing is left at ``opts.out`` on failure.
    """
    from genedge.train.user_module import module_from_files, split_module_ref

    tok_path = Path(tokenizer)
    if not tok_path.is_file():
        raise BadInputError(f"--tokenizer '{printable(str(tok_path))}' is not a file.")
    tok = load_tokenizer_file(tok_path)
    path, name = split_module_ref(ref)
    wpath = Path(weights) if weights else None
    module = copy.deepcopy(module_from_files(ref, wpath, module_args)).float().eval()
    section = module_section(module, name, tok)
    probe_module(module, section, name)
    kv = (section["num_kv_heads"], section["head_dim"])
    hf = HfModel(ModuleLogits(module, section["num_layers"], kv), "module", section, "module")
    source = text_module_source(path, name, wpath, tok_path, module_args)
    return export_text_model(hf, module, tok_path, opts, source, inputs=(path, wpath), log=log)


def text_module_source(
    file: Path, name: str, weights: Path | None, tokenizer: Path, module_args: Any
) -> dict[str, Any]:
    """The manifest ``source`` record: module file, weights and tokenizer with their sha256."""

    rec: dict[str, Any] = {
        "type": "module",
        "module": f"{file}:{name}",
        "module_sha256": sha256_file(file),
        "tokenizer_sha256": sha256_file(tokenizer),
    }
    if weights is not None:
        rec.update(weights=weights.name, weights_sha256=sha256_file(weights))
    if module_args is not None:
        rec["module_args"] = module_args
    rec["sha256"] = combined_sha256(
        rec["module_sha256"], rec.get("weights_sha256"), rec["tokenizer_sha256"], module_args
    )
    return rec

"""Generator checkpoints: one ``.safetensors`` file, config as JSON in its metadata (DESIGN.md s.3).

No pickle in what genedge writes or loads by default. A pickle-based ``.pt`` generator
file is accepted only through ``torch.load(weights_only=True)``, passed explicitly and
never retried unsafely (whatever ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``-style variables say).
Training resume state (optimizer, step, RNG) lives in a separate file with the same rule.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genedge import __version__
from genedge.atomic import atomic_path, atomic_write_text
from genedge.errors import BadInputError, CorruptArtifactError, SecurityRefusal, printable
from genedge.readback import MissingFileError, open_regular, parse_json

from .ar import ArConfig, CharRNN
from .gan import GanConfig, Generator
from .tokenizer import tokenizer_from_json
from .transformer import (
    TransformerConfig,
    TransformerLM,
    hf_state_dict,
    llama_config,
    tokenizer_config,
)
from .vae import VAE, VaeConfig

CHECKPOINT_FORMAT = "genedge.checkpoint"
CHECKPOINT_VERSION = "1"
# Checkpoints are read only when they are regular files; torch and safetensors check sizes.
MAX_CHECKPOINT_BYTES = 1 << 40
# kind -> (config class, model class). The model class is called as Model(config).
FAMILIES: dict[str, tuple[type, type[nn.Module]]] = {
    "gan": (GanConfig, Generator),
    "vae": (VaeConfig, VAE),
    "ar": (ArConfig, CharRNN),
}


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about itself, read without building the model."""

    path: Path
    kind: str
    config: Any
    step: int
    meta: dict[str, str]


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    config: Any,
    *,
    kind: str,
    step: int = 0,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write ``model``'s weights and ``config`` to ``path`` (.safetensors) atomically."""
    from safetensors.torch import save_file

    if kind not in FAMILIES:
        raise BadInputError(f"Unknown model kind {kind!r}; expected one of {sorted(FAMILIES)}.")
    meta = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "kind": kind,
        "config": json.dumps(asdict(config)),
        "step": str(int(step)),
        "genedge": __version__,
        **(extra or {}),
    }
    # safetensors refuses shared storage; clone to contiguous, independent tensors.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def model_classes(kind: str, meta: dict[str, str]) -> tuple[type, type[nn.Module]]:
    """(config class, model class) of a checkpoint: ``FAMILIES[kind]``, or the transformer
    language model for an ``ar`` checkpoint whose metadata says ``arch: "transformer"``."""
    if kind == "ar" and meta.get("arch") == "transformer":
        return TransformerConfig, TransformerLM
    return FAMILIES[kind]


def _config_from(kind: str, raw: str, path: Path, meta: dict[str, str]) -> Any:
    cfg_cls = model_classes(kind, meta)[0]
    try:
        fields = parse_json(raw, what="Checkpoint config", path=path)
        if not isinstance(fields, dict):
            raise TypeError(f"expected a JSON object, got {type(fields).__name__}")
        known = {f.name for f in dataclasses.fields(cfg_cls)}
        return cfg_cls(**{k: v for k, v in fields.items() if k in known})
    except (ValueError, TypeError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise CorruptArtifactError(
            f"Checkpoint '{path}' has an unreadable config ({type(e).__name__}: {str(e)[:120]})."
        ) from None


def _step_from(meta: dict[str, str], path: Path) -> int:
    try:
        return int(meta.get("step", "0") or 0)
    except (TypeError, ValueError):
        raise CorruptArtifactError(
            f"Checkpoint '{path}' records a step that is not a number."
        ) from None


def _not_ours(path: Path, why: str) -> CorruptArtifactError:
    return CorruptArtifactError(
        f"'{path}' is not a genedge checkpoint: {why}.",
        hint="Pass a generator checkpoint written by `genedge train` (RUN/generator.safetensors).",
    )


def read_checkpoint_info(path: str | os.PathLike) -> CheckpointInfo:
    """Read kind, config and step from a checkpoint's metadata (weights not loaded)."""
    path = Path(path)
    try:
        os.close(
            open_regular(path, what="Checkpoint", limit=MAX_CHECKPOINT_BYTES, follow_symlinks=True)
        )
    except MissingFileError:
        raise BadInputError(
            f"Checkpoint '{path}' does not exist.",
            hint="Train one with `genedge train gan --data digits --out RUN` and pass RUN/generator.safetensors.",
        ) from None
    if path.suffix in (".pt", ".pth", ".ckpt", ".bin"):
        payload = _load_pickle_weights_only(path)
        meta = {k: str(v) for k, v in payload.items() if k != "state_dict"}
    else:
        meta = _safetensors_metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("kind") not in FAMILIES:
        raise _not_ours(path, "its metadata does not name a genedge model kind")
    config = _config_from(meta["kind"], meta.get("config", "{}"), path, meta)
    return CheckpointInfo(path, meta["kind"], config, _step_from(meta, path), meta)


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    if path.stat().st_size < 8:
        raise CorruptArtifactError(
            f"Checkpoint '{path}' is truncated ({path.stat().st_size} bytes)."
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own SafetensorError and OSError variants
        raise CorruptArtifactError(
            f"Checkpoint '{path}' is not a readable safetensors file ({type(e).__name__}: {str(e)[:120]}).",
            hint="The file is truncated or corrupt; use an intact checkpoint or retrain.",
        ) from None


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since 1.6
_PICKLE_PROTO = 0x80  # first opcode of a protocol >= 2 pickle (torch's legacy format)


def _why_unpickling_failed(e: Exception) -> str:
    """The one line of torch's weights_only message that says what was refused.

    torch's message also suggests re-running with ``weights_only=False``; genedge never
    does that and must not tell users to, so only the reason is kept (printable, bounded).
    """
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    # torch >= 2.6 lists "(1) re-run with weights_only=False" first; the reason is the
    # "WeightsUnpickler error: ..." line
    reason = [line for line in lines if line.startswith("WeightsUnpickler error")]
    for line in reason or [line for line in lines if not line.startswith(("(1)", "(2)"))]:
        if not line.startswith(boilerplate):
            line = line.removeprefix("WeightsUnpickler error: ").split(". Please use")[0]
            return "".join(c for c in line if c.isprintable())[:160]
    return type(e).__name__


def torch_load_weights_only(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)``, passed explicitly; a refusal is final (exit 4).

    The one place genedge unpickles (generator ``.pt`` files and training resume state).
    Never retried unsafely, whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says (torch
    honours an explicit ``weights_only=True`` over that variable). Garbage, empty and
    truncated files are ``CorruptArtifactError`` (exit 2).
    """
    path = Path(path)
    fd = open_regular(path, what="Checkpoint", limit=MAX_CHECKPOINT_BYTES, follow_symlinks=True)
    with os.fdopen(fd, "rb") as f:
        head = f.read(4)
    if not (head.startswith(_ZIP_MAGIC) or head[:1] == bytes([_PICKLE_PROTO])):
        raise CorruptArtifactError(
            f"Checkpoint '{path}' is not a torch checkpoint ({len(head)} leading bytes match "
            "neither torch's zip format nor a pickle).",
            hint="The file is truncated, empty or corrupt; use an intact checkpoint or retrain.",
        )
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols: noise, not news
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = _why_unpickling_failed(e)
        if "truncated" in why or "ran out of input" in why.lower():
            raise CorruptArtifactError(f"Checkpoint '{path}' is truncated ({why}).") from None
        raise SecurityRefusal(
            f"Refusing to load '{path}': its pickle asks for something weights_only loading "
            f"forbids ({why}).",
            hint="Loading it unsafely could run arbitrary code; genedge never does. Convert trusted "
            "weights to .safetensors instead.",
        ) from None
    except Exception as e:  # a damaged pickle fails in any of torch's rebuild steps
        raise CorruptArtifactError(
            f"Checkpoint '{path}' is truncated or corrupt ({type(e).__name__})."
        ) from None
    return payload


def _load_pickle_weights_only(path: Path) -> dict[str, Any]:
    payload = torch_load_weights_only(path)
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise _not_ours(path, "expected a dict with 'state_dict', 'kind', 'config'")
    if not all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values()):
        raise _not_ours(path, "its 'state_dict' holds values that are not tensors")
    return payload


def _check_shapes(info: CheckpointInfo, shapes: dict[str, tuple[int, ...]]) -> None:
    """Build the model on the meta device and compare shapes before allocating anything.

    The config comes from the file: a hostile one (``latent_dim=10**9``) would otherwise
    make us allocate terabytes before the weights are even compared.
    """
    try:
        with torch.device("meta"):
            skeleton = model_classes(info.kind, info.meta)[1](info.config)
    except Exception as e:  # any failure to build from an untrusted config is a bad file
        raise CorruptArtifactError(
            f"Checkpoint '{info.path}' has a config that does not build a {info.kind} model "
            f"({type(e).__name__}: {str(e)[:120]}).",
        ) from None
    wanted = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if wanted != shapes:
        diff = sorted(set(wanted.items()) ^ set(shapes.items()))[:3]
        raise CorruptArtifactError(
            f"Checkpoint '{info.path}' does not match its own config: tensors differ at "
            f"{', '.join(f'{k[:60]!r} {list(v)}' for k, v in diff)}.",
            hint="The file was edited or is not a genedge generator; use an intact checkpoint.",
        )


def load_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix in (".pt", ".pth", ".ckpt", ".bin"):
        return _load_pickle_weights_only(path)["state_dict"]
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:
        raise CorruptArtifactError(
            f"Checkpoint '{path}' could not be read ({type(e).__name__}: {str(e)[:120]}).",
            hint="The file is truncated or corrupt; use an intact checkpoint or retrain.",
        ) from None


def load_checkpoint(path: str | os.PathLike, *, device: str = "cpu") -> tuple[nn.Module, Any]:
    """Load a generator checkpoint: returns ``(model in eval mode, config dataclass)``.

    For ``gan`` and ``vae`` the model is callable as ``G(z, labels)`` -> float images in
    [-1, 1], shape (B, C, H, W); ``labels`` is None for unconditional models. For ``ar``
    it is a ``CharRNN`` with ``step(token, *state)``, or a ``TransformerLM`` (metadata
    ``arch: "transformer"``; its ``tokenizer.json`` is the metadata's ``tokenizer``).
    """
    info = read_checkpoint_info(path)
    state = load_state(info.path)
    _check_shapes(info, {k: tuple(v.shape) for k, v in state.items()})
    model = model_classes(info.kind, info.meta)[1](info.config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CorruptArtifactError(
            f"Checkpoint '{info.path}' does not match its own config: {str(e).splitlines()[0][:200]}",
        ) from None
    model.kind = info.kind  # type: ignore[attr-defined]
    return model.to(device).eval(), info.config


def hf_folder_from_checkpoint(ckpt: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Write a genedge transformer checkpoint as a Hugging Face folder.

    ``folder`` gets ``config.json`` (a ``LlamaConfig``), ``model.safetensors``,
    ``tokenizer.json`` and ``tokenizer_config.json``, each written atomically; it is
    created if missing and must not hold other files of those names that genedge did not
    write (callers pass a fresh temporary folder). Needs no ``transformers``.
    """
    from safetensors.torch import save_file

    info = read_checkpoint_info(ckpt)
    if info.kind != "ar" or not isinstance(info.config, TransformerConfig):
        raise BadInputError(
            f"'{printable(str(ckpt))}' holds a {info.kind} model, not a transformer language "
            "model.",
            hint="Pass RUN/generator.safetensors of `genedge train ar --arch transformer`.",
        )
    tokenizer = tokenizer_from_json(info.meta.get("tokenizer", ""))  # refuses a missing one
    model, cfg = load_checkpoint(ckpt)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(hf_state_dict(model), str(tmp), metadata={"format": "pt"})
    atomic_write_text(folder / "tokenizer.json", tokenizer.to_str())
    atomic_write_text(folder / "tokenizer_config.json", _json(tokenizer_config(cfg)))
    atomic_write_text(folder / "config.json", _json(llama_config(cfg)))
    return folder


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2) + "\n"

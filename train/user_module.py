"""A user's own PyTorch generator: its file, its weights, and the call genedge makes of it.

Shared by ``genedge export --module`` (genedge.export.routes.byo) and the torch baselines of
``genedge bench --module``. ``import_user_file`` imports ``FILE.py``, which runs its code
with the caller's permissions: only for files the user named. Weights are read before that,
``.safetensors`` by the safetensors parser and ``.pt`` with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genedge.errors import BadInputError, CorruptArtifactError, SecurityRefusal
from genedge.interrupts import user_code

from .checkpoint import torch_load_weights_only

MAX_MODULE_ARGS_CHARS = 65_536
MAX_MODULE_ARGS_DEPTH = 32  # JSON nesting of --module-args
_TOO_DEEP = object()
STATE_DICT_KEYS = ("state_dict", "generator", "netG", "G", "g_ema", "ema", "model", "gen", "params")


class FloatGenerator(nn.Module):
    """``z (B, Z) [, label (B,)] -> (B, C, H, W)`` float in [-1, 1] from a user's module.

    z is N(0, I); for a module trained on U(-1, 1) latents (``latent_dist="uniform"``) it is
    mapped through ``erf(z / sqrt 2)`` first. ``latent_shape`` reshapes z per sample (the
    classic DCGAN: (Z, 1, 1)); the module's output range ``(lo, hi)`` is mapped to [-1, 1].
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        num_classes: int = 0,
        output_range: tuple[float, float] = (-1.0, 1.0),
        latent_shape: tuple[int, ...] | None = None,
        latent_dist: str = "normal",
    ) -> None:
        super().__init__()
        self.module = module
        self.num_classes = num_classes
        self.latent_shape = None if latent_shape is None else tuple(latent_shape)
        self.uniform = latent_dist == "uniform"
        lo, hi = output_range
        self.scale, self.shift = 2.0 / (hi - lo), -2.0 * lo / (hi - lo) - 1.0

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.uniform:
            z = torch.erf(z * (1.0 / math.sqrt(2.0)))  # N(0, 1) -> U(-1, 1)
        if self.latent_shape is not None:
            z = z.reshape(-1, *self.latent_shape)  # (B, *latent_shape)
        x = self.module(z, label) if self.num_classes else self.module(z)  # (B, C, H, W)
        if (self.scale, self.shift) != (1.0, 0.0):
            x = x * self.scale + self.shift  # output_range -> [-1, 1]
        return x


def module_from_files(ref: str, weights: str | Path | None, module_args: Any = None) -> nn.Module:
    """NAME(*args) from ``FILE.py:NAME`` with ``weights`` loaded (read before FILE.py runs)."""
    path, name = split_module_ref(ref)
    wpath = Path(weights) if weights else None
    sd = load_weights(wpath) if wpath is not None else None
    module = build_user_module(path, name, module_args)
    if sd is not None:
        load_into(module, sd, str(wpath))
    return module


# ---------------------------------------------------------------- loading FILE.py:NAME
def split_module_ref(ref: str) -> tuple[Path, str]:
    """``"path/to/file.py:NAME"`` -> (Path, NAME)."""
    path, sep, name = str(ref).rpartition(":")
    if not sep or not path or not name or not name.isidentifier():
        raise BadInputError(
            f"--module received {ref!r}; expected FILE.py:NAME (a class or factory function).",
            hint="For example: --module examples/byo/dcgan.py:Generator",
        )
    return Path(path), name


@contextlib.contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def import_user_file(path: Path) -> Any:
    """Import ``path`` as a fresh module (this runs its code). Its folder is on sys.path meanwhile."""
    if not path.exists():
        raise BadInputError(
            f"--module file '{path}' does not exist.",
            hint="Pass the file that defines your generator, e.g. --module models/dcgan.py:Generator.",
        )
    if not path.is_file() or path.suffix != ".py":
        raise BadInputError(f"--module file '{path}' is not a Python file (FILE.py:NAME).")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"genedge_user_{digest}", path)
    if spec is None or spec.loader is None:
        raise BadInputError(f"--module file '{path}' cannot be imported as Python.")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # torch.compile (dynamo) and dataclasses look it up by name
    try:
        with _on_sys_path(path.resolve().parent), user_code(f"Importing '{path}'"):
            spec.loader.exec_module(mod)
    except BadInputError:
        sys.modules.pop(spec.name, None)
        raise
    except Exception as e:
        sys.modules.pop(spec.name, None)
        raise BadInputError(
            f"Importing '{path}' raised {type(e).__name__}: {str(e).strip()[:300]}",
            hint="Fix the file so that `python FILE.py` imports cleanly (top-level code runs on import).",
        ) from None
    return mod


def build_user_module(path: Path, name: str, module_args: Any = None) -> Any:
    """Instantiate NAME (an nn.Module class or a factory returning one) from ``path``.

    ``module_args``: a JSON object (keyword arguments) or list (positional arguments).
    """
    mod = import_user_file(path)
    obj = getattr(mod, name, None)
    if obj is None or not callable(obj):
        found = sorted(
            k
            for k, v in vars(mod).items()
            if not k.startswith("_")
            and (
                (
                    inspect.isclass(v)
                    and issubclass(v, torch.nn.Module)
                    and v.__module__ == mod.__name__
                )
                or (inspect.isfunction(v) and v.__module__ == mod.__name__)
            )
        )
        raise BadInputError(
            f"'{path}' has no class or function named {name!r}"
            f"{'' if obj is None else ' (it is not callable)'}; it defines: "
            f"{', '.join(found) or 'no nn.Module class or function'}.",
            hint=f"Pass --module {path}:{suggest_name(name, found)}.",
        )
    args, kwargs = _split_args(module_args)
    try:
        with user_code(f"{name}(...) from '{path}'"):
            module = obj(*args, **kwargs)
    except BadInputError:
        raise
    except Exception as e:
        raise BadInputError(
            f"{name}({_args_text(args, kwargs)}) raised {type(e).__name__}: {str(e).strip()[:300]}",
            hint="Pass the constructor's arguments with --module-args '{\"nz\": 100}'.",
        ) from None
    if not isinstance(module, torch.nn.Module):
        raise BadInputError(
            f"{name}({_args_text(args, kwargs)}) returned {type(module).__name__}; expected a "
            "torch.nn.Module.",
            hint="NAME must be an nn.Module class or a function that returns one.",
        )
    return module


def suggest_name(asked: str, found: list[str]) -> str:
    """The name in ``found`` to suggest for ``asked``: the closest spelling, else the one that
    reads as a generator, never a discriminator or critic by default ("NAME" when unsure)."""
    import difflib

    close = difflib.get_close_matches(asked, found, n=1, cutoff=0.6)
    if close:
        return close[0]
    generators = [n for n in found if re.search(r"gen|^netg$|^g$", n, re.I)]
    return generators[0] if len(generators) == 1 else "NAME"


def parse_module_args(text: str | None) -> Any:
    if not text:
        return None
    if len(text) > MAX_MODULE_ARGS_CHARS:
        raise BadInputError(
            f"--module-args: {len(text):,} characters; the limit is {MAX_MODULE_ARGS_CHARS:,}.",
            hint="Pass a JSON object of keyword arguments, e.g. --module-args '{\"nz\": 100}'.",
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInputError(
            f"--module-args is not valid JSON ({e.msg} at column {e.colno}): {text[:100]!r}.",
            hint="Pass a JSON object of keyword arguments, e.g. --module-args '{\"nz\": 100}'.",
        ) from None
    except RecursionError:
        value = _TOO_DEEP  # nested past what the parser recurses
    if value is _TOO_DEEP or _depth(value) > MAX_MODULE_ARGS_DEPTH:
        raise BadInputError(
            f"--module-args nests lists or objects deeper than {MAX_MODULE_ARGS_DEPTH} levels.",
            hint="Pass a JSON object of keyword arguments, e.g. --module-args '{\"nz\": 100}'.",
        )
    if not isinstance(value, dict | list):
        raise BadInputError(
            f"--module-args received {type(value).__name__}; expected a JSON object or list."
        )
    return value


def _depth(value: Any, limit: int = MAX_MODULE_ARGS_DEPTH + 1) -> int:
    """How deep lists and objects nest in ``value`` (a scalar: 0), counted up to ``limit``."""
    level, layer = 0, [value]
    while level < limit:
        layer = [c for c in layer if isinstance(c, dict | list)]
        if not layer:
            break
        level += 1
        layer = [v for c in layer for v in (c.values() if isinstance(c, dict) else c)]
    return level


def _split_args(module_args: Any) -> tuple[list[Any], dict[str, Any]]:
    if module_args is None:
        return [], {}
    if isinstance(module_args, dict):
        return [], dict(module_args)
    return list(module_args), {}


def _args_text(args: list[Any], kwargs: dict[str, Any]) -> str:
    return ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])


# ---------------------------------------------------------------- weights
def load_weights(path: Path) -> dict[str, Any]:
    """A state_dict from ``.safetensors`` or a ``.pt``/``.pth``/``.bin`` file loaded with
    ``torch.load(weights_only=True)`` (never unsafely).

    A ``.pt`` may hold the state_dict itself or a dict holding one under a common key
    (``state_dict``, ``generator``, ``netG``, ...). A pickle holding anything but tensors
    and plain containers is a SecurityRefusal (exit 4).
    """
    if not path.is_file():
        raise BadInputError(f"--weights '{path}' does not exist or is not a file.")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    try:
        obj = torch_load_weights_only(path)  # the one place genedge unpickles
    except SecurityRefusal as e:
        raise SecurityRefusal(
            f"--weights '{path}' holds more than tensors; it was not loaded. {e.message}",
            hint="Save only the weights: torch.save(model.state_dict(), 'weights.pt'), or use "
            "safetensors. genedge never loads pickles with weights_only=False.",
        ) from None
    return _state_dict_in(obj, path)


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as e:
        raise CorruptArtifactError(
            f"--weights '{path}' is not a valid safetensors file ({str(e)[:200]})."
        ) from None


def _state_dict_in(obj: Any, path: Path) -> dict[str, Any]:
    def is_state_dict(d: Any) -> bool:
        return (
            isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())
        )

    if is_state_dict(obj):
        return _strip_prefix(dict(obj))
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if is_state_dict(obj.get(key)):
                return _strip_prefix(dict(obj[key]))
    keys = list(obj)[:8] if isinstance(obj, dict) else []
    raise BadInputError(
        f"--weights '{path}' holds {type(obj).__name__}"
        f"{' with keys ' + ', '.join(map(repr, keys)) if keys else ''}; expected a state_dict "
        f"(name -> tensor) or a dict holding one under {', '.join(STATE_DICT_KEYS)}.",
        hint="Save the generator's weights with torch.save(netG.state_dict(), 'weights.pt').",
    )


def _strip_prefix(sd: dict[str, Any]) -> dict[str, Any]:
    """Drop the ``module.`` prefix DataParallel/DistributedDataParallel adds to every key."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def load_into(module: Any, sd: dict[str, Any], where: str) -> None:
    """``module.load_state_dict(sd)`` or a BadInputError naming missing/unexpected keys and
    shape mismatches (the first few of each)."""
    own = module.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = [k for k in own if k not in sd and k not in optional]
    unexpected = [k for k in sd if k not in own]
    mismatched = [
        f"{k}: file {tuple(sd[k].shape)}, module {tuple(own[k].shape)}"
        for k in own
        if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    for what, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", mismatched),
    ):
        if items:
            shown = ", ".join(items[:4]) + (f" (+{len(items) - 4} more)" if len(items) > 4 else "")
            problems.append(f"{what}: {shown}")
    if problems:
        raise BadInputError(
            f"Weights '{where}' do not fit {type(module).__name__} ({len(own)} tensors in the "
            f"module, {len(sd)} in the file): {'; '.join(problems)}.",
            hint="Pass the weights saved from this very class, and its constructor arguments "
            "with --module-args.",
        )
    module.load_state_dict({k: v for k, v in sd.items()}, strict=False)


def generator_for_source(
    ref: str, weights: str | Path | None, module_args: Any, source: dict[str, Any]
) -> FloatGenerator:
    """The float generator a bundle's ``module`` source record describes, rebuilt from the
    user's file and weights (eval mode); its call options come from the record."""
    g = source.get("generator") or {}
    module = module_from_files(ref, weights, module_args).eval()
    return FloatGenerator(
        module,
        num_classes=int(g.get("num_classes") or 0),
        output_range=tuple(g.get("output_range") or (-1.0, 1.0)),
        latent_shape=None if g.get("latent_shape") is None else tuple(g["latent_shape"]),
        latent_dist=str(g.get("latent_dist") or "normal"),
    ).eval()

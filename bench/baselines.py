"""PyTorch baselines from the bundle's source checkpoint: eager and ``torch.compile``.

torch and ``genedge.train`` are imported inside ``TorchTarget.open`` only, so the bench
runs (and says why these rows are missing) where torch is not installed. The timed
call is what a PyTorch user writes: ``with torch.inference_mode(): G(z, labels)`` plus
the post-processing the exported graph has inside it (``uint8`` NHWC), so both sides
produce the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genedge.manifest import Manifest, sha256_file

from .cases import Inputs, SkipCase
from .timer import Call, time_once


def recorded_path(manifest: Manifest) -> Path | None:
    """The manifest's ``source.path``: where export read the checkpoint, relative to the
    bundle folder (or absolute when it could not be made relative); None when not recorded."""
    text = manifest.source.get("path")
    if not isinstance(text, str) or not text or "\x00" in text:
        return None
    path = Path(text)
    return path if path.is_absolute() else manifest.root / path


def checkpoint_candidates(manifest: Manifest, explicit: str | Path | None) -> list[Path]:
    """Where the source checkpoint may be: ``--checkpoint``; else the manifest's
    ``source.path``, then its ``source.checkpoint`` name resolved against the bundle, its
    parent and sibling run folders (bundles written before ``source.path`` existed)."""
    if explicit is not None:
        return [Path(explicit)]
    recorded = recorded_path(manifest)
    found = [recorded] if recorded is not None else []
    name = str(manifest.source.get("checkpoint") or "")
    given = Path(name)
    if given.is_absolute():
        found.append(given)
    elif name:
        root = manifest.root
        places = [
            root,
            root.parent,
            *sorted(p for p in root.parent.iterdir() if p.is_dir() and p != root),
        ]
        found += [place / given for place in places] + [place / given.name for place in places]
    return list(dict.fromkeys(found))


def check_module_source(manifest: Manifest, weights: Path | None) -> str | None:
    """Why ``--module`` cannot stand for this bundle's source (None when it can)."""
    from genedge.manifest import sha256_file

    src = manifest.source
    if src.get("type") != "module":
        return f"--module given, but the bundle's source is {src.get('type') or 'a checkpoint'}"
    if weights is None:
        return (
            None
            if "weights" not in src
            else "--module needs --weights (the bundle records a weights file)"
        )
    if not weights.is_file():
        return f"--weights {weights} does not exist"
    if sha256_file(weights) != src.get("weights_sha256"):
        return (
            f"--weights {weights} is not the file the bundle was exported from (sha256 differs "
            f"from {str(src.get('weights_sha256'))[:12]}...)"
        )
    return None


def find_checkpoint(manifest: Manifest, explicit: str | Path | None) -> tuple[Path | None, str]:
    """The checkpoint file and a note (why none was found, or which hash matched)."""
    want = manifest.source.get("sha256")
    candidates = [p for p in checkpoint_candidates(manifest, explicit) if p.is_file()]
    if explicit is not None and not candidates:
        return None, f"--checkpoint {explicit} does not exist"
    recorded = recorded_path(manifest) if explicit is None else None
    for path in candidates:
        if not want or sha256_file(path) == want:
            how = (
                "--checkpoint"
                if explicit is not None
                else "the manifest's source.path"
                if path == recorded
                else f"found by the name {manifest.source.get('checkpoint')!r} near the bundle"
            )
            checked = ", sha256 matches the manifest" if want else ", no sha256 recorded to check"
            return path, f"torch baselines: checkpoint {path} ({how}{checked})"
    if candidates:
        return None, (
            f"checkpoint(s) {', '.join(map(str, candidates))} found but none matches the "
            f"manifest's source sha256 {str(want)[:12]}...; pass --checkpoint"
        )
    return None, (
        "no source checkpoint found (manifest source.checkpoint="
        f"{manifest.source.get('checkpoint')!r}); pass --checkpoint RUN/generator.safetensors"
    )


@dataclass
class TorchTarget:
    """The generator in PyTorch on CPU: eager, or ``torch.compile`` (mode default)."""

    checkpoint: Path
    compile: bool
    threads: int | None
    uint8_nhwc: bool = True  # mirror the graph's post-processing
    backend: str = "torch-cpu"
    precision: str = "fp32"
    info: dict[str, Any] = field(default_factory=dict)
    compile_ms: dict[int, float] = field(default_factory=dict)
    module: tuple[str, Path | None, str | None] | None = None  # FILE.py:NAME, weights, JSON args
    source: dict[str, Any] = field(default_factory=dict)  # the manifest's module source record
    _model: Any = None
    _torch: Any = None

    @property
    def kind(self) -> str:
        return "torch-compile" if self.compile else "torch"

    @property
    def label(self) -> str:
        return "torch.compile" if self.compile else "torch eager"

    def preload(self) -> None:
        try:
            import torch

            import genedge.train  # noqa: F401  (imported here so open() times the load only)
        except ImportError as e:
            raise SkipCase(
                f"torch is not installed ({e.name}); pip install 'genedge[train]'"
            ) from e
        self._torch = torch

    def open(self) -> None:
        from genedge.train import load_checkpoint

        torch = self._torch
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        if self.module is not None:
            from genedge.train.user_module import generator_for_source, parse_module_args

            ref, weights, args = self.module
            model = generator_for_source(ref, weights, parse_module_args(args), self.source)
        else:
            model, _ = load_checkpoint(self.checkpoint)
        self._model = torch.compile(model, dynamic=False) if self.compile else model
        self.info = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "checkpoint": str(self.checkpoint),
        }
        if self.module is not None:
            self.info["module"] = self.module[0]

    def prepare(self, inputs: Inputs) -> Call:
        torch, G = self._torch, self._model
        z = torch.from_numpy(inputs.z)
        labels = None if inputs.labels is None else torch.from_numpy(inputs.labels)
        post = self.uint8_nhwc

        def call() -> Any:
            with torch.inference_mode():
                x = G(z, labels)  # (B, C, H, W) in [-1, 1]
                if post:
                    x = (
                        ((x + 1.0) * 127.5)
                        .round()
                        .clamp(0, 255)
                        .to(torch.uint8)
                        .permute(0, 2, 3, 1)
                    )
                return x.contiguous().numpy()

        if self.compile:
            self._compile(call, inputs.batch)
        return call

    def _compile(self, call: Call, batch: int) -> None:
        try:
            _, ns = time_once(call)  # compile happens here, kept out of the steady state
        except Exception as e:  # inductor can fail many ways (no compiler, unsupported op)
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            raise SkipCase(
                f"torch.compile failed on this machine: {type(e).__name__}: {msg}"
            ) from e
        self.compile_ms[batch] = ns / 1e6

    def case_info(self, batch: int) -> dict[str, Any]:
        return {"compile_ms": self.compile_ms[batch]} if batch in self.compile_ms else {}

    def close(self) -> None:
        self._model = None

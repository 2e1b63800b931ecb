"""What gets timed: a ``Target`` is opened once (load time, reported apart) and then
prepared per batch size into a ``Call``: the hot call with inputs and outputs allocated
beforehand, which is what a real-time user feels.

Targets here: the genedge runtime (``Sampler.sample_latents(z, labels, out=buf)``)
and bare ``onnxruntime.InferenceSession.run`` on the same file with the same threads.
The torch baselines live in ``genedge.bench.baselines`` (torch imported lazily).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from genedge.errors import IncompatibleEnvironmentError
from genedge.latents import default_labels, seeded_latents
from genedge.lazy import lazy_import, load
from genedge.manifest import MAIN_GRAPH, Manifest
from genedge.runtime.ort_backend import ORT_LOG_SEVERITY, PROVIDERS

from .timer import Call

ort = lazy_import("onnxruntime")


class SkipCase(Exception):
    """A target cannot run here; the message says why (it becomes a note in the report)."""


@dataclass(frozen=True)
class Inputs:
    """The fixed inputs every target of one batch size gets: seeded latents and labels."""

    z: np.ndarray  # (B, Z) float32
    labels: np.ndarray | None  # (B,) int64, None for unconditional models

    @property
    def batch(self) -> int:
        return int(self.z.shape[0])


def make_inputs(manifest: Manifest, batch: int, seed: int = 0) -> Inputs:
    """Seeded latents as the runtime draws them (docs/bundle.md) and labels ``arange % K``."""
    latent_dim = manifest.model.latent_dim
    z = seeded_latents(batch, latent_dim, seed)
    classes = manifest.model.num_classes
    labels = default_labels(batch, classes) if classes else None
    return Inputs(z, labels)


class Target(Protocol):
    """One configuration: opened once, then prepared for each batch size.

    Optional members the runner uses when present: ``preload()`` (imports, untimed),
    ``sync()`` (device synchronisation inside the timed region), ``info`` (dict) and
    ``case_info(batch)`` (per-batch extras such as the compile time).
    """

    label: str  # e.g. "runtime ort-cpu fp32"
    kind: str  # runtime | ort | torch | torch-compile | fake
    backend: str
    precision: str

    def open(self) -> None: ...

    def prepare(self, inputs: Inputs) -> Call: ...

    def close(self) -> None: ...


RUNTIME_CALLS = ("sample_latents", "sample")


@dataclass
class RuntimeTarget:
    """The genedge runtime: ``Sampler.open`` then, per ``call``,

    - ``"sample_latents"`` (kind ``runtime``): ``sample_latents(z, labels, out=buf)``, the
      caller's latents with the input checks on, into a preallocated buffer;
    - ``"sample"`` (kind ``runtime-sample``): ``sample(n, seed=0)``, latents drawn by the
      runtime (the same ones ``make_inputs`` gives the other targets) and a fresh array back.
    """

    bundle: Path
    backend: str
    precision: str
    threads: int | None
    options: dict[str, Any] = field(
        default_factory=dict
    )  # extra Sampler.open options (cuda_graphs)
    call: str = "sample_latents"
    kind: str = "runtime"
    sampler: Any = None
    error: Exception | None = None
    info: dict[str, Any] = field(default_factory=dict)
    requested: str = ""  # the backend asked for ("auto" stays visible once resolved)
    per_batch: dict[int, Any] = field(default_factory=dict)  # auto: a Sampler per batch size

    def __post_init__(self) -> None:
        if self.call not in RUNTIME_CALLS:
            raise ValueError(f"call {self.call!r} is not one of {RUNTIME_CALLS}")
        if self.call == "sample":
            self.kind = "runtime-sample"
        self.requested = self.requested or self.backend

    @property
    def label(self) -> str:
        extra = "".join(f" +{k.replace('_', '-')}" for k, v in self.options.items() if v)
        backend = (
            f"auto:{self.backend}"
            if self.requested == "auto" and self.backend != "auto"
            else self.backend
        )
        return f"runtime {backend} {self.precision}{extra}" + (
            " sample()" if self.call == "sample" else ""
        )

    def preload(self) -> None:
        import genedge.runtime.sampler  # noqa: F401

        with contextlib.suppress(ImportError):  # a missing ORT is reported by Sampler.open
            load(ort)

    def open(self) -> None:
        from genedge.runtime import Sampler

        kwargs = {
            **open_kwargs(Sampler.open, self.requested, self.precision, self.threads),
            **self.options,
        }
        try:
            self.sampler = Sampler.open(self.bundle, **kwargs)
        except IncompatibleEnvironmentError as e:
            # Not silent: a note in the report; run_bench re-raises it if nothing else ran.
            self.error = e
            raise SkipCase(str(e)) from e
        self.info = describe(getattr(self.sampler, "info", None))
        # "auto" resolves to a concrete backend; name what was actually measured.
        self.backend = str(self.info.get("backend") or self.backend)

    def sampler_for(self, batch: int) -> Any:
        """The Sampler that runs ``batch``: for "auto", one opened for that batch size (a tuned
        auto may pick another backend or precision per batch); else the one opened."""
        if self.requested != "auto":
            return self.sampler
        if batch not in self.per_batch:
            from genedge.runtime import Sampler

            kwargs = open_kwargs(Sampler.open, "auto", self.precision, self.threads)
            self.per_batch[batch] = Sampler.open(self.bundle, **kwargs, **self.options, batch=batch)
        return self.per_batch[batch]

    def case_info(self, batch: int) -> dict[str, Any]:
        if self.requested != "auto" or batch not in self.per_batch:
            return {}
        return describe(getattr(self.per_batch[batch], "info", None))

    def label_for(self, batch: int) -> str:
        """The label of the case at ``batch``: auto names the backend it chose for that batch."""
        if self.requested != "auto" or batch not in self.per_batch:
            return self.label
        chosen = self.per_batch[batch].info
        extra = "".join(f" +{k.replace('_', '-')}" for k, v in self.options.items() if v)
        return f"runtime auto:{chosen.backend} {chosen.precision}{extra}" + (
            " sample()" if self.call == "sample" else ""
        )

    def prepare(self, inputs: Inputs) -> Call:
        sampler = self.sampler_for(inputs.batch)
        if self.call == "sample":
            draw, n = sampler.sample, inputs.batch
            return lambda: draw(n, seed=0)
        sample = sampler.sample_latents
        z, labels = inputs.z, inputs.labels
        out = np.array(sample(z, labels), copy=True)  # allocated once, outside the timed call
        return lambda: sample(z, labels, out=out)

    def sync(self) -> None:
        for sampler in (self.sampler, *self.per_batch.values()):
            sync = getattr(sampler, "synchronize", None)
            if sync is not None:
                sync()

    def close(self) -> None:
        for sampler in (*self.per_batch.values(), self.sampler):
            close = getattr(sampler, "close", None)
            if close is not None:
                close()
        self.per_batch.clear()


def open_kwargs(
    open_fn: Callable, backend: str, precision: str | None, threads: int | None
) -> dict[str, Any]:
    """Keyword arguments for ``Sampler.open``/``TextGenerator.open`` (threads only if accepted)."""
    kwargs: dict[str, Any] = {"backend": backend, "precision": precision}
    params = inspect.signature(open_fn).parameters
    if threads is not None and (
        "threads" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
    ):
        kwargs["threads"] = threads
    return kwargs


def describe(info: Any) -> dict[str, Any]:
    """The runtime's ``info`` (dataclass, object or dict) as a plain JSON-able dict."""
    if info is None:
        return {}
    if isinstance(info, dict):
        raw = info
    elif callable(getattr(info, "to_dict", None)):
        raw = info.to_dict()
    elif hasattr(info, "__dataclass_fields__"):
        raw = {k: getattr(info, k) for k in info.__dataclass_fields__}
    else:
        raw = {k: v for k, v in vars(info).items() if not k.startswith("_")}
    return {
        k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
        for k, v in raw.items()
    }


@dataclass
class OrtTarget:
    """Bare ``onnxruntime.InferenceSession.run`` on the runtime's file, same threads."""

    path: Path
    backend: str  # the runtime backend it mirrors (ort-cpu, ort-cuda, ort-trt)
    precision: str
    threads: int | None
    input_names: tuple[str, ...] = ("z", "label")
    kind: str = "ort"
    session: Any = None

    @property
    def label(self) -> str:
        return f"bare-ort {self.backend} {self.precision}"

    def preload(self) -> None:
        try:
            load(ort)
        except ImportError as e:
            raise SkipCase("onnxruntime is not installed (pip install 'genedge[cpu]')") from e

    def open(self) -> None:
        providers = PROVIDERS.get(self.backend)
        if providers is None or providers[0] not in ort.get_available_providers():
            raise SkipCase(f"bare ORT for backend {self.backend!r}: provider not available here")
        so = ort.SessionOptions()
        if self.threads is not None:
            so.intra_op_num_threads = self.threads
        so.log_severity_level = ORT_LOG_SEVERITY
        self.session = ort.InferenceSession(str(self.path), so, providers=list(providers))

    def prepare(self, inputs: Inputs) -> Call:
        names = [i.name for i in self.session.get_inputs()]
        feed: dict[str, np.ndarray] = {names[0]: inputs.z}
        if len(names) > 1:
            if inputs.labels is None:
                raise SkipCase(f"{self.path.name} has inputs {names}; expected only the latent")
            feed[names[1]] = inputs.labels
        run = self.session.run
        return lambda: run(None, feed)

    def close(self) -> None:
        self.session = None


def onnx_path(manifest: Manifest, precision: str) -> Path | None:
    """The main graph's ONNX file for ``precision`` (hash verified), or None."""
    graph = MAIN_GRAPH.get(manifest.kind, "generator")
    found = manifest.find(graph=graph, format="onnx", precision=precision)
    return manifest.path_of(found[0]) if found else None

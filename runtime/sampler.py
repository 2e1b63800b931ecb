"""``Sampler``: seeded images from a GAN or VAE bundle on any backend.

    with Sampler.open("bundle", backend="auto") as s:
        images = s.sample(16, seed=0)            # uint8 (16, H, W, C)
        s.sample(16, seed=1, out=images)         # written in place, no allocation

Latents follow docs/bundle.md, so a seed gives the same picture on every backend
within the precision's tolerance. ``sample`` skips the backend's input checks for the
latents it draws itself (finite and well-shaped by construction) and validates labels
once; ``sample_latents`` checks caller latents unless opened with ``check_inputs=False``.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genedge.errors import BadInputError, CorruptArtifactError
from genedge.imageio import to_uint8
from genedge.latents import check_count, is_int
from genedge.manifest import MAIN_GRAPH, Manifest

from . import registry
from .backend import (
    Backend,
    TensorSpec,
    all_finite,
    check_feed,
    check_out,
    check_range,
    raise_closed,
)
from .latents import MAX_WALK_FRAMES, WALKS, cached_latents, lerp, make_labels, walk_latents
from .select import BackendOptions, backend_options, open_backend, read_bundle
from .stream import Stream

log = logging.getLogger("genedge.runtime")
IMAGE_GRAPHS = {k: MAIN_GRAPH[k] for k in ("gan", "vae")}
MAX_SAMPLE_BYTES = 4 << 30  # one sample() call: images + latents; more is a typo or wants chunks
Labels = int | Sequence[int] | np.ndarray | None


@dataclass(frozen=True)
class SamplerInfo:
    """What a Sampler runs: backend, provider actually used, precision, file, and the model's shape."""

    backend: str  # a backend's name in runtime.registry
    provider: str
    precision: str
    file: str
    kind: str  # "gan" | "vae"
    latent_dim: int
    num_classes: int
    image_shape: tuple[int, int, int]  # (H, W, C) of the uint8 images returned

    @property
    def name(self) -> str:
        return self.backend


class Sampler:
    """Images from a ``gan`` or ``vae`` bundle. Create with ``Sampler.open``; close when done."""

    def __init__(
        self, manifest: Manifest, backend: Backend, options: BackendOptions, t_open: float
    ) -> None:
        self.manifest, self.backend, self._options = manifest, backend, options
        self._t_open = t_open
        self.cold_start_s: float | None = None  # open() to the first image, seconds
        self.open_s = time.perf_counter() - t_open  # open() alone
        self.num_classes = manifest.model.num_classes
        z_spec = backend.input_spec("z")
        if z_spec is None or not isinstance(z_spec.shape[-1], int):
            raise BadInputError(f"Graph in '{backend.info.file}' has no input 'z' of shape [B, Z].")
        self.latent_dim = int(z_spec.shape[-1])
        out = backend.outputs[0]
        self._out_name = out.name
        self._float_out = out.np_dtype.kind == "f"
        dims = out.shape[1:]
        self.image_shape: tuple[int, int, int] = tuple(  # (H, W, C)
            int(d) for d in ((dims[1], dims[2], dims[0]) if self._float_out else dims)
        )
        self._has_label = backend.input_spec("label") is not None
        if self.conditional != (self.num_classes > 0):
            raise CorruptArtifactError(
                f"Bundle '{manifest.root}': the manifest says num_classes {self.num_classes} but the graph "
                f"'{backend.info.file}' {'takes' if self._has_label else 'has no'} a 'label' input.",
                hint="The manifest was edited or the bundle mixes exports; re-export it with `genedge export`.",
            )
        self._default_labels: dict[int, np.ndarray | None] = {}
        self._encoder: Backend | None = None
        self._max_batch = getattr(backend, "profile", (1, 1, 1 << 30))[2]
        self._image_spec = TensorSpec("image", "uint8", ("n", *self.image_shape))
        self._max_images = MAX_SAMPLE_BYTES // (
            int(np.prod(self.image_shape)) + 4 * self.latent_dim
        )
        self._out_ok: weakref.ref | None = None
        self.closed = False

    @property
    def conditional(self) -> bool:
        """Whether the image graph takes class labels (``num_classes`` > 0)."""
        return self._has_label

    @classmethod
    def open(
        cls,
        bundle: str | os.PathLike,
        backend: str = "auto",
        precision: str | None = None,
        threads: int | None = None,
        check_inputs: bool = True,
        **options: Any,
    ) -> Sampler:
        """Open ``bundle`` (a folder) on ``backend`` ("auto", "ort-cpu", "openvino", "ort-cuda",
        "ort-trt", "tensorrt").

        ``precision``: "fp32" | "fp16" | "int8" | "bf16" (openvino) or ``None`` for the backend's
        best; ``threads``: intra-op threads; further ``options`` are ``BackendOptions`` fields
        (``batch``: the batch size a tuned "auto" chooses for, ``tune``: measure on first open,
        ``allow_version_compatible``, ``cuda_graphs``, ``graph_optimization``, ...).
        """
        t_open = time.perf_counter()
        opts = backend_options(threads=threads, check_inputs=check_inputs, **options)  # no I/O yet
        manifest = read_bundle(bundle)
        if manifest.kind not in IMAGE_GRAPHS:
            raise BadInputError(
                f"Bundle '{bundle}' is a '{manifest.kind}' bundle; Sampler needs gan or vae.",
                hint="Use genedge.runtime.TextGenerator for text (ar) bundles.",
            )
        k = manifest.model.num_classes
        ranges = {"label": (0, k - 1)} if k > 0 else None
        b = open_backend(manifest, IMAGE_GRAPHS[manifest.kind], backend, precision, opts, ranges)
        try:
            return cls(manifest, b, opts, t_open)
        except BaseException:
            b.close()
            raise

    @property
    def info(self) -> SamplerInfo:
        """Backend name, provider actually used, precision, artifact file, latent and image sizes."""
        b = self.backend.info
        return SamplerInfo(
            b.name,
            b.provider,
            b.precision,
            b.file,
            self.manifest.kind,
            self.latent_dim,
            self.num_classes,
            self.image_shape,
        )

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        n: int = 1,
        seed: int = 0,
        labels: Labels = None,
        truncation: float = 1.0,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """``n`` images from seed ``seed``: uint8 (n, H, W, C), or written into ``out``.

        labels: None (``arange(n) % num_classes``), one class id, or ``n`` ids (int).
        truncation in (0, 1]: see ``runtime.latents``.
        """
        if type(n) is not int or n > self._max_images:
            n = self._check_n(n)
        z = cached_latents(n, self.latent_dim, seed, truncation)  # (n, Z) float32
        y = self._labels(n, labels)
        return self._decode(z, y, out)

    def sample_latents(
        self, z: np.ndarray, labels: Labels = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Images for caller latents ``z`` float32 (n, Z): uint8 (n, H, W, C) (or into ``out``).

        With input checks on (the default) a wrong dtype or shape, NaN/Inf or an out-of-range
        label is a ``BadInputError`` (exit 2) that names what was received and expected.
        """
        z = np.asarray(z)
        y = self._labels(len(z) if z.ndim else 0, labels)
        if self.backend.check_inputs:
            self._check_latents(z, y)
        return self._decode(z, y, out)

    decode = sample_latents  # VAE naming: decode(z, labels) -> images

    def walk(
        self,
        seeds: Sequence[int],
        steps: int = 16,
        kind: str = "slerp",
        labels: Labels = None,
        truncation: float = 1.0,
    ) -> np.ndarray:
        """Frames of a latent walk through ``seeds``: uint8 (N, H, W, C).

        lerp/slerp: ``steps`` frames per pair of seeds plus the last seed's image;
        circle: one seamless loop of ``steps`` frames through the first two seeds.
        Conditional models use class ``labels`` (default 0) for every frame.
        """
        if kind not in WALKS:
            raise BadInputError(f"walk {kind!r} is not one of {WALKS}.")
        z = walk_latents(seeds, steps, self.latent_dim, kind=kind, truncation=truncation)
        if self.num_classes and labels is None:
            labels = 0
        return self.sample_latents(z, labels)

    def _check_n(self, n: object) -> int:
        n = check_count(n)
        if n > self._max_images:
            per = int(np.prod(self.image_shape)) + 4 * self.latent_dim
            raise BadInputError(
                f"n {n}: {n * per / 2**30:.1f} GiB of images and latents in one call is more than "
                f"{MAX_SAMPLE_BYTES / 2**30:g} GiB.",
                hint=f"Sample in chunks of at most {self._max_images} (different seeds per chunk).",
            )
        return n

    def _check_latents(self, z: np.ndarray, y: np.ndarray | None) -> None:
        """The backend's input checks, specialised: one dtype/shape test and one finiteness pass
        for the usual float32 (n, Z) latent; anything else goes through the full check, which
        names the input, what it received and what it expected. Labels were checked by ``_labels``."""
        usual = z.dtype == np.float32 and z.ndim == 2 and z.shape[1] == self.latent_dim and len(z)
        if not (usual and all_finite(z)):  # the full check raises, naming what is wrong
            feed = {"z": z} if y is None else {"z": z, "label": y}
            check_feed(self.backend.inputs, feed, self.backend.int_ranges)

    def _labels(self, n: int, labels: Labels) -> np.ndarray | None:
        if (
            type(labels) is np.ndarray
            and labels.dtype == np.int64
            and labels.shape == (n,)
            and self._has_label
        ):
            if n:  # the fast path for a caller's int64 array: one comparison, no copy
                check_range("label", labels, 0, self.num_classes - 1)
            return labels
        if labels is None:
            y = self._default_labels.get(n)
            if y is None and self._has_label:
                y = self._default_labels[n] = make_labels(n, self.num_classes)
            return y
        if not self._has_label:
            make_labels(n, 0, labels)  # raises: unconditional model
        return make_labels(n, self.num_classes, labels)

    def _decode(self, z: np.ndarray, y: np.ndarray | None, out: np.ndarray | None) -> np.ndarray:
        """Run the image graph on checked inputs (z (n, Z), labels (n,)) -> uint8 (n, H, W, C)."""
        n = len(z)
        if out is not None:
            self._check_image_out(out, n)
        if n <= self._max_batch and not self._float_out:  # the common case: one run
            feed = {"z": z} if y is None else {"z": z, "label": y}
            run = self.backend.run_unchecked  # inputs are checked by the callers
            if out is None:  # the backend's bound buffer, copied (under its lock: threads share it)
                with self.backend.lock:
                    out = run(feed, None)[self._out_name].copy()
            else:
                run(feed, {self._out_name: out})
        else:
            out = self._decode_chunks(z, y, out)
        if self.cold_start_s is None:
            self.cold_start_s = time.perf_counter() - self._t_open
        return out

    def _decode_chunks(
        self, z: np.ndarray, y: np.ndarray | None, out: np.ndarray | None
    ) -> np.ndarray:
        """Float graphs (converted to uint8) and batches above an engine profile's max."""
        n = len(z)
        if out is None:
            out = np.empty((n, *self.image_shape), np.uint8)
        run = self.backend.run_unchecked
        for lo in range(0, n, self._max_batch):
            hi = min(n, lo + self._max_batch)
            feed = {"z": z[lo:hi]} if y is None else {"z": z[lo:hi], "label": y[lo:hi]}
            if self._float_out:
                with self.backend.lock:
                    out[lo:hi] = to_uint8(run(feed, None)[self._out_name])
            else:
                run(feed, {self._out_name: out[lo:hi]})
        return out

    def _check_image_out(self, out: Any, n: int) -> None:
        shape = (n, *self.image_shape)
        last = self._out_ok
        if (
            last is not None
            and last() is out
            and out.shape == shape
            and out.dtype == np.uint8
            and out.flags.writeable
        ):
            return  # the caller's ring buffer again: verified when first seen
        check_out(self._image_spec, out, shape)
        self._out_ok = weakref.ref(out)

    # ------------------------------------------------------------------ VAE
    def _encoder_backend(self) -> Backend:
        if self.closed:
            raise_closed(self.backend.info.file)
        if self.manifest.kind != "vae":
            raise BadInputError(f"encode() needs a vae bundle; this one is '{self.manifest.kind}'.")
        if self._encoder is None:
            name = self.backend.info.name
            prec = self.backend.info.precision if self.backend.info.precision != "int8" else None
            if not self.manifest.find(graph="encoder", format="onnx", precision=prec):
                prec = None
            engines = registry.spec(name).artifact == "engine"
            if engines and not self.manifest.find(graph="encoder", format="engine"):
                name = "auto"  # no encoder engine: the best ONNX Runtime provider here
                log.info("no TensorRT engine for the encoder; opening it with backend auto")
            self._encoder = open_backend(self.manifest, "encoder", name, prec, self._options)
        return self._encoder

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (n, H, W, C) -> (mu, logvar), each float32 (n, Z) (fresh arrays)."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]  # (H, W, C) -> (1, H, W, C)
        if images.dtype != np.uint8 or images.shape[1:] != self.image_shape:
            raise BadInputError(
                f"encode: received {images.dtype} array of shape {images.shape}; "
                f"expected uint8 (n, {', '.join(map(str, self.image_shape))})."
            )
        encoder = self._encoder_backend()
        with encoder.lock:
            res = encoder.run({"image": np.ascontiguousarray(images)})
            return res["mu"].copy(), res["logvar"].copy()

    def reconstruct(self, images: np.ndarray, labels: Labels = None) -> np.ndarray:
        """Decode the posterior mean of ``images`` (uint8 (n, H, W, C)) -> uint8 (n, H, W, C)."""
        mu, _ = self.encode(images)
        return self.sample_latents(mu, labels)

    def interpolate(
        self, img_a: np.ndarray, img_b: np.ndarray, steps: int = 8, labels: Labels = None
    ) -> np.ndarray:
        """``steps`` images from ``img_a`` to ``img_b`` (each uint8 (H, W, C)) along their latents' line."""
        if not is_int(steps) or not 2 <= steps <= MAX_WALK_FRAMES:
            raise BadInputError(
                f"interpolate: steps {steps!r}; expected an integer in [2, {MAX_WALK_FRAMES}]."
            )
        pair = [np.asarray(img) for img in (img_a, img_b)]
        for name, img in zip(("img_a", "img_b"), pair, strict=True):
            if img.shape not in (self.image_shape, (1, *self.image_shape)):
                raise BadInputError(
                    f"interpolate: {name} has shape {img.shape}; expected one image "
                    f"({', '.join(map(str, self.image_shape))}) uint8."
                )
        mu, _ = self.encode(np.stack([img.reshape(self.image_shape) for img in pair]))
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]  # (steps, 1)
        z = lerp(mu[0:1], mu[1:2], t).astype(np.float32)  # (steps, Z)
        if self.num_classes and labels is None:
            labels = 0
        return self.sample_latents(z, labels)

    # ------------------------------------------------------------------ real time
    def stream(
        self,
        fps: float = 30.0,
        seconds: float | None = None,
        *,
        realtime_priority: int | None = None,
        **kwargs: Any,
    ) -> Stream:
        """A fixed-cadence frame stream; see ``runtime.stream.Stream`` for the arguments.

        ``realtime_priority``: ``None`` (the default) leaves the caller's scheduling alone; an
        integer 1..99 raises the consuming thread to ``SCHED_FIFO`` at that priority for the
        stream's duration, where the OS permits it (``genedge live`` asks for 10).
        """
        return Stream(self, fps=fps, seconds=seconds, realtime_priority=realtime_priority, **kwargs)

    def __repr__(self) -> str:
        b = self.backend.info
        return (
            f"Sampler(bundle={str(self.manifest.root)!r}, kind={self.manifest.kind!r}, "
            f"backend={b.name!r}, provider={b.provider!r}, precision={b.precision!r}, "
            f"file={b.file!r}{', closed' if self.closed else ''})"
        )

    def close(self) -> None:
        """Release the sessions; safe to call twice. A closed Sampler refuses to sample."""
        self.closed = True
        for b in (self.backend, self._encoder):
            if b is not None:
                b.close()
        self._encoder = None

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

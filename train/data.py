"""Data sources behind one interface: images for ``gan``/``vae``, text for ``ar``.

Images (``load_image_data``) come back as ``ImageData``: float32 (N, C, H, W) in [-1, 1],
white ink on black (MNIST convention), optional int64 labels. Sources:

- ``"digits"``: scikit-learn's bundled 8x8 digits (1797 images, labels 0..9), shown at 16x16.
- ``"mnist"``, ``"fashion-mnist"``: the 60 000 training images (28x28, labels 0..9),
  downloaded once into the user cache and verified (``genedge.train.datasets``).
- an image folder: subfolders are classes (sorted by name), loose files are unlabeled.
- an ``.npz`` (keys ``images``/``x``, optional ``labels``/``y``) or ``.npy`` array.
- MNIST IDX files (``*-images-idx3-ubyte`` with ``*-labels-idx1-ubyte`` beside it, or .gz).

Without ``image_size`` images keep their own size when the generators can build it, and
are resized to the nearest size they can otherwise (with a note on stderr).

Text (``load_text_data``) is ``"stdlib-docs"`` (docstrings of the running Python's
standard library) or a UTF-8 text file. Every bad input raises ``BadInputError`` (exit 2)
naming what was received, what was expected and how to fix it.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import importlib
import inspect
import io
import math
import os
import pkgutil
import struct
import sys
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from genedge.errors import BadInputError, printable, require
from genedge.imageio import png_size
from genedge.limits import MAX_DECODED_BYTES, MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, check_declared
from genedge.readback import open_regular, read_bytes

from .datasets import DATASETS, dataset_folder, is_dataset_name
from .options import MAX_IMAGE_SIZE, buildable_image_size, nearest_buildable_size

DIGITS_DEFAULT_SIZE = 16
MAX_CLASSES = 100_000  # labels a dataset may use; a class embedding holds a row per class
UNKNOWN_CHAR = "\ufffd"
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".pgm",
    ".ppm",
    ".pbm",
)
SOURCES_HELP = (
    "digits, mnist, fashion-mnist, an image folder, an .npz/.npy array, or an MNIST "
    "*-images-idx3-ubyte[.gz] file"
)


@dataclass(frozen=True, eq=False)  # arrays inside: identity, not element-wise equality
class ImageData:
    """A labelled or unlabelled image set, ready for training.

    ``images``: float32 (N, C, H, W) in [-1, 1]; ``labels``: int64 (N,) in [0, num_classes)
    or None (then ``num_classes`` is 0); ``class_names``: folder names for image folders.
    """

    images: np.ndarray
    labels: np.ndarray | None
    num_classes: int
    name: str
    class_names: tuple[str, ...] | None = None

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class TextData:
    text: str
    name: str


# ----------------------------------------------------------------------------- images


def load_image_data(
    src: str, *, image_size: int | None = None, need_labels: bool = False
) -> ImageData:
    """Load an image source (see the module docstring) as float32 (N, C, H, W) in [-1, 1].

    ``image_size`` resizes every image to a square of that side. Without it: 16 for
    digits; otherwise the data's own size, which must be square and shared by every image,
    and is rounded to the nearest size the generators build (``buildable_image_size``) with
    a note on stderr when they cannot build it. ``need_labels`` (``--conditional``) makes an
    unlabelled source an error.
    """
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise BadInputError(
            f"--image-size received {image_size!r}; expected a positive integer such as 16."
        )
    data = _load_images(src, image_size)
    if image_size is None:
        data = _fit_generators(data)
    if need_labels and data.labels is None:
        raise BadInputError(
            f"Data '{src}' has no labels, but a class-conditional model needs them.",
            hint="Drop --conditional, or give labels: class subfolders in an image folder, "
            "a 'labels' array in the .npz, or the *-labels-idx1-ubyte file beside the IDX images.",
        )
    return data


def _fit_generators(data: ImageData) -> ImageData:
    """Native size -> the nearest size the generators build (a note on stderr when it changes)."""
    size = data.image_size
    if size > MAX_IMAGE_SIZE:
        raise BadInputError(
            f"Images in '{data.name}' are {size}x{size}; genedge's generators build at most "
            f"{MAX_IMAGE_SIZE}x{MAX_IMAGE_SIZE} (and train in minutes on a CPU up to about 64x64).",
            hint="Pass --image-size 64 (or another size up to 512) to resize them.",
        )
    if buildable_image_size(size):
        return data
    new = nearest_buildable_size(size)
    print(
        f"note: images in '{data.name}' are {size}x{size}, a size the generators cannot build; "
        f"training at {new}x{new} (pass --image-size to choose another size).",
        file=sys.stderr,
    )
    x01 = (data.images.transpose(0, 2, 3, 1) + 1.0) * 0.5  # (N, H, W, C) in [0, 1]
    return replace(data, images=_to_model_range(_resize_nhwc(x01, new)))


def _load_images(src: str, image_size: int | None) -> ImageData:
    if src == "digits":
        return _load_digits(image_size or DIGITS_DEFAULT_SIZE)

    if is_dataset_name(src):
        return _load_named(src, image_size)
    path = Path(src).expanduser()
    if not path.exists():
        raise BadInputError(
            f"Image data '{src}' is neither a built-in source nor an existing path.",
            hint=f"Pass one of: {SOURCES_HELP}. Check the spelling of the path.",
        )
    if path.is_dir():
        return _load_folder(path, image_size)
    name = path.name.lower()
    if name.endswith((".npz", ".npy")):
        return _load_array_file(path, image_size)
    if "idx3-ubyte" in name or "idx1-ubyte" in name:
        return _load_idx(path, image_size)
    if name.endswith(IMAGE_EXTENSIONS):
        raise BadInputError(
            f"Image data '{src}' is a single image file; expected a folder of images.",
            hint="Put the images in a folder (one subfolder per class for labels) and pass the folder.",
        )
    raise BadInputError(
        f"Image data '{src}' has an unknown file type.", hint=f"Pass one of: {SOURCES_HELP}."
    )


def _load_named(name: str, image_size: int | None) -> ImageData:
    """A dataset by name: its training split, from the verified cache (downloaded once)."""
    if Path(name).exists():
        print(
            f"note: --data {name} names the built-in dataset; pass ./{name} for the local path.",
            file=sys.stderr,
        )
    ds = DATASETS[name]
    data = _load_idx(dataset_folder(name) / ds.train_images, image_size, name=name)
    return replace(data, class_names=ds.class_names)


def _load_digits(image_size: int) -> ImageData:
    datasets = require("sklearn.datasets", "train", purpose="the built-in digits data")
    digits = datasets.load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]  # (N, 8, 8, 1) in [0, 1], ink = 1
    x = _resize_nhwc(x, image_size)
    return ImageData(
        images=_to_model_range(x),
        labels=digits.target.astype(np.int64),
        num_classes=10,
        name="digits",
        class_names=tuple(str(i) for i in range(10)),
    )


def _resize_nhwc(x: np.ndarray, size: int) -> np.ndarray:
    """float32 (N, H, W, C) in [0, 1] -> (N, size, size, C); area when shrinking, cubic when growing."""
    n, h, w, c = x.shape
    if (h, w) == (size, size):
        return x
    cv2 = require("cv2", "train", purpose="resizing images")
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_CUBIC
    out = np.empty((n, size, size, c), np.float32)
    for i in range(n):
        out[i] = cv2.resize(x[i], (size, size), interpolation=interp).reshape(size, size, c)
    return np.clip(out, 0.0, 1.0, out=out)  # cubic overshoots slightly


def _to_model_range(x_nhwc01: np.ndarray) -> np.ndarray:
    """(N, H, W, C) in [0, 1] -> float32 (N, C, H, W) in [-1, 1]."""
    x = np.ascontiguousarray(x_nhwc01.transpose(0, 3, 1, 2), dtype=np.float32)  # (N, C, H, W)
    return x * 2.0 - 1.0


def _finish(
    x01: np.ndarray,
    labels: np.ndarray | None,
    name: str,
    image_size: int | None,
    class_names: tuple[str, ...] | None = None,
) -> ImageData:
    """Resize or check squareness, validate labels, convert to the model range."""
    n, h, w, _ = x01.shape
    if n == 0:
        raise BadInputError(
            f"Image data '{name}' holds no images.", hint="Pass a non-empty data set."
        )
    if image_size is not None:
        x01 = _resize_nhwc(x01, image_size)
    elif h != w:
        raise BadInputError(
            f"Images in '{name}' are {h}x{w} (HxW); generators need square images.",
            hint=f"Pass --image-size {nearest_buildable_size(min(h, w))} (or another size) to "
            "resize them to a square.",
        )
    labels, num_classes = _check_labels(labels, n, name)
    if class_names is not None:
        num_classes = max(num_classes, len(class_names))
    return ImageData(_to_model_range(x01), labels, num_classes, name, class_names)


def _check_labels(labels: np.ndarray | None, n: int, name: str) -> tuple[np.ndarray | None, int]:
    if labels is None:
        return None, 0
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise BadInputError(
            f"Labels in '{name}' have shape {labels.shape}; expected ({n},), one label per image.",
            hint="Give exactly one integer label per image, in the same order as the images.",
        )
    if labels.dtype.kind not in "iu" and not (
        labels.dtype.kind == "f"
        and np.all(np.isfinite(labels))
        and np.all(labels == np.round(labels))
    ):
        raise BadInputError(
            f"Labels in '{name}' are {labels.dtype} values; expected integers 0..K-1.",
            hint="Store class indices as integers (map class names to 0..K-1 first).",
        )
    if labels.size and (labels.min() < 0 or labels.max() >= MAX_CLASSES):  # before the cast
        raise BadInputError(
            f"Labels in '{name}' span [{labels.min()}, {labels.max()}]; expected integers 0..K-1 "
            f"with K at most {MAX_CLASSES:,}.",
            hint="Map the classes to 0..K-1 before saving.",
        )
    labels = labels.astype(np.int64)
    return labels, int(labels.max()) + 1


# -- arrays


def _load_array_file(path: Path, image_size: int | None) -> ImageData:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise BadInputError(
            f"Could not read '{path}' as a numpy file ({type(e).__name__}: {str(e)[:120]}).",
            hint="Save arrays with numpy.save / numpy.savez (no pickled objects).",
        ) from None
    if isinstance(loaded, np.ndarray):
        return _finish(array_to_nhwc01(loaded, path.name), None, path.name, image_size)
    with loaded:
        keys = set(loaded.files)
        image_key = next((k for k in ("images", "x") if k in keys), None)
        if image_key is None:
            raise BadInputError(
                f"'{path}' holds arrays {sorted(keys)}; expected one named 'images' or 'x'.",
                hint="Save with numpy.savez(path, images=..., labels=...).",
            )
        label_key = next((k for k in ("labels", "y") if k in keys), None)
        try:  # an .npz member is read here, on access
            images = loaded[image_key]
            labels = loaded[label_key] if label_key else None
        except (ValueError, OSError, EOFError) as e:  # object arrays: allow_pickle=False
            raise BadInputError(
                f"Could not read an array of '{path}' ({type(e).__name__}: {str(e)[:120]}).",
                hint="Save arrays with numpy.save / numpy.savez (no pickled objects).",
            ) from None
    return _finish(array_to_nhwc01(images, path.name), labels, path.name, image_size)


def array_to_nhwc01(arr: np.ndarray, name: str = "array") -> np.ndarray:
    """Normalise an image array to float32 (N, H, W, C) in [0, 1].

    Layouts: (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3}; when both readings
    are possible the one giving square images wins, NCHW on a tie. Value ranges, detected
    from the dtype and the values: uint8 -> 0..255; other integers -> 0..255 (0..1 when
    the max is 1); float within [0, 1] -> as is; float within [-1, 1] with negatives ->
    the model range already. NaN/Inf and anything else are errors.
    """
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise BadInputError(f"'{name}' holds {arr.dtype} values; expected uint8 or float images.")
    x = _to_nhwc(arr, name)
    return _to_unit_range(x, name)


def _to_nhwc(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 3:
        return arr[..., None]  # (N, H, W) -> (N, H, W, 1)
    if arr.ndim != 4:
        raise BadInputError(
            f"'{name}' has shape {arr.shape} ({arr.ndim}-D); expected (N, H, W), (N, H, W, C) or (N, C, H, W).",
            hint="Stack the images along the first axis; C must be 1 (gray) or 3 (RGB).",
        )
    nchw = arr.shape[1] in (1, 3)
    nhwc = arr.shape[3] in (1, 3)
    if nchw and nhwc:  # e.g. (N, 3, 8, 3): prefer the reading that gives square images
        nhwc = arr.shape[1] == arr.shape[2] and arr.shape[2] != arr.shape[3]
        nchw = not nhwc
    if nchw:
        return arr.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    if nhwc:
        return arr
    raise BadInputError(
        f"'{name}' has shape {arr.shape}; expected 1 or 3 channels as (N, H, W, C) or (N, C, H, W).",
        hint="Convert RGBA or multi-band images to RGB or grayscale first.",
    )


def _to_unit_range(x: np.ndarray, name: str) -> np.ndarray:
    if x.size == 0:
        raise BadInputError(
            f"'{name}' holds no images (shape {x.shape}).", hint="Pass a non-empty array."
        )
    if x.dtype.kind == "f":
        x64 = x.astype(np.float32)
        if not np.all(np.isfinite(x64)):
            bad = int(np.size(x64) - np.count_nonzero(np.isfinite(x64)))
            raise BadInputError(
                f"'{name}' contains {bad} NaN or Inf values; expected finite pixel values.",
                hint="Clean or drop the broken images before training.",
            )
        lo, hi = float(x64.min()), float(x64.max())
        if lo >= 0.0 and hi <= 1.0:
            return x64
        if lo >= -1.0 and hi <= 1.0:
            return (x64 + 1.0) * 0.5
        raise BadInputError(
            f"'{name}' holds floats in [{lo:g}, {hi:g}]; expected [0, 1] or [-1, 1] (or uint8 0..255).",
            hint="Divide 0..255 floats by 255, or save them as uint8.",
        )
    if x.dtype.kind == "b":
        return x.astype(np.float32)
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi > 255:
        raise BadInputError(
            f"'{name}' holds integers in [{lo}, {hi}]; expected 0..255.",
            hint="Rescale to 0..255 and save as uint8, or as floats in [0, 1].",
        )
    scale = 1.0 if (hi <= 1 and x.dtype != np.uint8) else 255.0
    return x.astype(np.float32) / scale


# -- image folders


def _load_folder(folder: Path, image_size: int | None) -> ImageData:
    """Subfolders are classes (sorted by name); loose files are unlabelled.

    A folder with both loose images and class subfolders gives unlabelled data (every
    image used); ``need_labels`` then fails. A folder holding only MNIST IDX files loads
    those (``train-*`` preferred).
    """
    loose = _image_files(folder)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_class = [(c.name, _image_files(c)) for c in classes]
    per_class = [(n, files) for n, files in per_class if files]
    if not loose and not per_class:
        idx = sorted(
            folder.glob("*idx3-ubyte*"), key=lambda p: (not p.name.startswith("train"), p.name)
        )
        if idx:
            return _load_idx(idx[0], image_size)
        raise BadInputError(
            f"Image folder '{folder}' holds no images ({', '.join(IMAGE_EXTENSIONS)}).",
            hint="Put images in the folder, or one subfolder of images per class.",
        )
    if per_class and not loose:
        files = [f for _, fs in per_class for f in fs]
        labels = np.concatenate(
            [np.full(len(fs), i, np.int64) for i, (_, fs) in enumerate(per_class)]
        )
        names: tuple[str, ...] | None = tuple(n for n, _ in per_class)
    else:
        files = loose + [f for _, fs in per_class for f in fs]
        labels, names = None, None
    x01 = _read_images(files, image_size)
    return _finish(x01, labels, str(folder), image_size, names)


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _read_images(files: list[Path], image_size: int | None) -> np.ndarray:
    """Read, convert to float [0, 1] (H, W, C), resize, stack: (N, H, W, C)."""
    images = [_read_image(f) for f in files]
    if image_size is not None:
        images = [_resize_nhwc(im[None], image_size)[0] for im in images]
    else:
        _check_one_size(images, files)
    gray = all(im.shape[2] == 1 for im in images)
    if not gray:  # promote gray images so the stack has one channel count
        images = [np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im for im in images]
    return np.stack(images)  # (N, H, W, C)


def _check_one_size(images: list[np.ndarray], files: list[Path]) -> None:
    """Refuse a folder whose images differ in size, listing the most common sizes found."""
    counts = Counter(im.shape[:2] for im in images)
    if len(counts) == 1:
        return
    example = {}
    for im, f in zip(images, files, strict=True):
        example.setdefault(im.shape[:2], f.name)
    found = ", ".join(
        f"{h}x{w} ({n} image{'s' * (n > 1)}, e.g. '{example[(h, w)]}')"
        for (h, w), n in counts.most_common(4)
    )
    more = f" and {len(counts) - 4} more" if len(counts) > 4 else ""
    (h, w), _ = counts.most_common(1)[0]
    size = nearest_buildable_size(min(h, w))
    raise BadInputError(
        f"Images in '{os.path.commonpath([f.parent for f in files])}' have {len(counts)} "
        f"different sizes: {found}{more}; "
        "without --image-size every image must have the same size.",
        hint=f"Pass --image-size {size} (the most common size, or the nearest the generators "
        "build) to resize every image to that square, or pick any other size.",
    )


def _read_image(path: Path) -> np.ndarray:
    """One image file -> float32 (H, W, C) in [0, 1], C = 1 (gray, or RGB with R=G=B) or 3 (RGB)."""
    cv2 = require("cv2", "train", purpose="reading image folders")
    data = read_bytes(path, what="Image", limit=MAX_IMAGE_FILE_BYTES, follow_symlinks=True)
    size = png_size(data[:24])
    if size is not None:
        check_declared(
            f"PNG '{printable(path)}'",
            f"{size[0]} x {size[1]} pixels",
            size[0] * size[1] * 4,
            MAX_IMAGE_PIXELS * 4,
            "Resize it to at most 4096 x 4096 pixels, or remove it from the folder.",
        )
    im = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if im is None or im.size == 0:
        raise BadInputError(
            f"Could not read image '{path}'.",
            hint="The file is corrupt or not an image OpenCV can decode; delete or re-save it.",
        )
    scale = float(np.iinfo(im.dtype).max) if im.dtype.kind in "iu" else 1.0
    im = im.astype(np.float32) / scale
    if im.ndim == 2:
        return im[..., None]  # (H, W) -> (H, W, 1)
    if im.shape[2] == 4:
        im = im[..., :3]  # drop alpha
    if im.shape[2] == 1:
        return im
    rgb = im[..., ::-1]  # BGR -> RGB
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., :1])  # a gray image saved as RGB
    return np.ascontiguousarray(rgb)


# -- MNIST IDX

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (optionally gzip'd): magic 0x0000, dtype code, rank, big-endian dims.

    The header is read first and the size it declares checked against
    ``MAX_DECODED_BYTES`` before the body is read; a gzip stream is decompressed only up
    to the declared size (plus one byte, to notice a longer body).
    """
    path = Path(path)
    fd = open_regular(path, what="IDX file", limit=1 << 40, follow_symlinks=True)
    try:
        with os.fdopen(fd, "rb") as raw_file:
            f = gzip.GzipFile(fileobj=raw_file) if path.name.endswith(".gz") else raw_file
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in _IDX_DTYPES:
                raise BadInputError(
                    f"'{path}' is not an IDX file (header {head[:4].hex() or 'empty'}).",
                    hint="Pass the MNIST *-images-idx3-ubyte file (optionally .gz).",
                )
            dtype, rank = np.dtype(_IDX_DTYPES[head[2]]), head[3]
            shape = f.read(4 * rank)
            if len(shape) < 4 * rank:
                raise BadInputError(f"IDX file '{path}' is truncated in its header.")
            dims = struct.unpack(f">{rank}I", shape)
            expected = math.prod(dims) * dtype.itemsize
            check_declared(
                f"IDX file '{printable(path)}'",
                f"shape {dims}",
                expected,
                MAX_DECODED_BYTES,
                "Split the data into smaller files.",
            )
            body = f.read(expected + 1)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise BadInputError(
            f"Could not read IDX file '{path}' ({e}).", hint="Re-download or unpack it."
        ) from None
    if len(body) != expected:
        raise BadInputError(
            f"IDX file '{path}' declares shape {dims} ({expected} bytes) but holds {len(body)} bytes.",
            hint="The file is truncated or corrupt; re-download it.",
        )
    return (
        np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))
    )  # native order


def _load_idx(path: Path, image_size: int | None, name: str | None = None) -> ImageData:
    if "idx1-ubyte" in path.name:
        raise BadInputError(
            f"'{path}' is an IDX labels file; expected the images file.",
            hint="Pass the *-images-idx3-ubyte file; its labels file is found beside it.",
        )
    images = read_idx(path)
    labels_path = _idx_labels_path(path)
    labels = read_idx(labels_path) if labels_path else None
    name = name or path.name
    return _finish(array_to_nhwc01(images, name), labels, name, image_size)


def _idx_labels_path(images: Path) -> Path | None:
    stem = images.name.removesuffix(".gz")
    base = stem.replace("images", "labels").replace("idx3", "idx1")
    for name in (base, base + ".gz"):
        if name != stem and (images.parent / name).is_file():
            return images.parent / name
    return None


# -- splits


def split_images(data: ImageData, holdout_frac: float, seed: int) -> tuple[ImageData, ImageData]:
    """Random (train, heldout) split, the same for the same ``seed``; heldout has round(N*frac) images."""
    if not 0.0 <= holdout_frac < 1.0:
        raise BadInputError(f"holdout fraction {holdout_frac!r}; expected a number in [0, 1).")
    n = len(data)
    perm = np.random.default_rng(seed).permutation(n)
    n_hold = int(round(n * holdout_frac))
    hold, train = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    return _subset(data, train), _subset(data, hold)


def _subset(data: ImageData, idx: np.ndarray) -> ImageData:
    labels = data.labels[idx] if data.labels is not None else None
    return replace(data, images=data.images[idx], labels=labels)


# ----------------------------------------------------------------------------- text

STDLIB_DOCS_CAP = 3_000_000  # characters
# Modules whose import has side effects (prints, browsers, windows, file writes) or that
# are huge test suites; they and everything under them are skipped.
_STDLIB_SKIP = frozenset(
    {
        "antigravity",
        "this",
        "idlelib",
        "tkinter",
        "turtle",
        "turtledemo",
        "lib2to3",
        "test",
        "ensurepip",
        "pydoc_data",
        "readline",
        "rlcompleter",
        "encodings",
        "xxlimited",
        "xxsubtype",
        "xxlimited_35",
        "msilib",
        "winreg",
        "winsound",
        "msvcrt",
        "nturl2path",
        "ntpath",
        "distutils",
    }
)


def load_text_data(src: str) -> TextData:
    """``"stdlib-docs"`` or a UTF-8 text file (a BOM is dropped) -> ``TextData``."""
    if src == "stdlib-docs":
        return TextData(stdlib_docs(), "stdlib-docs")
    path = Path(src).expanduser()
    if not path.is_file():
        what = "a folder" if path.is_dir() else "neither 'stdlib-docs' nor an existing file"
        raise BadInputError(
            f"Text data '{src}' is {what}; expected 'stdlib-docs' or a UTF-8 text file.",
            hint="Pass --data stdlib-docs or the path to a .txt file.",
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInputError(
            f"Text file '{path}' is not UTF-8: byte 0x{raw[e.start]:02x} at offset {e.start} ({e.reason}).",
            hint="Convert it, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`.",
        ) from None
    if len(text) < 2:
        raise BadInputError(f"Text file '{path}' holds {len(text)} characters; expected some text.")
    return TextData(text, path.name)


@functools.lru_cache(maxsize=1)
def stdlib_docs(cap: int = STDLIB_DOCS_CAP) -> str:
    """Docstrings of the running Python's standard library, deduplicated, in sorted order.

    Modules, then their public classes (and their methods) and functions defined there;
    blocks joined by blank lines, stopping at ``cap`` characters. Imports run with output
    and warnings swallowed; modules that fail to import or have side effects are skipped.
    """
    seen: set[str] = set()
    blocks: list[str] = []
    total = 0
    with warnings.catch_warnings():  # deprecated modules warn on import and on attribute access
        warnings.simplefilter("ignore")
        for module in _stdlib_modules():
            for doc in _module_docs(module):
                if doc in seen:
                    continue
                seen.add(doc)
                blocks.append(doc)
                total += len(doc) + 2
                if total >= cap:
                    return "\n\n".join(blocks)[:cap]
    return "\n\n".join(blocks)


def _stdlib_modules():
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in _STDLIB_SKIP:
            continue
        module = _quiet_import(name)
        if module is None:
            continue
        yield module
        if hasattr(module, "__path__"):
            yield from _submodules(module)


def _submodules(package):
    """Public submodules of ``package``, depth first in sorted order, imported quietly."""
    infos = sorted(
        pkgutil.iter_modules(package.__path__, package.__name__ + "."), key=lambda m: m.name
    )
    for info in infos:
        leaf = info.name.rsplit(".", 1)[1]
        if leaf.startswith(("_", "test")) or leaf in _STDLIB_SKIP:
            continue
        module = _quiet_import(info.name)
        if module is None:
            continue
        yield module
        if info.ispkg and hasattr(module, "__path__"):
            yield from _submodules(module)


def _quiet_import(name: str):
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            return importlib.import_module(name)
        except (Exception, SystemExit):  # platform-specific or broken modules are simply skipped
            return None


def _module_docs(module) -> list[str]:
    docs = [inspect.getdoc(module)]
    for attr, obj in sorted(vars(module).items()):
        if attr.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            docs.append(_own_doc(obj))
            docs += [
                _own_doc(m)
                for a, m in sorted(vars(obj).items())
                if not a.startswith("_") and _is_member(m)
            ]
        elif inspect.isroutine(obj):
            docs.append(_own_doc(obj))
    return [d for d in docs if d and len(d) > 1]


def _is_member(obj) -> bool:
    return inspect.isroutine(obj) or isinstance(obj, (property, classmethod, staticmethod))


def _own_doc(obj) -> str | None:
    """The object's own docstring, cleaned; not inherited ones (they would repeat ``object``'s)."""
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else None


def split_text(text: str, holdout: float = 0.05) -> tuple[str, str]:
    """(train, heldout): the last ``holdout`` fraction is held out (contiguous, deterministic)."""
    if not 0.0 < holdout < 1.0:
        raise BadInputError(f"holdout fraction {holdout!r}; expected a number in (0, 1).")
    cut = len(text) - max(1, int(len(text) * holdout))
    return text[:cut], text[cut:]


def build_vocab(text: str, max_size: int = 128) -> str:
    """Index 0 is ``UNKNOWN_CHAR``; then the most frequent characters (ties: lower code point first)."""
    if max_size < 2:
        raise BadInputError(f"vocabulary size {max_size}; expected at least 2.")
    counts = Counter(text)
    counts.pop(UNKNOWN_CHAR, None)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return UNKNOWN_CHAR + "".join(ch for ch, _ in ranked[: max_size - 1])


def encode(text: str, vocab: str) -> np.ndarray:
    """Characters -> int64 (len(text),) token ids; characters outside ``vocab`` become 0."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (T,) code points
    vocab_codes = np.frombuffer(vocab.encode("utf-32-le"), dtype=np.uint32)
    order = np.argsort(vocab_codes, kind="stable")
    sorted_codes = vocab_codes[order]
    pos = np.clip(np.searchsorted(sorted_codes, codes), 0, len(sorted_codes) - 1)
    hit = sorted_codes[pos] == codes
    return np.where(hit, order[pos], 0).astype(np.int64)

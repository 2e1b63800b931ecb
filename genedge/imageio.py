"""Tiny image helpers with no dependency beyond numpy: grids and PNG writing.

The runtime must write ``genedge sample --out grid.png`` on a device with neither
OpenCV nor PIL, so PNG encoding (zlib + CRC, the format is simple) lives here.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from genedge.atomic import atomic_write_bytes
from genedge.errors import BadInputError, GenedgeError
from genedge.limits import MAX_GRID_PIXELS, check_declared
from genedge.readback import open_regular

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The PNGs genedge writes carry, right after IHDR, a tEXt chunk holding the sha256 of every
# other byte of the file: a PNG is genedge's own output only while that hash matches.
SELF_HASH_KEY = b"genedge-sha256\x00"
_IHDR_END = 8 + 25  # signature, then IHDR: length, type, 13 bytes, CRC
_HASH_CHUNK = 4 + 4 + len(SELF_HASH_KEY) + 64 + 4


@dataclass(frozen=True)
class GridLayout:
    """Where ``n`` tiles of (h, w, c) go in one grid image, planned before any tile exists:
    the grid's size is known (and checked) before the work that fills it."""

    n: int
    h: int  # tile height after scaling
    w: int
    c: int
    ncols: int
    pad: int
    scale: int

    @classmethod
    def plan(
        cls,
        n: int,
        image_shape: tuple[int, int, int],
        ncols: int | None = None,
        pad: int = 1,
        scale: int = 1,
    ) -> GridLayout:
        """The layout of ``n`` images of ``image_shape`` (H, W, C); ``BadInputError`` when the
        grid would exceed ``MAX_GRID_PIXELS``."""
        h, w, c = image_shape
        ncols = min(ncols or int(math.ceil(math.sqrt(n))), n)
        layout = cls(n, h * scale, w * scale, c, ncols, pad, scale)
        gh, gw, _ = layout.shape
        check_declared(
            f"A grid of {n:,} images",
            f"{gw:,} x {gh:,} pixels",
            gh * gw,
            MAX_GRID_PIXELS,
            "Ask for fewer images (-n), or sample several files with different --seed.",
            unit="pixels",
        )
        return layout

    @property
    def shape(self) -> tuple[int, int, int]:
        nrows = -(-self.n // self.ncols)
        return (
            nrows * (self.h + self.pad) + self.pad,
            self.ncols * (self.w + self.pad) + self.pad,
            self.c,
        )

    def empty(self) -> np.ndarray:
        return np.full(self.shape, 32, dtype=np.uint8)

    def paste(self, grid: np.ndarray, images: np.ndarray, start: int = 0) -> None:
        """Put uint8 tiles (k, H, W, C) (before scaling) at positions ``start .. start+k-1``."""
        if self.scale > 1:
            images = images.repeat(self.scale, axis=1).repeat(self.scale, axis=2)
        for i, image in enumerate(images, start):
            r, q = divmod(i, self.ncols)
            y, x = self.pad + r * (self.h + self.pad), self.pad + q * (self.w + self.pad)
            grid[y : y + self.h, x : x + self.w] = image


def make_grid(
    images: np.ndarray, ncols: int | None = None, pad: int = 1, scale: int = 1
) -> np.ndarray:
    """Tile uint8 images (N, H, W, C) into one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) image."""
    if images.ndim == 3:
        images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise BadInputError(
            f"make_grid received {images.dtype} array of shape {images.shape}; expected uint8 (N, H, W, C)."
        )
    layout = GridLayout.plan(len(images), images.shape[1:], ncols, pad, scale)
    grid = layout.empty()
    layout.paste(grid, images)
    return grid


def encode_png(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array as PNG bytes."""
    if image.ndim == 2:
        image = image[..., None]
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise BadInputError(
            f"PNG writer received {image.dtype} array of shape {image.shape}; expected uint8 (H, W, 1|3|4)."
        )
    h, w, c = image.shape
    color_type = {1: 0, 3: 2, 4: 6}[c]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), image.reshape(h, w * c)], axis=1)  # filter 0

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    head = PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))
    rest = (
        chunk(b"tEXt", b"Software\x00genedge")
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
    digest = hashlib.sha256(head + rest).hexdigest().encode()
    return head + chunk(b"tEXt", SELF_HASH_KEY + digest) + rest


def png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from the IHDR chunk at the start of a PNG (its first 24 bytes), or
    None when ``head`` is not the start of a PNG. Read before decoding: a 1 MB file may
    declare 30000 x 30000 pixels."""
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", head[16:24])
    return w, h


def is_own_png(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a PNG exactly as ``encode_png`` wrote it: its self-hash chunk is
    in place and matches every other byte (an edited copy, or a foreign PNG that merely
    says ``Software: genedge``, is not)."""
    try:
        fd = open_regular(path, what="PNG", limit=1 << 40)
    except GenedgeError:
        return False
    with os.fdopen(fd, "rb") as f:
        head = f.read(_IHDR_END + _HASH_CHUNK)
        key_at = _IHDR_END + 8
        ok = (
            len(head) == _IHDR_END + _HASH_CHUNK
            and head[:8] == PNG_SIGNATURE
            and head[_IHDR_END:key_at] == struct.pack(">I", _HASH_CHUNK - 12) + b"tEXt"
            and head[key_at : key_at + len(SELF_HASH_KEY)] == SELF_HASH_KEY
        )
        if not ok:
            return False
        h = hashlib.sha256(head[:_IHDR_END])
        while block := f.read(1 << 20):
            h.update(block)
    recorded = head[key_at + len(SELF_HASH_KEY) : key_at + len(SELF_HASH_KEY) + 64]
    return h.hexdigest().encode() == recorded


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write ``image`` (uint8, HW / HWC) as a PNG, atomically."""
    atomic_write_bytes(path, encode_png(image))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [-1, 1], (N, C, H, W) -> uint8 (N, H, W, C), the runtime's output layout."""
    x = np.clip((np.asarray(images, dtype=np.float32) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return x.transpose(0, 2, 3, 1)

import struct
import zlib

import numpy as np
import pytest

from genedge.errors import BadInputError
from genedge.imageio import encode_png, make_grid, save_png, to_uint8


def _decode_png(data: bytes) -> np.ndarray:
    """Minimal decoder for what encode_png writes (8-bit, filter 0), to check round trips."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body)
        if tag == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, _, color, *_ = header
    c = {0: 1, 2: 3, 6: 4}[color]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * c)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, c)


@pytest.mark.parametrize("c", [1, 3, 4])
def test_png_round_trip(c):
    img = np.random.default_rng(0).integers(0, 256, (7, 5, c), dtype=np.uint8)
    np.testing.assert_array_equal(_decode_png(encode_png(img)), img)


def test_png_rejects_float():
    with pytest.raises(BadInputError, match="expected uint8"):
        encode_png(np.zeros((4, 4, 3), np.float32))


def test_grid_places_tiles():
    imgs = np.stack([np.full((2, 3, 1), i * 10, np.uint8) for i in range(5)])
    grid = make_grid(imgs, ncols=3, pad=1)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1, 1)
    assert grid[1, 1, 0] == 0 and grid[1, 5, 0] == 10 and grid[4, 1, 0] == 30


def test_save_png_is_atomic_and_leaves_no_temp(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_to_uint8_maps_range_and_layout():
    x = np.array([-1.0, 0.0, 1.0, 2.0], np.float32).reshape(1, 1, 2, 2)
    y = to_uint8(x)
    assert y.shape == (1, 2, 2, 1) and y.dtype == np.uint8
    assert y.ravel().tolist() == [0, 128, 255, 255]

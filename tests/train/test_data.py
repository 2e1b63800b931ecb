"""Data sources: built-in digits, image folders, arrays, MNIST IDX, text; and their errors."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from genedge.errors import BadInputError
from genedge.train.data import (
    UNKNOWN_CHAR,
    build_vocab,
    encode,
    load_image_data,
    load_text_data,
    split_images,
    split_text,
    stdlib_docs,
)

cv2 = pytest.importorskip("cv2")


def _bad(match: str, fn, *args, **kwargs) -> BadInputError:
    with pytest.raises(BadInputError, match=match) as info:
        fn(*args, **kwargs)
    assert info.value.exit_code == 2
    return info.value


# ----------------------------------------------------------------------------- digits


def test_digits_shape_range_labels(digits16):
    d = digits16
    assert d.images.shape == (1797, 1, 16, 16) and d.images.dtype == np.float32
    assert d.image_size == 16 and d.channels == 1 and len(d) == 1797
    assert d.images.min() == -1.0 and d.images.max() == 1.0
    assert d.labels.dtype == np.int64 and set(np.unique(d.labels)) == set(range(10))
    assert d.num_classes == 10 and d.name == "digits"
    # white ink on a black background, like MNIST: the background is -1 and dominates
    assert np.mean(d.images) < -0.3 and np.mean(d.images < -0.9) > 0.4
    assert np.mean(d.images[:, :, 6:10, 6:10]) > np.mean(d.images[:, :, :2])  # ink in the middle


def test_digits_other_sizes():
    assert load_image_data("digits", image_size=8).images.shape == (1797, 1, 8, 8)
    d32 = load_image_data("digits", image_size=32)
    assert d32.images.shape == (1797, 1, 32, 32)
    assert d32.images.min() >= -1.0 and d32.images.max() <= 1.0


# ----------------------------------------------------------------------------- folders


def _write(path, image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def test_folder_with_class_subfolders_gray(tmp_path):
    for name, value in [("b_dog", 255), ("a_cat", 0)]:
        for i in range(3):
            _write(tmp_path / name / f"{i}.png", np.full((12, 12), value, np.uint8))
    d = load_image_data(str(tmp_path), need_labels=True)
    assert d.images.shape == (6, 1, 12, 12)
    assert d.class_names == ("a_cat", "b_dog") and d.num_classes == 2
    assert d.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.all(d.images[:3] == -1.0) and np.all(d.images[3:] == 1.0)


def test_folder_rgb_is_converted_from_bgr(tmp_path):
    red_bgr = np.zeros((8, 8, 3), np.uint8)
    red_bgr[..., 2] = 255
    _write(tmp_path / "red.png", red_bgr)
    _write(tmp_path / "gray.png", np.full((8, 8), 128, np.uint8))
    d = load_image_data(str(tmp_path))
    assert d.labels is None and d.num_classes == 0 and d.channels == 3
    red = d.images[1]  # files sorted: gray.png, red.png
    assert red[0].min() == 1.0 and red[1].max() == -1.0 and red[2].max() == -1.0
    np.testing.assert_allclose(
        d.images[0], 128 / 255 * 2 - 1.0, atol=1e-6
    )  # gray promoted to three equal channels


def test_folder_mixed_sizes(tmp_path):
    _write(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    for name in ("b.png", "c.png", "d.png"):
        _write(tmp_path / name, np.zeros((30, 30), np.uint8))
    _write(tmp_path / "e.png", np.zeros((12, 20), np.uint8))
    err = _bad("3 different sizes", load_image_data, str(tmp_path))
    text = str(err)
    assert "30x30 (3 images, e.g. 'b.png')" in text and "8x8 (1 image, e.g. 'a.png')" in text
    assert "12x20" in text
    assert "--image-size 32" in text  # the most common size, rounded to one the generators build
    assert load_image_data(str(tmp_path), image_size=16).images.shape == (5, 1, 16, 16)


def test_native_size_is_kept_when_the_generators_build_it(tmp_path, capsys):
    for size in (8, 12, 28, 40, 64):
        np.save(tmp_path / f"x{size}.npy", np.zeros((2, size, size), np.uint8))
        assert load_image_data(str(tmp_path / f"x{size}.npy")).image_size == size
    assert "note" not in capsys.readouterr().err


@pytest.mark.parametrize("size,fitted", [(6, 8), (10, 12), (30, 32), (36, 40), (100, 96)])
def test_native_size_the_generators_cannot_build_is_resized(size, fitted, tmp_path, capsys):
    ramp = np.linspace(0, 1, size, dtype=np.float32)[None, None, :].repeat(size, 1)  # (1, H, W)
    np.save(tmp_path / "x.npy", np.concatenate([ramp, 1 - ramp]))
    d = load_image_data(str(tmp_path / "x.npy"))
    assert d.images.shape == (2, 1, fitted, fitted)
    assert d.images[0, 0, 0, 0] < -0.8 and d.images[0, 0, 0, -1] > 0.8  # resized, not cropped
    err = capsys.readouterr().err
    assert f"are {size}x{size}" in err and f"training at {fitted}x{fitted}" in err
    assert "--image-size" in err
    # an explicit size is taken as given (eval and export pass the checkpoint's own)
    assert load_image_data(str(tmp_path / "x.npy"), image_size=size).image_size == size


def test_native_size_above_the_limit_is_refused(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((1, 600, 600), np.uint8))
    err = _bad("600x600", load_image_data, str(tmp_path / "big.npy"))
    assert "--image-size 64" in str(err)


def test_non_square_hint_names_a_buildable_size(tmp_path):
    np.save(tmp_path / "rect.npy", np.zeros((2, 30, 45), np.uint8))
    err = _bad("30x45", load_image_data, str(tmp_path / "rect.npy"))
    assert "--image-size 32" in str(err)


def test_buildable_sizes_match_the_generators():
    from genedge.train.gan import GanConfig
    from genedge.train.options import (
        BUILDABLE_SIZES,
        MAX_IMAGE_SIZE,
        buildable_image_size,
        nearest_buildable_size,
        nearest_buildable_sizes,
    )
    from genedge.train.vae import VaeConfig

    for size in range(1, MAX_IMAGE_SIZE + 40):
        ok = buildable_image_size(size)
        for cfg in (GanConfig(image_size=size), VaeConfig(image_size=size)):
            try:
                cfg.validate()
                builds = True
            except ValueError:
                builds = False
            assert not ok or builds, (size, cfg)  # every size we accept, the models build
            if builds and size % 4 == 0 and size <= MAX_IMAGE_SIZE:
                assert ok, size
    assert BUILDABLE_SIZES[:8] == (8, 12, 16, 20, 24, 28, 32, 40) and BUILDABLE_SIZES[-1] == 512
    assert nearest_buildable_sizes(30) == (28, 32) and nearest_buildable_size(30) == 32
    assert nearest_buildable_size(29) == 28 and nearest_buildable_size(3) == 8
    assert nearest_buildable_size(10**4) == 512


def test_image_size_option_names_the_nearest_buildable_size(tmp_path):
    from genedge.train.options import TrainOptions, validate_options

    for size, near in ((30, "28 or 32"), (44, "40 or 48"), (6, "8"), (100, "96")):
        opts = TrainOptions(kind="gan", data="digits", out=tmp_path, image_size=size)
        err = _bad(f"--image-size: received {size}", validate_options, opts)
        assert f"the nearest to {size} is {near}" in str(err)
        assert f"Pass --image-size {near.split()[-1]}" in str(err)
    validate_options(TrainOptions(kind="gan", data="digits", out=tmp_path, image_size=28))
    _bad("whole number", validate_options, TrainOptions("gan", "digits", tmp_path, image_size=28.0))


def test_folder_errors(tmp_path):
    _bad("holds no images", load_image_data, str(tmp_path))
    _write(tmp_path / "ok.png", np.zeros((8, 8), np.uint8))
    _bad("has no labels", load_image_data, str(tmp_path), need_labels=True)
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    _bad("broken.png", load_image_data, str(tmp_path))


def test_source_errors(tmp_path):
    err = _bad("neither a built-in source nor an existing path", load_image_data, "digitz")
    assert "digits" in str(err)  # says what is expected
    (tmp_path / "x.csv").write_text("1,2")
    _bad("unknown file type", load_image_data, str(tmp_path / "x.csv"))
    _bad("positive integer", load_image_data, "digits", image_size=0)


# ----------------------------------------------------------------------------- arrays

_BASE = (
    np.random.default_rng(0).integers(0, 256, size=(5, 8, 8, 3)).astype(np.uint8)
)  # (N, H, W, C)
_EXPECTED = _BASE.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 * 2 - 1  # (N, C, H, W)


@pytest.mark.parametrize("layout", ["nhwc", "nchw", "nhw"])
@pytest.mark.parametrize("dtype", ["uint8", "unit", "signed"])
def test_arrays_layouts_and_ranges(tmp_path, layout, dtype):
    x = _BASE if layout != "nhw" else _BASE[..., 0]
    expected = _EXPECTED if layout != "nhw" else _EXPECTED[:, :1]
    if layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    if dtype == "unit":
        x = x.astype(np.float32) / 255.0
    elif dtype == "signed":
        x = x.astype(np.float64) / 127.5 - 1.0
    path = tmp_path / "a.npy"
    np.save(path, x)
    d = load_image_data(str(path))
    assert d.images.shape == expected.shape and d.images.dtype == np.float32
    np.testing.assert_allclose(d.images, expected, atol=1e-5)


def test_npz_with_labels_and_keys(tmp_path):
    labels = np.array([0, 1, 2, 1, 0])
    np.savez(tmp_path / "a.npz", x=_BASE, y=labels)
    d = load_image_data(str(tmp_path / "a.npz"), need_labels=True)
    assert (
        d.labels.tolist() == labels.tolist() and d.labels.dtype == np.int64 and d.num_classes == 3
    )
    np.savez(tmp_path / "b.npz", images=_BASE)
    assert load_image_data(str(tmp_path / "b.npz")).labels is None


def test_array_errors(tmp_path):
    bad = _BASE.astype(np.float32) / 255.0
    bad[2, 3, 3, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    _bad("NaN or Inf", load_image_data, str(tmp_path / "nan.npy"))
    np.save(tmp_path / "rank.npy", np.zeros((5, 8), np.uint8))
    _bad(r"2-D.*expected \(N, H, W\)", load_image_data, str(tmp_path / "rank.npy"))
    np.save(tmp_path / "range.npy", np.full((2, 8, 8), 200.0, np.float32))
    _bad(r"floats in \[200, 200\]", load_image_data, str(tmp_path / "range.npy"))
    np.savez(tmp_path / "mismatch.npz", images=_BASE, labels=np.arange(4))
    _bad(r"shape \(4,\); expected \(5,\)", load_image_data, str(tmp_path / "mismatch.npz"))
    np.savez(tmp_path / "nokey.npz", pixels=_BASE)
    _bad("'images' or 'x'", load_image_data, str(tmp_path / "nokey.npz"))
    np.save(tmp_path / "rect.npy", np.zeros((2, 8, 10), np.uint8))
    _bad("8x10", load_image_data, str(tmp_path / "rect.npy"))


# ----------------------------------------------------------------------------- IDX


def _idx_bytes(arr: np.ndarray) -> bytes:
    return (
        b"\x00\x00\x08"
        + bytes([arr.ndim])
        + struct.pack(f">{arr.ndim}I", *arr.shape)
        + arr.tobytes()
    )


def test_idx_round_trip_with_gz_labels(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, size=(7, 28, 28)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9, 2], np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(images))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
    d = load_image_data(str(tmp_path / "train-images-idx3-ubyte"), need_labels=True)
    assert d.images.shape == (7, 1, 28, 28) and d.labels.tolist() == labels.tolist()  # no flag
    np.testing.assert_allclose(d.images[:, 0], images / 127.5 - 1.0, atol=1e-6)
    assert load_image_data(str(tmp_path), image_size=16).images.shape == (
        7,
        1,
        16,
        16,
    )  # folder of IDX


def test_idx_errors(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(
        _idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5]
    )
    _bad("truncated", load_image_data, str(tmp_path / "t10k-images-idx3-ubyte"))
    (tmp_path / "x-images-idx3-ubyte").write_bytes(b"GIF89a....")
    _bad("not an IDX file", load_image_data, str(tmp_path / "x-images-idx3-ubyte"))
    (tmp_path / "y-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(3, np.uint8)))
    _bad("labels file", load_image_data, str(tmp_path / "y-labels-idx1-ubyte"))


# ----------------------------------------------------------------------------- splits


def test_split_images_deterministic(digits16):
    a_train, a_hold = split_images(digits16, 0.2, seed=3)
    b_train, b_hold = split_images(digits16, 0.2, seed=3)
    _, c_hold = split_images(digits16, 0.2, seed=4)
    assert len(a_hold) == round(1797 * 0.2) and len(a_train) + len(a_hold) == 1797
    assert np.array_equal(a_hold.images, b_hold.images) and np.array_equal(
        a_hold.labels, b_hold.labels
    )
    assert not np.array_equal(a_hold.labels, c_hold.labels)


# ----------------------------------------------------------------------------- text


def test_text_file_and_errors(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("héllo wörld\n" * 10, encoding="utf-8")
    assert load_text_data(str(p)).text.startswith("héllo")
    p.write_bytes(b"abc\xe9def")
    err = _bad("not UTF-8", load_text_data, str(p))
    assert "offset 3" in str(err) and "0xe9" in str(err)
    _bad("expected 'stdlib-docs'", load_text_data, str(tmp_path / "missing.txt"))


def test_vocab_encode_split():
    text = "aaabbc" + UNKNOWN_CHAR
    vocab = build_vocab(text, max_size=3)
    assert vocab == UNKNOWN_CHAR + "ab"
    assert build_vocab("ba") == UNKNOWN_CHAR + "ab"  # ties: lower code point first
    ids = encode("abcz", vocab)
    assert ids.dtype == np.int64 and ids.tolist() == [1, 2, 0, 0]
    assert encode("", vocab).shape == (0,)
    train, held = split_text("x" * 100, holdout=0.1)
    assert (len(train), len(held)) == (90, 10) and split_text("x" * 100, 0.1) == (train, held)


def test_stdlib_docs_corpus():
    text = stdlib_docs()
    assert len(text) > 500_000
    assert stdlib_docs.__wrapped__() == text  # rebuilt from scratch: same order, same content
    sample = text[:200_000]
    assert sum(c.isascii() for c in sample) / len(sample) > 0.99
    assert sum(c.isalpha() or c == " " for c in sample) / len(sample) > 0.8  # prose, not code
    assert "Return" in text and load_text_data("stdlib-docs").text == text

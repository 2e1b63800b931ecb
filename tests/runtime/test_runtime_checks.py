"""Pure checks: feed validation, TensorRT engine records, profiles, buffer plans."""

from __future__ import annotations

import numpy as np
import pytest

from genedge.errors import BadInputError, IncompatibleEnvironmentError, SecurityRefusal
from genedge.manifest import engine_record_from
from genedge.runtime.backend import TensorSpec, check_feed, check_out
from genedge.runtime.trt_backend import (
    TrtEnvironment,
    check_engine_record,
    check_profile_batch,
    plan_buffers,
)

SPECS = (
    TensorSpec("z", "float32", ("B", 4)),
    TensorSpec("label", "int64", ("B",)),
)
RANGES = {"label": (0, 9)}


def feed(z=None, label=None):
    return {
        "z": np.zeros((2, 4), np.float32) if z is None else z,
        "label": np.zeros(2, np.int64) if label is None else label,
    }


def test_good_feed_passes() -> None:
    check_feed(SPECS, feed(), RANGES)


@pytest.mark.parametrize(
    "bad, match",
    [
        (feed(z=np.zeros((2, 5), np.float32)), "expected \\(B, 4\\)"),
        (feed(z=np.zeros((2, 4), np.float64)), "dtype float64"),
        (feed(z=np.zeros((2, 4, 1), np.float32)), "shape"),
        (feed(z=np.full((2, 4), np.nan, np.float32)), "NaN/Inf"),
        (feed(z=np.array([[0, 0, 0, np.inf]] * 2, np.float32)), "NaN/Inf"),
        (feed(label=np.array([0, 10])), "expected \\[0, 9\\]"),
        (feed(label=np.array([-1, 0])), "expected \\[0, 9\\]"),
        (feed(label=np.zeros(3, np.int64)), "B=2"),
        ({"z": np.zeros((2, 4), np.float32)}, "do not match"),
    ],
)
def test_bad_feeds_raise_exit_2(bad, match) -> None:
    with pytest.raises(BadInputError, match=match) as e:
        check_feed(SPECS, bad, RANGES)
    assert e.value.exit_code == 2


def test_check_out_names_expected_buffer() -> None:
    spec = TensorSpec("image", "uint8", ("B", 2, 2, 1))
    check_out(spec, np.empty((3, 2, 2, 1), np.uint8), (3, 2, 2, 1))
    for bad in (
        np.empty((3, 2, 2, 1), np.float32),
        np.empty((2, 2, 2, 1), np.uint8),
        np.empty((3, 2, 4, 1), np.uint8)[:, :, ::2],
        [1, 2],
    ):
        with pytest.raises(BadInputError, match="np.empty"):
            check_out(spec, bad, (3, 2, 2, 1))


ENV = TrtEnvironment("10.3.0.26", "8.7", "Orin", integrated=True)
REC = {
    "tensorrt_version": "10.3.0",
    "compute_capability": "8.7",
    "device_name": "Orin",
    "version_compatible": False,
}


def record(**fields):
    return engine_record_from({**REC, **fields}, "test record")


def test_matching_engine_record_passes() -> None:
    check_engine_record(record(), ENV, file="model.fp16.sm87.trt10.3.engine")


@pytest.mark.parametrize(
    "rec, words",
    [
        (
            {**REC, "compute_capability": "8.6", "device_name": "RTX 3090"},
            ["8.6", "8.7", "RTX 3090", "Orin"],
        ),
        ({**REC, "tensorrt_version": "10.1.0"}, ["10.1.0", "10.3.0.26"]),
        ({**REC, "tensorrt_version": "8.6.1"}, ["8.6.1", "10.3.0.26"]),
        ({**REC, "tensorrt_version": "10.4", "version_compatible": True}, ["10.4", "10.3.0.26"]),
        ({**REC, "tensorrt_version": "10"}, ["10", "10.3.0.26"]),  # "10" is 10.0.0, not any 10.x
    ],
)
def test_engine_for_other_gpu_or_version_is_exit_3(rec, words) -> None:
    with pytest.raises(IncompatibleEnvironmentError) as e:
        check_engine_record(record(**rec), ENV, file="model.fp16.engine", bundle="/b")
    msg = str(e.value)
    assert e.value.exit_code == 3
    assert all(w in msg for w in words), msg
    assert "genedge export CKPT --out /b --trt" in msg


def test_version_compatible_engine_needs_opt_in() -> None:
    rec = record(tensorrt_version="10.1.0", version_compatible=True)
    with pytest.raises(SecurityRefusal) as e:
        check_engine_record(rec, ENV, file="e")
    assert e.value.exit_code == 4
    check_engine_record(rec, ENV, file="e", allow_version_compatible=True)


def test_profile_batch_error_names_min_opt_max() -> None:
    check_profile_batch(8, (1, 8, 32))
    with pytest.raises(BadInputError, match="min 1, opt 8, max 32") as e:
        check_profile_batch(33, (1, 8, 32), file="model.engine")
    assert e.value.exit_code == 2


def test_buffer_plan_uses_profile_max() -> None:
    specs = (
        TensorSpec("z", "float32", ("B", 64)),
        TensorSpec("h", "float32", (2, "B", 32)),
        TensorSpec("image", "uint8", ("B", 16, 16, 1)),
    )
    assert plan_buffers(specs, 32) == {"z": 32 * 64 * 4, "h": 2 * 32 * 32 * 4, "image": 32 * 256}

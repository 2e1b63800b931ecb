"""Export options past their limits, or NaN/inf thresholds, are refused before any work."""

from __future__ import annotations

import dataclasses

import pytest

from genedge.errors import BadInputError
from genedge.export.options import ExportOptions, validate_export_options
from genedge.limits import MAX_BATCH, MAX_CALIB_SAMPLES, MAX_OPSET

BASE = ExportOptions(source="g.safetensors", out="bundle")
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "field, value",
    [
        ("min_psnr", NAN),
        ("min_psnr", INF),
        ("max_quality_drop", NAN),
        ("max_quality_drop", INF),
        ("truncation", NAN),
        ("calib_samples", MAX_CALIB_SAMPLES + 1),
        ("calib_samples", 10**12),
        ("quality_samples", 10**12),
        ("opset", MAX_OPSET + 1),
        ("opset", 10**6),
        ("opset", 16),
        ("profiles", ((1, 8, MAX_BATCH + 1),)),
        ("seed", -1),
        ("quality_seed", -1),
    ],
)
def test_out_of_range_options_are_refused(field, value):
    with pytest.raises(BadInputError) as info:
        validate_export_options(dataclasses.replace(BASE, **{field: value}))
    assert info.value.exit_code == 2
    assert field.split("_")[0] in info.value.message or "batch" in info.value.message
    assert "Invalid export options" in info.value.message


def test_the_limits_themselves_are_accepted():
    validate_export_options(
        dataclasses.replace(
            BASE, calib_samples=MAX_CALIB_SAMPLES, opset=MAX_OPSET, profiles=((1, 8, MAX_BATCH),)
        )
    )


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--min-psnr", "nan"),
        ("--max-quality-drop", "nan"),
        ("--truncation", "nan"),
        ("--opset", "99"),
        ("--calib-samples", "100000000"),
    ],
)
def test_the_export_command_refuses_with_one_line(tmp_path, capsys, flag, value):
    from genedge.cli import main

    ckpt = tmp_path / "g.safetensors"
    ckpt.write_bytes(b"x")
    code = main(["export", str(ckpt), "--out", str(tmp_path / "b"), f"{flag}={value}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Invalid export options" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_bundle_eval_refuses_a_sample_count_past_the_limit(tmp_path, capsys):
    from genedge.cli import main

    (tmp_path / "bundle").mkdir()
    code = main(["eval", str(tmp_path / "bundle"), "-n", str(10**9)])
    err = capsys.readouterr().err
    assert code == 2 and "eval -n" in err and "Traceback" not in err, err

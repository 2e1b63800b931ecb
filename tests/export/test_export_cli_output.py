"""What `genedge export` prints: log lines without a source column, a summary table unbroken in a pipe."""

from __future__ import annotations

from genedge.cli import main


def test_export_output_reads_in_a_pipe(ckpts, tmp_path, capsys):
    out = tmp_path / "b"
    argv = ["export", str(ckpts["gan"]), "--out", str(out), "--precision", "fp32"]
    assert main([*argv, "--calib-samples", "32"]) == 0
    stdout, stderr = capsys.readouterr()
    assert "commands.py:" not in stderr and "model.onnx" in stderr
    header = next(ln for ln in stdout.splitlines() if "artifact" in ln)
    for column in ("precision", "size", "max err", "PSNR / SSIM vs fp32", "task metric", "verdict"):
        assert column in header, header
    row = next(ln for ln in stdout.splitlines() if "model.onnx" in ln)
    assert "pass" in row and " of 255" in row, row  # a uint8 image errs in levels of 255

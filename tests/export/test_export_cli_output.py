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


def test_eval_of_a_bundle_prints_metrics_as_eval_of_a_checkpoint_does(gan_bundle, tmp_path, capsys):
    import json

    record = tmp_path / "m.json"
    argv = ["eval", str(gan_bundle), "-n", "16", "--precision", "fp32,fp16", "--json", str(record)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"metrics of {gan_bundle}") and "16 samples" in lines[0]
    assert lines[1] == "model.onnx (fp32, ort-cpu)" and lines[2].startswith("  ")
    fp16 = lines.index("model.fp16.onnx (fp16, ort-cpu)")
    assert any(ln.split()[0] == "psnr_vs_fp32" for ln in lines[fp16 + 1 :]), out
    assert "{" not in out  # a list of metrics, not raw JSON
    saved = json.loads(record.read_text())
    assert saved["artifacts"]["model.onnx"]["backend"] == "ort-cpu"

"""tools/gpu_check.py (``make gpu-check``) on a machine without a GPU: its no-GPU report,
its report writer and its step runner. The GPU steps themselves only run on a GPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses resolve their module by name
    spec.loader.exec_module(mod)
    return mod


def test_the_check_is_a_tool_beside_the_makefile_not_a_library_module():
    """It runs pip, pytest and CMake: the installed ``genedge.bench`` package must not ship it."""
    assert "tools/gpu_check.py" in (REPO / "Makefile").read_text(encoding="utf-8")
    assert not (REPO / "bench" / "gpu_check.py").exists()
    assert importlib.util.find_spec("genedge.bench.gpu_check") is None


def test_without_a_gpu_every_step_is_skipped_and_the_exit_code_is_3(tmp_path, gc):
    out = tmp_path / "report"
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--nvidia-smi", "no-such-nvidia-smi"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 3, p.stdout + p.stderr
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["gpu"] is None
    assert [s["name"] for s in report["steps"]] == [name for name, _ in gc.STEPS]
    for step in report["steps"]:
        assert step["status"] == "skipped"
        assert step["detail"].startswith("no NVIDIA GPU found"), step
    assert report["summary"]["skipped"] == len(gc.STEPS)
    md = (out / "gpu-check.md").read_text()
    assert "no NVIDIA GPU found" in md and "every GPU step was skipped" in md
    for name, _ in gc.STEPS:
        assert f"| {name} | skipped |" in md


def test_the_script_never_imports_tensorrt_or_cuda():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('gpu_check', {str(SCRIPT)!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['gpu_check'] = m\n"
        "spec.loader.exec_module(m)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('tensorrt', 'cuda', 'torch')))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "[]", p.stdout + p.stderr


def test_nvidia_smi_parsing_and_the_extra_for_the_driver(gc):
    banner = "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4     |"
    gpu = gc.parse_nvidia_smi("NVIDIA H100 80GB HBM3, 550.54.15, 9.0\n", banner)
    assert gpu == gc.GpuInfo("NVIDIA H100 80GB HBM3", "550.54.15", "12.4", "9.0")
    assert gpu.cuda_major == 12 and gc.extra_for_cuda(12) == "trt-cu12"
    assert gc.extra_for_cuda(13) == "trt-cu13" and gc.extra_for_cuda(14) == "trt-cu13"
    assert gc.extra_for_cuda(11) is None
    assert gc.parse_nvidia_smi("", banner) is None


def _ctx(gc, tmp_path, total=60.0):
    gpu = gc.GpuInfo("Test GPU", "580.1", "13.0", "9.0")
    return gc.Context(tmp_path, tmp_path / "work", sys.executable, gpu, time.monotonic() + total, 1)


def test_a_failing_step_is_recorded_and_the_others_still_run(gc, tmp_path, monkeypatch):
    def boom(ctx):
        raise RuntimeError("broken step")

    def ok(ctx):
        return gc.StepResult("b", "passed", detail="fine")

    def needs_a(ctx):
        return gc.StepResult("c", "skipped", detail=gc._needs(ctx, "a") or "")

    monkeypatch.setattr(gc, "STEPS", [("a", boom), ("b", ok), ("c", needs_a)])
    ctx = _ctx(gc, tmp_path)
    gc.run_steps(ctx, skip_install=False)
    assert ctx.results["a"].status == "failed" and "broken step" in ctx.results["a"].detail
    assert ctx.results["b"].status == "passed"
    assert ctx.results["c"].detail == "needs step 'a' (failed)"
    assert gc.exit_code(gc.build_report(ctx, "now")) == 1


def test_a_command_past_its_limit_is_killed_and_logged(gc, tmp_path):
    ctx = _ctx(gc, tmp_path)
    t0 = time.monotonic()
    code, tail = ctx.run("slow", [sys.executable, "-c", "import time; time.sleep(30)"], 1)
    assert code == 124 and time.monotonic() - t0 < 15
    assert "killed after 1 s" in tail
    assert (tmp_path / "logs" / "slow.log").is_file()
    late = _ctx(gc, tmp_path, total=0.0)
    gc.run_steps(late, skip_install=False)
    assert all(r.detail == "no time left in --total-seconds" for r in late.results.values())


def test_report_writer(gc, tmp_path):
    ctx = _ctx(gc, tmp_path)
    rows = [
        {"backend": "tensorrt", "precision": "fp32", "max_abs_err": 1, "psnr_db": 58.25},
        {"backend": "ort-trt", "precision": "int8", "error": "provider | not loaded"},
        {"backend": "ort-trt", "precision": "fp16", "unavailable": "TensorRT 11: refused"},
        {"backend": "ort-cuda", "precision": "fp16", "max_abs_err": 9, "psnr_db": 30.0},
    ]
    for r in rows:
        r["verdict"] = gc.parity_verdict(r)
    ctx.results = {
        "install": gc.StepResult("install", "passed", 12.0, "genedge[gpu,trt-cu13]"),
        "parity": gc.StepResult("parity", "failed", 30.4, "failing: ort-trt/int8", {"rows": rows}),
        "bench": gc.StepResult("bench", "timeout", 75.0, "killed"),
    }
    ctx.facts["tensorrt_version"] = "11.4.0.106"
    report = gc.build_report(ctx, "2026-01-01 00:00:00 UTC")
    md_path, js_path = gc.write_report(tmp_path / "out", report)
    assert json.loads(js_path.read_text()) == json.loads(json.dumps(report))
    md = md_path.read_text()
    assert "GPU: Test GPU (compute capability 9.0), driver 580.1, CUDA 13.0." in md
    assert "TensorRT: 11.4.0.106" in md
    assert "1 passed, 1 failed, 1 timeout, 0 skipped" in md
    assert "| parity | failed | 30 | failing: ort-trt/int8 |" in md
    assert "| tensorrt | fp32 | 1 | 58.25 | pass |" in md
    assert "provider \\| not loaded" in md  # a pipe in a value cannot break the table
    assert [r["verdict"] for r in rows] == ["pass", "fail", "unavailable", "fail"]
    assert gc.exit_code(report) == 1
    assert not list((tmp_path / "out").glob("*.tmp*"))


def test_the_parity_step_runs_on_a_cpu_bundle_and_names_what_is_missing(gc, tmp_path):
    """The parity child script against a real (tiny, fp32) bundle: ORT CPU is the reference,
    the GPU backends are listed as unavailable (not failed), and without a native TensorRT
    engine the step fails saying so."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(REPO / "tests" / "export"))
        from export_helpers import GAN_CFG, fast_options, make_checkpoint
    from genedge.export.bundle import export_bundle

    ckpt = make_checkpoint(tmp_path / "g.safetensors", "gan", GAN_CFG)
    export_bundle(fast_options(ckpt, tmp_path / "bundle", precisions=("fp32",)))
    ctx = _ctx(gc, tmp_path / "report", total=120)
    ctx.results["bundle"] = gc.StepResult("bundle", "passed")
    ctx.facts["bundle"] = str(tmp_path / "bundle")
    r = gc.step_parity(ctx)
    rows = {(x["backend"], x["precision"]): x for x in r.data["rows"]}
    assert len(rows) == 9
    for backend in ("tensorrt", "ort-cuda", "ort-trt"):
        assert rows[(backend, "fp32")]["verdict"] == "unavailable", rows[(backend, "fp32")]
    assert r.status == "failed" and "no native TensorRT engine ran" in r.detail


def test_bench_leaves_out_backends_refused_here(gc, tmp_path):
    ctx = _ctx(gc, tmp_path)
    assert gc.bench_backends(ctx) == ["tensorrt", "ort-cuda", "ort-trt"]  # parity did not run
    rows = [
        {"backend": "tensorrt", "precision": "fp32", "verdict": "pass"},
        {"backend": "ort-cuda", "precision": "fp32", "verdict": "fail"},
        {"backend": "ort-trt", "precision": "fp32", "verdict": "unavailable"},
        {"backend": "ort-trt", "precision": "int8", "verdict": "unavailable"},
    ]
    ctx.results["parity"] = gc.StepResult("parity", "failed", data={"rows": rows})
    assert gc.bench_backends(ctx) == ["tensorrt", "ort-cuda"]


def test_install_picks_the_extra_from_the_drivers_cuda(gc, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        gc.Context, "run", lambda self, name, cmd, budget, **kw: calls.append(cmd) or (0, "")
    )
    ctx = _ctx(gc, tmp_path)  # CUDA 13.0 driver
    ctx.facts.update(venv=str(tmp_path / "venv"), constraints="/repo/constraints.txt")
    r = gc.step_install(ctx)
    assert r.status == "passed" and r.data["extras"] == "gpu,trt-cu13,train,export,dev"
    assert calls[0][1:] == ["-m", "venv", "--system-site-packages", str(tmp_path / "venv")]
    assert calls[1][-4:] == [
        "-c",
        "/repo/constraints.txt",
        "-e",
        f"{gc.REPO}[gpu,trt-cu13,train,export,dev]",
    ]
    assert ctx.python == str(tmp_path / "venv" / "bin" / "python")
    old = _ctx(gc, tmp_path)
    old.gpu = gc.GpuInfo("Old GPU", "470.1", "11.4", "7.5")
    r = gc.step_install(old)
    assert r.status == "failed" and "CUDA 11.4" in r.detail and "update the driver" in r.detail


def test_out_holding_other_files_is_refused_and_kept(gc, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "gpu-check.md").write_text("my notes\n")
    argv = [sys.executable, str(SCRIPT), "--out", str(out), "--nvidia-smi", "no-such-nvidia-smi"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "holds files gpu-check did not write (gpu-check.md)" in p.stderr
    assert (out / "gpu-check.md").read_text() == "my notes\n"
    assert sorted(x.name for x in out.iterdir()) == ["gpu-check.md"]
    fresh = tmp_path / "fresh"
    argv[3] = str(fresh)
    assert subprocess.run(argv, capture_output=True, timeout=120).returncode == 3
    assert subprocess.run(argv, capture_output=True, timeout=120).returncode == 3  # its own

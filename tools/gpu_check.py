"""``make gpu-check OUT=folder``: the whole GPU path on a machine with an NVIDIA GPU, one report.

First nvidia-smi names the GPU, the driver and the CUDA version the driver supports. Then
the steps, each time-boxed in its own process, each recorded (passed / failed / skipped /
timeout) without stopping the others; a step whose input failed is skipped and says which:

1. ``install``    the extras for that driver (``trt-cu12`` for CUDA 12, ``trt-cu13`` for 13)
                  with ``gpu``, ``train``, ``export``, ``dev`` into ``--venv`` (constraints.txt)
2. ``pytest-gpu`` ``pytest -m gpu``
3. ``bundle``     a tiny conditional GAN (``--train-steps`` on ``--train-device``, or the
                  ``--checkpoint`` given) exported with fp32/fp16/int8 ONNX and engines on
                  the default (strongly typed) path
4. ``legacy``     on TensorRT 10 only: the same precisions on the legacy path (flags + calibrator)
5. ``parity``     native TensorRT, ORT CUDA, ORT TensorRT EP vs fp32 ONNX on ORT CPU, same seeds
6. ``cuda-graphs`` TensorRT with CUDA graphs: same images as eager, and both p50 latencies
7. ``bench``      ``genedge bench`` on the GPU backends with the trtexec baseline
8. ``trt-host``   examples/trt_host built with CMake and run on the bundle

The report is ``gpu-check.md`` and ``gpu-check.json`` in ``--out``; logs of every step are in
``--out``/logs. Each step has its own time limit, and all of them stop at ``--total-seconds``
(460 s by default, so that the whole stays under 8 minutes on an H100-class GPU).
This module imports neither tensorrt nor CUDA: every GPU step runs in a child process.

Exit codes: 0 every step passed or was skipped for a reason other than a missing GPU;
1 a step failed or timed out; 3 no NVIDIA GPU found (the report says every GPU step was
skipped for that reason); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NO_GPU = "no NVIDIA GPU found"
STATUSES = ("passed", "failed", "timeout", "skipped")


@dataclass
class StepResult:
    """What one step did: ``status`` is one of STATUSES; ``data`` holds its numbers."""

    name: str
    status: str
    seconds: float = 0.0
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    driver: str
    cuda: str  # the CUDA version the driver supports ("12.4")
    compute_capability: str = ""

    @property
    def cuda_major(self) -> int:
        return int(self.cuda.split(".")[0]) if self.cuda else 0


def extra_for_cuda(cuda_major: int) -> str | None:
    """The trt extra for a driver's CUDA major: 12 -> trt-cu12, 13+ -> trt-cu13, older: None."""
    if cuda_major >= 13:
        return "trt-cu13"
    return "trt-cu12" if cuda_major == 12 else None


def parse_nvidia_smi(query_csv: str, banner: str) -> GpuInfo | None:
    """GPU 0 from ``nvidia-smi --query-gpu=name,driver_version,compute_cap`` and the banner's
    ``CUDA Version: X.Y``; None when no GPU is listed."""
    rows = [r for r in query_csv.strip().splitlines() if r.strip()]
    if not rows:
        return None
    cells = [c.strip() for c in rows[0].split(",")]
    m = re.search(r"CUDA Version:\s*([0-9.]+)", banner)
    return GpuInfo(
        cells[0], cells[1] if len(cells) > 1 else "", m.group(1) if m else "", *cells[2:3]
    )


def find_gpu(nvidia_smi: str = "nvidia-smi") -> tuple[GpuInfo | None, str]:
    """(GPU 0, why not) from nvidia-smi; (None, reason) when there is none."""
    exe = shutil.which(nvidia_smi)
    if exe is None:
        return None, f"{NO_GPU} ({nvidia_smi} is not on PATH)"
    try:
        q = subprocess.run(
            [exe, "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        banner = subprocess.run([exe], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{NO_GPU} ({nvidia_smi}: {e})"
    gpu = parse_nvidia_smi(q.stdout if q.returncode == 0 else "", banner)
    if gpu is None:
        return None, f"{NO_GPU} ({nvidia_smi} exit {q.returncode}: {q.stderr.strip()[:200]})"
    return gpu, ""


# ---------------------------------------------------------------- running steps
@dataclass
class Context:
    out: Path
    work: Path
    python: str
    gpu: GpuInfo | None
    deadline: float
    train_steps: int
    results: dict[str, StepResult] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # bundle paths, TensorRT version...

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, cmd: list[str], budget: float, **kw: Any) -> tuple[int, str]:
        """Run ``cmd`` for at most ``budget`` s (or what is left); log to logs/NAME.log.
        Returns (exit code, last 4000 characters); exit code None-like 124 on timeout."""
        limit = max(1.0, min(budget, self.left()))
        log = self.out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **kw.pop("env", {}))
        with open(log, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            try:
                p = subprocess.run(
                    cmd, stdout=f, stderr=subprocess.STDOUT, timeout=limit, env=env, **kw
                )
                code = p.returncode
            except subprocess.TimeoutExpired:
                code = 124
                f.write(f"\n[gpu-check] killed after {limit:.0f} s\n")
        return code, log.read_text(errors="replace")[-4000:]


Step = Callable[[Context], StepResult]


def _needs(ctx: Context, *steps: str) -> str | None:
    """Why a step cannot run: a step it needs did not pass."""
    for s in steps:
        r = ctx.results.get(s)
        if r is None or r.status != "passed":
            return f"needs step '{s}' ({r.status if r else 'not run'})"
    return None


def step_install(ctx: Context) -> StepResult:
    """The extras for this driver into ``--venv`` (made with --system-site-packages, so a
    torch or TensorRT the machine already has is reused; ``--constraints`` pins torch)."""
    extra = extra_for_cuda(ctx.gpu.cuda_major if ctx.gpu else 0)
    if extra is None:
        return StepResult(
            "install",
            "failed",
            detail=f"driver supports CUDA {ctx.gpu.cuda}: "
            "genedge's TensorRT extras need CUDA 12 or 13; update the driver",
        )
    venv = Path(ctx.facts["venv"])
    extras = f"gpu,{extra},train,export,dev"
    if not (venv / "bin" / "python").exists():
        make = [sys.executable, "-m", "venv", "--system-site-packages", str(venv)]
        code, tail = ctx.run("install", make, 60)
        if code:
            return StepResult("install", "failed", detail=tail[-600:])
    py = str(venv / "bin" / "python")
    pins = ["-c", ctx.facts["constraints"]] if ctx.facts.get("constraints") else []
    cmd = [py, "-m", "pip", "install", "-q", *pins, "-e", f"{REPO}[{extras}]"]
    code, tail = ctx.run("install", cmd, 200)
    if code:
        status = "timeout" if code == 124 else "failed"
        return StepResult("install", status, detail=tail[-600:], data={"extras": extras})
    ctx.python = py
    detail = f"genedge[{extras}] in {venv}"
    return StepResult("install", "passed", detail=detail, data={"extras": extras, "python": py})


def step_pytest_gpu(ctx: Context) -> StepResult:
    junit = ctx.out / "logs" / "pytest-gpu.xml"
    code, tail = ctx.run(
        "pytest-gpu",
        [
            ctx.python,
            "-m",
            "pytest",
            "-q",
            "-m",
            "gpu",
            f"--junitxml={junit}",
            "-p",
            "no:cacheprovider",
        ],
        90,
        cwd=REPO,
    )
    summary = next((ln for ln in reversed(tail.splitlines()) if " in " in ln and "=" in ln), "")
    status = "passed" if code == 0 else "timeout" if code == 124 else "failed"
    return StepResult("pytest-gpu", status, detail=summary.strip("= ") or tail[-400:])


def _export(ctx: Context, name: str, bundle: Path, extra_args: list[str], budget: float):
    cmd = [
        ctx.python, "-m", "genedge.cli", "export", ctx.facts["checkpoint"], "--out", str(bundle),
        "--precision", "fp32,fp16,int8", "--trt", *extra_args,
    ]  # fmt: skip
    return ctx.run(name, cmd, budget, cwd=REPO)


def _train(ctx: Context) -> StepResult | None:
    """A tiny conditional GAN (unless --checkpoint gave one); None when it worked."""
    if ctx.facts.get("checkpoint"):
        return None
    run = ctx.work / "run"
    cmd = [
        ctx.python, "-m", "genedge.cli", "train", "gan", "--data", "digits", "--conditional",
        "--steps", str(ctx.train_steps), "--device", ctx.facts["train_device"], "--out", str(run),
        "--overwrite",  # a re-run into the same --out replaces its own run
    ]  # fmt: skip
    code, tail = ctx.run("bundle", cmd, 120, cwd=REPO)
    if code:
        status = "timeout" if code == 124 else "failed"
        return StepResult("bundle", status, detail="training: " + tail[-600:])
    ctx.facts["checkpoint"] = str(run / "generator.safetensors")
    return None


def step_bundle(ctx: Context) -> StepResult:
    failed = _train(ctx)
    if failed is not None:
        return failed
    bundle = ctx.work / "bundle"
    code, tail = _export(ctx, "bundle", bundle, [], 120)
    if code:
        return StepResult(
            "bundle", "timeout" if code == 124 else "failed", detail="export: " + tail[-600:]
        )
    ctx.facts["bundle"] = str(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    engines = [a for a in manifest.get("artifacts", []) if a.get("format") == "engine"]
    ctx.facts["tensorrt_version"] = next(
        (a["engine"]["tensorrt_version"] for a in engines if a.get("engine")), ""
    )
    rows = [
        {
            "file": a["file"],
            "precision": a.get("precision"),
            "path": (a.get("engine") or {}).get("path"),
            "verdict": (a.get("verification") or {}).get("verdict"),
        }
        for a in engines
    ]
    ok = {r["precision"] for r in rows} >= {"fp32", "fp16", "int8"}
    return StepResult(
        "bundle",
        "passed" if ok else "failed",
        data={"engines": rows},
        detail=f"{len(rows)} engines, TensorRT {ctx.facts['tensorrt_version']}",
    )


def step_legacy(ctx: Context) -> StepResult:
    why = _needs(ctx, "bundle")
    if why:
        return StepResult("legacy", "skipped", detail=why)
    major = ctx.facts.get("tensorrt_version", "0").split(".")[0]
    if major != "10":
        return StepResult(
            "legacy",
            "skipped",
            detail=f"TensorRT {ctx.facts.get('tensorrt_version')}: the legacy path "
            "exists on TensorRT 10 only",
        )
    code, tail = _export(ctx, "legacy", ctx.work / "bundle-legacy", ["--trt-path", "legacy"], 90)
    status = "passed" if code == 0 else "timeout" if code == 124 else "failed"
    return StepResult("legacy", status, detail=tail[-600:] if code else "fp32/fp16/int8 built")


PARITY = r"""
import json, sys
import numpy as np
from genedge.errors import IncompatibleEnvironmentError
from genedge.metrics import psnr
from genedge.runtime import Sampler
bundle, seeds, n = sys.argv[1], (0, 1, 2), 8
with Sampler.open(bundle, backend="ort-cpu", precision="fp32") as ref:
    want = {s: ref.sample(n, seed=s) for s in seeds}
rows = []
for backend in ("tensorrt", "ort-cuda", "ort-trt"):
    for prec in ("fp32", "fp16", "int8"):
        row = {"backend": backend, "precision": prec}
        try:
            with Sampler.open(bundle, backend=backend, precision=prec) as s:
                got = {k: s.sample(n, seed=k) for k in seeds}
            row["max_abs_err"] = max(
                int(np.abs(got[k].astype(int) - want[k].astype(int)).max()) for k in seeds)
            row["psnr_db"] = min(min(psnr(want[k], got[k], layout="NHWC"), 200.0) for k in seeds)
        except IncompatibleEnvironmentError as e:  # refused by design (e.g. ort-trt + TRT 11)
            row["unavailable"] = str(e)[:300]
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"[:300]
        rows.append(row)
print("GPU_CHECK_JSON " + json.dumps(rows))
"""

# what each precision must reach against fp32 ONNX (uint8 images: levels of 255, dB)
PARITY_BARS = {"fp32": {"max_abs_err": 2}, "fp16": {"psnr_db": 35.0}, "int8": {"psnr_db": 25.0}}


def parity_verdict(row: dict[str, Any]) -> str:
    """``pass`` / ``fail`` against PARITY_BARS, or ``unavailable`` for a combination genedge
    refuses on this machine (exit 3, e.g. ort-trt beside TensorRT 11): listed, not failed."""
    if "unavailable" in row:
        return "unavailable"
    if "error" in row:
        return "fail"
    bar = PARITY_BARS[row["precision"]]
    if "max_abs_err" in bar:
        return "pass" if row["max_abs_err"] <= bar["max_abs_err"] else "fail"
    return "pass" if row["psnr_db"] >= bar["psnr_db"] else "fail"


def _json_line(tail: str) -> Any:
    line = next((ln for ln in reversed(tail.splitlines()) if ln.startswith("GPU_CHECK_JSON ")), "")
    return json.loads(line.split(" ", 1)[1]) if line else None


def step_parity(ctx: Context) -> StepResult:
    why = _needs(ctx, "bundle")
    if why:
        return StepResult("parity", "skipped", detail=why)
    code, tail = ctx.run("parity", [ctx.python, "-c", PARITY, ctx.facts["bundle"]], 60, cwd=REPO)
    rows = _json_line(tail)
    if rows is None:
        return StepResult("parity", "timeout" if code == 124 else "failed", detail=tail[-600:])
    for r in rows:
        r["verdict"] = parity_verdict(r)
    bad = [f"{r['backend']}/{r['precision']}" for r in rows if r["verdict"] == "fail"]
    if not any(r["backend"] == "tensorrt" and r["verdict"] == "pass" for r in rows):
        bad.append("no native TensorRT engine ran")
    return StepResult(
        "parity",
        "failed" if bad else "passed",
        data={"rows": rows},
        detail=("failing: " + ", ".join(bad)) if bad else f"{len(rows)} pairs pass",
    )


GRAPHS = r"""
import json, sys, time
import numpy as np
from genedge.runtime import Sampler
bundle, out = sys.argv[1], {}
for graphs in (False, True):
    with Sampler.open(bundle, backend="tensorrt", precision="fp32", cuda_graphs=graphs) as s:
        img = s.sample(1, seed=3)
        for _ in range(20):
            s.sample(1, seed=3)
        t = []
        for _ in range(200):
            t0 = time.perf_counter_ns(); s.sample(1, seed=3); t.append(time.perf_counter_ns() - t0)
        out["graph" if graphs else "eager"] = {"p50_us": float(np.median(t)) / 1e3, "image": img}
same = bool(np.array_equal(out["eager"].pop("image"), out["graph"].pop("image")))
print("GPU_CHECK_JSON " + json.dumps(dict(out, identical=same)))
"""


def step_cuda_graphs(ctx: Context) -> StepResult:
    why = _needs(ctx, "bundle")
    if why:
        return StepResult("cuda-graphs", "skipped", detail=why)
    code, tail = ctx.run(
        "cuda-graphs", [ctx.python, "-c", GRAPHS, ctx.facts["bundle"]], 40, cwd=REPO
    )
    data = _json_line(tail)
    if data is None:
        return StepResult("cuda-graphs", "timeout" if code == 124 else "failed", detail=tail[-600:])
    detail = (
        f"eager p50 {data['eager']['p50_us']:.0f} us, graph p50 "
        f"{data['graph']['p50_us']:.0f} us, identical images: {data['identical']}"
    )
    return StepResult(
        "cuda-graphs", "passed" if data["identical"] else "failed", detail=detail, data=data
    )


def bench_backends(ctx: Context) -> list[str]:
    """The GPU backends to bench: all three, less those the parity step found refused here
    (an ``unavailable`` backend would stop ``genedge bench`` with exit 3)."""
    rows = ctx.results.get("parity", StepResult("parity", "skipped")).data.get("rows") or []
    refused = {
        b
        for b in {r["backend"] for r in rows}
        if all(r["verdict"] == "unavailable" for r in rows if r["backend"] == b)
    }
    return [b for b in ("tensorrt", "ort-cuda", "ort-trt") if b not in refused]


def step_bench(ctx: Context) -> StepResult:
    why = _needs(ctx, "bundle")
    if why:
        return StepResult("bench", "skipped", detail=why)
    report = ctx.out / "bench.json"
    backends = bench_backends(ctx)
    cmd = [
        ctx.python, "-m", "genedge.cli", "bench", ctx.facts["bundle"], "--backend",
        ",".join(backends), "--precision", "fp32,fp16,int8", "--batch", "1,8", "--seconds", "1",
        "--baselines", "trtexec", "--json", str(report),
    ]  # fmt: skip
    code, tail = ctx.run("bench", cmd, 90, cwd=REPO)
    status = "passed" if code == 0 else "timeout" if code == 124 else "failed"
    trtexec = "trtexec on PATH" if shutil.which("trtexec") else "no trtexec on PATH"
    said = f"report {report.name}" if code == 0 else tail[-500:]
    return StepResult(
        "bench", status, detail=f"{','.join(backends)}; {trtexec}; {said}",
        data={"backends": backends},
    )  # fmt: skip


def tensorrt_headers() -> Path | None:
    """Where NvInfer.h is ($TENSORRT_ROOT, the distribution's include folders), or None."""
    roots = [os.environ.get("TENSORRT_ROOT", "")]
    dirs = [Path(r) / "include" for r in roots if r] + [
        Path("/usr/include/x86_64-linux-gnu"),
        Path("/usr/include/aarch64-linux-gnu"),
        Path("/usr/local/tensorrt/include"),
        Path("/usr/include"),
    ]
    return next((d for d in dirs if (d / "NvInfer.h").is_file()), None)


def step_trt_host(ctx: Context) -> StepResult:
    why = _needs(ctx, "bundle")
    if why:
        return StepResult("trt-host", "skipped", detail=why)
    if shutil.which("cmake") is None:
        return StepResult("trt-host", "failed", detail="cmake is not on PATH")
    if tensorrt_headers() is None:  # pip's TensorRT wheels carry no C++ headers
        return StepResult(
            "trt-host",
            "skipped",
            detail="no TensorRT C++ headers (NvInfer.h): install TensorRT's dev package "
            "(JetPack has it) or set TENSORRT_ROOT to a TensorRT tar install",
        )
    build = ctx.work / "trt_host"
    inc = _nlohmann_include(ctx.python)
    code, tail = ctx.run(
        "trt-host",
        [
            "cmake",
            "-S",
            str(REPO / "examples" / "trt_host"),
            "-B",
            str(build),
            *([f"-DNLOHMANN_JSON_INCLUDE={inc}"] if inc else []),
        ],
        40,
    )
    if code == 0:
        code, tail = ctx.run("trt-host", ["cmake", "--build", str(build), "-j"], 60)
    if code:
        return StepResult(
            "trt-host", "timeout" if code == 124 else "failed", detail="build: " + tail[-600:]
        )
    code, tail = ctx.run(
        "trt-host",
        [
            str(build / "trt_host"),
            ctx.facts["bundle"],
            "--precision",
            "fp32",
            "--iterations",
            "100",
            "--cuda-graph",
        ],
        30,
    )
    status = "passed" if code == 0 else "timeout" if code == 124 else "failed"
    return StepResult(
        "trt-host", status, detail=tail.strip().splitlines()[-1][:300] if tail.strip() else ""
    )


def _nlohmann_include(python: str) -> str | None:
    try:
        out = subprocess.run(
            [
                python,
                "-c",
                "import nlohmann_json, os; print(os.path.dirname(nlohmann_json.__file__))",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    inc = Path(out) / "include" if out else None
    return str(inc) if inc and inc.is_dir() else None


STEPS: list[tuple[str, Step]] = [
    ("install", step_install),
    ("pytest-gpu", step_pytest_gpu),
    ("bundle", step_bundle),
    ("legacy", step_legacy),
    ("parity", step_parity),
    ("cuda-graphs", step_cuda_graphs),
    ("bench", step_bench),
    ("trt-host", step_trt_host),
]


def run_steps(ctx: Context, skip_install: bool) -> None:
    for name, fn in STEPS:
        t0 = time.monotonic()
        if ctx.gpu is None:
            r = StepResult(name, "skipped", detail=ctx.facts["no_gpu"])
        elif name == "install" and skip_install:
            r = StepResult(name, "passed", detail=f"--no-install: using {ctx.python}")
        elif ctx.left() < 5:
            r = StepResult(name, "skipped", detail="no time left in --total-seconds")
        else:
            try:
                r = fn(ctx)
            except Exception as e:  # a bug in one step must not hide the others' results
                r = StepResult(name, "failed", detail=f"gpu_check error: {type(e).__name__}: {e}")
        r.seconds = round(time.monotonic() - t0, 1)
        ctx.results[name] = r
        print(f"gpu-check: {name}: {r.status} ({r.seconds:.0f} s) {r.detail[:120]}", flush=True)


# ---------------------------------------------------------------- the report
def build_report(ctx: Context, started: str) -> dict[str, Any]:
    return {
        "format": "genedge.gpu-check",
        "started": started,
        "gpu": asdict(ctx.gpu) if ctx.gpu else None,
        "no_gpu": ctx.facts.get("no_gpu"),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "tensorrt_version": ctx.facts.get("tensorrt_version"),
        "steps": [asdict(r) for r in ctx.results.values()],
        "summary": {s: sum(r.status == s for r in ctx.results.values()) for s in STATUSES},
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: environment, one row per step, then each step's numbers."""
    gpu = report.get("gpu")
    lines = ["# genedge gpu-check", "", f"Started {report['started']}."]
    if gpu:
        lines.append(
            f"GPU: {gpu['name']} (compute capability {gpu['compute_capability'] or '?'}), "
            f"driver {gpu['driver']}, CUDA {gpu['cuda']}. "
            f"TensorRT: {report.get('tensorrt_version') or 'not determined'}."
        )
    else:
        lines.append(f"**{report.get('no_gpu') or NO_GPU}**: every GPU step was skipped.")
    s = report["summary"]
    lines += [
        "",
        ", ".join(f"{s[k]} {k}" for k in STATUSES),
        "",
        "| step | status | seconds | detail |",
        "|---|---|---|---|",
    ]
    for st in report["steps"]:
        detail = " ".join(st["detail"].split()).replace("|", "\\|")[:200]
        lines.append(f"| {st['name']} | {st['status']} | {st['seconds']:.0f} | {detail} |")
    for st in report["steps"]:
        rows = st["data"].get("rows") or st["data"].get("engines")
        if rows:
            keys = list(dict.fromkeys(k for r in rows for k in r))
            lines += [
                "",
                f"## {st['name']}",
                "",
                "| " + " | ".join(keys) + " |",
                "|" + "---|" * len(keys),
            ]
            lines += ["| " + " | ".join(_cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return "" if v is None else " ".join(str(v).split()).replace("|", "\\|")[:120]


def refuse_out(out: Path) -> str | None:
    """Why gpu-check may not write into ``out`` (None when it may): a new or empty folder, or
    one holding an earlier gpu-check's report, whose logs and work it replaces."""
    from genedge.outputs import is_housekeeping, written_by_genedge

    if not out.exists():
        return None
    if out.is_symlink() or not out.is_dir():
        return "exists and is not a folder; pass a new or empty folder."
    entries = sorted(p.name for p in out.iterdir() if not is_housekeeping(p.name))
    report = out / "gpu-check.json"
    if not entries or (report.is_file() and written_by_genedge(report)):
        return None
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    return (
        f"holds files gpu-check did not write ({shown}); pass a new or empty folder "
        "(gpu-check replaces only its own earlier report)."
    )


def write_report(out: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """``gpu-check.json`` and ``gpu-check.md`` in ``out``, each written atomically."""
    from genedge.atomic import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "gpu-check.json", out / "gpu-check.md"
    atomic_write_text(js, json.dumps(report, indent=2) + "\n")
    atomic_write_text(md, render_markdown(report))
    return md, js


def exit_code(report: dict[str, Any]) -> int:
    if report["gpu"] is None:
        return 3
    return 1 if report["summary"]["failed"] or report["summary"]["timeout"] else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for the report and logs")
    ap.add_argument(
        "--venv",
        type=Path,
        default=REPO / ".venv-gpu",
        help="virtual environment the extras go into (default .venv-gpu)",
    )
    ap.add_argument(
        "--constraints",
        default=str(REPO / "constraints.txt"),
        help="pip constraints for the install (default: constraints.txt's torch pin; '' for "
        "none, to keep a torch the machine has)",
    )
    ap.add_argument(
        "--no-install",
        action="store_true",
        help="use this Python as it is (extras already installed)",
    )
    ap.add_argument("--train-steps", type=int, default=300, help="GAN steps for the test bundle")
    ap.add_argument(
        "--train-device",
        default="cpu",
        help="device of that training (constraints.txt pins a CPU torch; cuda needs a CUDA torch)",
    )
    ap.add_argument(
        "--checkpoint",
        default=None,
        help="export this generator checkpoint (e.g. the demo's) instead of training one",
    )
    ap.add_argument("--total-seconds", type=float, default=460.0, help="budget of all steps")
    ap.add_argument("--nvidia-smi", default="nvidia-smi", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    why_not = refuse_out(a.out)
    if why_not:
        print(f"gpu-check: --out {a.out} {why_not}", file=sys.stderr)
        return 2
    a.out = a.out.resolve()  # the steps run in the repository root
    checkpoint = str(Path(a.checkpoint).resolve()) if a.checkpoint else None
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    gpu, why = find_gpu(a.nvidia_smi)
    ctx = Context(
        a.out,
        a.out / "work",
        sys.executable,
        gpu,
        time.monotonic() + a.total_seconds,
        a.train_steps,
    )
    ctx.facts.update(
        venv=str(a.venv),
        no_gpu=why,
        train_device=a.train_device,
        checkpoint=checkpoint,
        constraints=str(Path(a.constraints).resolve()) if a.constraints else "",
    )
    run_steps(ctx, a.no_install)
    report = build_report(ctx, started)
    md, _ = write_report(a.out, report)
    print(f"gpu-check: report {md}")
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())

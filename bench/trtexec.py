"""trtexec on the bundle's own engine, where ``trtexec`` is on PATH (GPU machines only).

trtexec runs in its own process, so it cannot be interleaved with the in-process cases;
it runs right after them. Its summary uses the vocabulary the report adopts: host
latency, GPU compute, H2D, D2H, enqueue. Parsing is tested here on canned output; the
run itself needs a GPU (tests marked ``gpu``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

# trtexec summary line name -> our key
SECTIONS = {
    "Latency": "host_latency",
    "Enqueue Time": "enqueue",
    "H2D Latency": "h2d",
    "GPU Compute Time": "gpu_compute",
    "D2H Latency": "d2h",
}
_LINE = re.compile(
    r"(?:\[I\]\s*)?(Latency|Enqueue Time|H2D Latency|GPU Compute Time|D2H Latency):\s*(min = .*)$"
)
_FIELD = re.compile(
    r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*([0-9.eE+-]+)\s*ms"
)
_THROUGHPUT = re.compile(r"Throughput:\s*([0-9.eE+-]+)\s*qps")


def parse_trtexec(text: str) -> dict[str, Any]:
    """Summary of trtexec's "Performance summary": ``{section: {min, max, mean, median, p90...}}``
    in milliseconds, plus ``throughput_qps``. Lines it does not know are ignored."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        m = _LINE.search(line)
        if m:
            fields = {}
            for f in _FIELD.finditer(m.group(2)):
                key = f"p{f.group(2).removesuffix('.0')}" if f.group(2) else f.group(1)
                fields[key] = float(f.group(3))
            out[SECTIONS[m.group(1)]] = fields
        t = _THROUGHPUT.search(line)
        if t:
            out["throughput_qps"] = float(t.group(1))
    return out


def shapes_arg(inputs: dict[str, list[int]]) -> str:
    """``--shapes=z:16x64,label:16`` from input name -> concrete shape."""
    return ",".join(f"{name}:{'x'.join(str(d) for d in shape)}" for name, shape in inputs.items())


def trtexec_command(
    engine: Path,
    shapes: dict[str, list[int]],
    *,
    seconds: float,
    warmup_ms: int,
    cuda_graph: bool,
    exe: str = "trtexec",
) -> list[str]:
    cmd = [
        exe,
        f"--loadEngine={engine}",
        f"--shapes={shapes_arg(shapes)}",
        f"--duration={max(1, round(seconds))}",
        f"--warmUp={warmup_ms}",
        "--useSpinWait",
    ]
    return [*cmd, "--useCudaGraph"] if cuda_graph else cmd


def run_trtexec(
    engine: Path,
    shapes: dict[str, list[int]],
    *,
    seconds: float = 3.0,
    warmup_ms: int = 500,
    cuda_graph: bool = False,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Run trtexec on ``engine``; returns the parsed summary, or ``{"error": why}``."""
    exe = shutil.which("trtexec")
    if exe is None:
        return {"error": "trtexec is not on PATH"}
    cmd = trtexec_command(
        engine, shapes, seconds=seconds, warmup_ms=warmup_ms, cuda_graph=cuda_graph, exe=exe
    )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": f"trtexec failed to run: {e}", "command": cmd}
    parsed = parse_trtexec(proc.stdout + proc.stderr)
    if proc.returncode != 0 or "gpu_compute" not in parsed:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return {
            "error": f"trtexec exit {proc.returncode}: {' | '.join(tail)[:300]}",
            "command": cmd,
        }
    return {**parsed, "command": cmd, "cuda_graph": cuda_graph}

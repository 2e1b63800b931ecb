"""trtexec on the bundle's own engine, where ``trtexec`` is on PATH (GPU machines only).

trtexec runs in its own process, so it cannot be interleaved with the in-process cases;
it runs right after them. Its summary uses the vocabulary the report adopts: host
latency, GPU compute, H2D, D2H, enqueue. Parsing is tested here on canned output; the
run itself needs a GPU (tests marked ``gpu``).

An engine runs under trtexec only after the runtime's own checks passed against trtexec's
TensorRT (its banner) and this GPU: the record's TensorRT version and compute capability,
and the opt-in for version-compatible engines (host code), which trtexec then loads with
``--versionCompatible``. A DLA engine runs on its DLA core (``--useDLACore``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genedge.errors import GenedgeError
from genedge.runtime.cuda import probe_environment
from genedge.runtime.trt_backend import check_engine_record
from genedge.runtime.trt_compat import check_dla

if TYPE_CHECKING:
    from genedge.manifest import EngineRecord
    from genedge.runtime.trt_backend import TrtEnvironment

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
_BANNER = re.compile(r"\[TensorRT v(\d+)\]")  # "&&&& RUNNING TensorRT.trtexec [TensorRT v100300]"


def banner_version(text: str) -> str | None:
    """ "10.3.0" from trtexec's ``[TensorRT v100300]`` (``v8601`` before TensorRT 10), or None."""
    m = _BANNER.search(text)
    if not m:
        return None
    v = int(m.group(1))
    scale = 10000 if v >= 100000 else 1000
    return f"{v // scale}.{(v % scale) // 100}.{v % 100}"


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
    dla_core: int | None = None,
    version_compatible: bool = False,
) -> list[str]:
    """trtexec's argument list; ``version_compatible`` only for an engine already allowed to
    run host code, ``dla_core`` for an engine built for that DLA core."""
    cmd = [
        exe,
        f"--loadEngine={engine}",
        f"--shapes={shapes_arg(shapes)}",
        f"--duration={max(1, round(seconds))}",
        f"--warmUp={warmup_ms}",
        "--useSpinWait",
    ]
    if dla_core is not None:
        cmd.append(f"--useDLACore={dla_core}")
    if version_compatible:
        cmd.append("--versionCompatible")
    return [*cmd, "--useCudaGraph"] if cuda_graph else cmd


def refusal(
    engine: Path,
    record: EngineRecord,
    env: TrtEnvironment | None,
    trtexec_trt: str | None,
    *,
    allow_version_compatible: bool,
) -> str | None:
    """Why trtexec must not run ``engine`` here (the runtime's checks, against trtexec's own
    TensorRT version when its banner gave one), or None."""
    if env is None:
        return "no TensorRT GPU environment to check the engine against"
    if trtexec_trt:
        env = replace(env, tensorrt_version=trtexec_trt)
    try:
        check_engine_record(
            record,
            env,
            file=engine.name,
            bundle=engine.parent,
            allow_version_compatible=allow_version_compatible,
        )
        check_dla(env.tensorrt_version, record.dla_core)
    except GenedgeError as e:
        return str(e)
    return None


def trtexec_version(exe: str) -> str | None:
    """The TensorRT version trtexec links (its ``--help`` banner), or None."""
    try:
        proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return banner_version(proc.stdout + proc.stderr)


def run_trtexec(
    engine: Path,
    shapes: dict[str, list[int]],
    *,
    seconds: float = 3.0,
    warmup_ms: int = 500,
    cuda_graph: bool = False,
    timeout: float = 300.0,
    record: EngineRecord | None = None,
    env: TrtEnvironment | None = None,
    allow_version_compatible: bool = False,
) -> dict[str, Any]:
    """Run trtexec on ``engine``; returns the parsed summary, or ``{"error": why}``.

    ``record`` (the manifest's engine record) is checked first against ``env`` (default:
    the runtime's probe of this machine) with trtexec's TensorRT version; a refused engine
    is not run."""
    exe = shutil.which("trtexec")
    if exe is None:
        return {"error": "trtexec is not on PATH"}
    vc = False
    if record is not None:
        if env is None:
            from genedge.errors import GenedgeError

            try:
                env = probe_environment()
            except GenedgeError as e:  # e.g. cuda-python and TensorRT of different CUDA majors
                return {"error": f"not run: {e}"}
        why = refusal(
            engine,
            record,
            env,
            trtexec_version(exe),
            allow_version_compatible=allow_version_compatible,
        )
        if why:
            return {"error": f"not run: {why}"}
        vc = record.version_compatible
    cmd = trtexec_command(
        engine,
        shapes,
        seconds=seconds,
        warmup_ms=warmup_ms,
        cuda_graph=cuda_graph,
        exe=exe,
        dla_core=None if record is None else record.dla_core,
        version_compatible=vc,
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

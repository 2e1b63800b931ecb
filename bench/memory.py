"""Memory readings: peak and current RSS of this process, GPU memory when a GPU is there.

Peak RSS (``ru_maxrss``) only grows, so inside one process it cannot be split per
configuration; the per-configuration peak comes from the cold-start subprocess
(``genedge.bench.coldstart``), which opens one configuration and nothing else.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from typing import Any

MIB = 1024 * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int | None:
    """Current resident set size from /proc/self/statm; None where there is no /proc."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def gpu_memory() -> list[dict[str, Any]]:
    """Per-GPU name, driver and memory (MiB) via pynvml or nvidia-smi; [] without a GPU."""
    try:
        return _gpu_memory_nvml()
    except Exception:  # pynvml missing or no driver: try the command-line tool
        pass
    return _gpu_memory_smi()


def _gpu_memory_nvml() -> list[dict[str, Any]]:
    import pynvml  # lazily: an optional package

    pynvml.nvmlInit()
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            name = pynvml.nvmlDeviceGetName(h)
            gpus.append(
                {
                    "index": i,
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "driver": driver.decode() if isinstance(driver, bytes) else driver,
                    "memory_used_mib": mem.used / MIB,
                    "memory_total_mib": mem.total / MIB,
                }
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _gpu_memory_smi() -> list[dict[str, Any]]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    query = "index,name,driver_version,memory.used,memory.total"
    try:
        text = subprocess.run(
            [smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(text)


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """Parse ``index, name, driver, used, total`` CSV lines of nvidia-smi."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue
        try:
            gpus.append(
                {
                    "index": int(parts[0]),
                    "name": parts[1],
                    "driver": parts[2],
                    "memory_used_mib": float(parts[3]),
                    "memory_total_mib": float(parts[4]),
                }
            )
        except ValueError:
            continue
    return gpus

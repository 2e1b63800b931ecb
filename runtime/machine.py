"""What this machine's CPU offers: its model, feature flags and cores, read once here.

Backends, export, tune and bench ask this module rather than reading ``/proc/cpuinfo``
themselves: whether the CPU computes bf16 natively (AVX-512 BF16 or AMX), has VNNI for
int8 dot products, AVX-512 at all, and how many physical cores it has. stdlib only; load
readings (how busy the CPUs are right now) are ``genedge.cpu_load``'s.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from genedge.cpu_load import usable_cpus
from genedge.errors import IncompatibleEnvironmentError

CPUINFO = "/proc/cpuinfo"
# bf16 needs the CPU to compute in bf16 natively: AVX-512 BF16 (Cooper Lake, Zen 4 and later)
# or AMX (Sapphire Rapids and later). /proc/cpuinfo spells them so.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | os.PathLike = CPUINFO) -> set[str]:
    """The CPU feature flags of the first processor in ``cpuinfo`` (empty where unreadable)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / aarch64
            return set(value.split())
    return set()


def cpu_model(cpuinfo: str | os.PathLike = CPUINFO) -> str:
    """The CPU's model name, for messages and the tuning cache key ("" where unknown)."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bf16_support(flags: set[str] | None = None) -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively, and why: (ok, reason for the log or the refusal)."""
    flags = cpu_flags() if flags is None else flags
    have = [f for f in BF16_FLAGS if f in flags]
    if have:
        return True, f"the CPU has {', '.join(have)}"
    return False, (
        f"bf16 needs a CPU with AVX-512 BF16 or AMX (the {' or '.join(BF16_FLAGS)} flag in "
        f"/proc/cpuinfo); this CPU ({cpu_model() or 'unknown'}) has neither"
    )


def require_bf16(flags: set[str] | None = None) -> None:
    """Refuse (exit 3) bf16 on a CPU that cannot compute it natively."""
    ok, why = bf16_support(flags)
    if not ok:
        raise IncompatibleEnvironmentError(
            f"Precision bf16 is not available here: {why}.",
            hint="Pass --precision fp32 (or int8), or run on a CPU with AVX-512 BF16 "
            "(Intel Cooper Lake, AMD Zen 4 or later) or AMX (Intel Sapphire Rapids or later).",
        )


# int8 dot-product instructions (VNNI), which make Q/DQ int8 convolutions and matmuls pay off
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
AMX_FLAGS = ("amx_tile", "amx_bf16", "amx_int8")


def physical_cores(cpuinfo: str | os.PathLike = CPUINFO) -> int | None:
    """Distinct (physical id, core id) pairs in ``cpuinfo``; None where not listed."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    cores = set()
    for block in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return len(cores) or None


@dataclass(frozen=True)
class CpuFacts:
    """This CPU as the backends see it: model, flags, logical / usable / physical cores."""

    model: str
    flags: frozenset[str]
    logical: int
    usable: int
    physical: int | None

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def vnni(self) -> bool:
        return any(f in self.flags for f in VNNI_FLAGS)

    @property
    def bf16(self) -> bool:
        return any(f in self.flags for f in BF16_FLAGS)

    @property
    def amx(self) -> bool:
        return any(f in self.flags for f in AMX_FLAGS)


def cpu_facts(cpuinfo: str | os.PathLike = CPUINFO) -> CpuFacts:
    """Every fact above about this machine's CPU (read now; nothing is cached)."""
    return CpuFacts(
        model=cpu_model(cpuinfo),
        flags=frozenset(cpu_flags(cpuinfo)),
        logical=os.cpu_count() or 1,
        usable=usable_cpus(),
        physical=physical_cores(cpuinfo),
    )

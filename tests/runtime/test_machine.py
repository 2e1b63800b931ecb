"""runtime/machine.py: the CPU facts every stage reads, from a cpuinfo file the test writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from genedge.errors import IncompatibleEnvironmentError
from genedge.runtime import machine

SAPPHIRE = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8

processor\t: 2
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
core id\t\t: 1
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8
"""
HASWELL = "processor\t: 0\nmodel name\t: Intel(R) Core(TM) i7-4770\nflags\t\t: fpu sse2 avx2\n"


def _cpuinfo(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cpuinfo"
    p.write_text(text)
    return p


def test_a_sapphire_rapids_cpu_has_every_fast_path(tmp_path):
    facts = machine.cpu_facts(_cpuinfo(tmp_path, SAPPHIRE))
    assert facts.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert facts.avx512 and facts.vnni and facts.bf16 and facts.amx
    assert facts.physical == 2  # three logical processors on two cores
    assert facts.usable >= 1 and facts.logical >= 1


def test_an_avx2_cpu_has_none_of_them_and_bf16_is_refused_naming_it(tmp_path, monkeypatch):
    path = _cpuinfo(tmp_path, HASWELL)
    facts = machine.cpu_facts(path)
    assert not (facts.avx512 or facts.vnni or facts.bf16 or facts.amx)
    assert facts.physical is None  # no core ids listed
    monkeypatch.setattr(machine, "cpu_model", lambda *a: "Intel(R) Core(TM) i7-4770")
    with pytest.raises(IncompatibleEnvironmentError, match="i7-4770") as info:
        machine.require_bf16(set(facts.flags))
    assert info.value.exit_code == 3


def test_an_unreadable_cpuinfo_is_no_facts_not_an_error(tmp_path):
    missing = tmp_path / "none"
    assert machine.cpu_flags(missing) == set() and machine.physical_cores(missing) is None
    assert machine.cpu_model(missing)  # falls back to the platform's name

"""The binding wheels, unpacked, on stand-in TensorRT libraries built with the C compiler.

``make test`` downloads the wheels once (``make trt-api-wheels``: pip download --no-deps
--require-hashes from ``tests/gpu_api/wheels/*.txt``) into ``build/trt-api/wheels/<set>/``.
A TensorRT binding wheel holds the ``tensorrt_bindings`` module, a pybind11 extension linked
against libnvinfer.so.N, libnvonnxparser.so.N and libnvinfer_plugin.so.N; the real libraries
come in the ``-libs`` wheels (CUDA and GPU code, gigabytes). The extension only resolves a few
C entry points (``createInferBuilder_INTERNAL``...) at load time, and calls none of them
until a Builder or Runtime is made, so empty functions of those names, in three shared
objects with the right sonames, let it import. The names are read from the extension's own
dynamic symbol table: every undefined symbol the C and C++ runtimes do not provide.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHEELS = REPO / "build" / "trt-api" / "wheels"
PAIRS = {"10": ("tensorrt10", "cuda12"), "11": ("tensorrt11", "cuda13")}  # TensorRT major -> sets
PROBE = Path(__file__).resolve().parent / "api_probe.py"


def required() -> bool:
    """Missing wheels fail (not skip) in CI or when GENEDGE_REQUIRE_TRT_API=1."""
    ci = os.environ.get("CI", "").strip().lower()
    return ci not in ("", "0", "false", "no") or os.environ.get("GENEDGE_REQUIRE_TRT_API") == "1"


def wheel_sets() -> dict[str, list[Path]]:
    """Downloaded wheels per set (``tensorrt10``: [...]); a set with no wheel is left out."""
    if not WHEELS.is_dir():
        return {}
    return {
        d.name: sorted(d.glob("*.whl"))
        for d in sorted(WHEELS.iterdir())
        if d.is_dir() and any(d.glob("*.whl"))
    }


def missing_sets() -> list[str]:
    have = wheel_sets()
    return [s for pair in PAIRS.values() for s in pair if s not in have]


@functools.cache
def _runtime_handles() -> tuple[ctypes.CDLL, ...]:
    """This interpreter and the C / C++ runtime libraries, opened once."""
    handles = []
    for lib in (None, "c", "m", "stdc++", "gcc_s", "dl", "pthread"):
        try:
            handles.append(ctypes.CDLL(ctypes.util.find_library(lib) if lib else None))
        except OSError:
            continue
    return tuple(handles)


def _runtime_provides(symbol: str) -> bool:
    """Whether the C/C++ runtime (or this interpreter) already defines ``symbol``."""
    return any(hasattr(h, symbol) for h in _runtime_handles())


def undefined_symbols(extension: Path) -> tuple[list[str], list[str]]:
    """(symbols to stand in for, sonames to stand in as) from the extension's dynamic section."""
    nm = subprocess.run(
        ["nm", "-D", "--undefined-only", str(extension)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = []
    for line in nm.splitlines():
        parts = line.split()
        wanted = len(parts) == 2 and parts[0] == "U" and "@" not in parts[1]
        if wanted and not _runtime_provides(parts[1]):
            names.append(parts[1])
    elf = subprocess.run(
        ["readelf", "-d", str(extension)], capture_output=True, text=True, check=True
    ).stdout
    sonames = re.findall(r"\[(libnv[\w]+\.so\.\d+)\]", elf)
    return sorted(set(names)), sonames


def build_stand_ins(extension: Path, out: Path) -> list[str]:
    """Build one empty-function shared object per TensorRT soname the extension needs."""
    symbols, sonames = undefined_symbols(extension)
    out.mkdir(parents=True, exist_ok=True)
    src = out / "stand_in.c"
    src.write_text(
        "/* Stand-ins for TensorRT's C entry points: only for importing the Python bindings. */\n"
        + "".join(f"void *{s}(void) {{ return 0; }}\n" for s in symbols)
    )
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or "cc"
    for i, soname in enumerate(sonames):  # the first holds the symbols; the dynamic linker
        body = src if i == 0 else out / "empty.c"  # finds them there for every library
        if i:
            body.write_text("/* empty */\n")
        subprocess.run(
            [cc, "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(out / soname), str(body)],
            check=True,
            capture_output=True,
        )
    return symbols


@dataclass(frozen=True)
class ApiEnv:
    """One TensorRT major's bindings with their cuda-python, ready for a subprocess."""

    major: str
    site: Path  # unpacked wheels + the ``tensorrt`` package the tensorrt-cuXX wheel installs
    libs: Path  # stand-in shared objects
    stand_in_symbols: tuple[str, ...]

    def env(self) -> dict[str, str]:
        e = dict(os.environ)
        e["PYTHONPATH"] = os.pathsep.join([str(self.site), str(REPO)])
        e["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(self.libs), e.get("LD_LIBRARY_PATH", "")) if p
        )
        e["PYTHONWARNINGS"] = "ignore"
        return e

    def probe(self, *replacements: tuple[str, Path], only: bool = False) -> dict:
        """Run api_probe.py here; ``replacements`` swap walked files for edited copies
        (with ``only``, those files are walked alone)."""
        args = [sys.executable, str(PROBE), str(REPO)]
        for name, path in replacements:
            args += ["--source", f"{name}={path}"]
        if only:
            args.append("--only")
        proc = subprocess.run(args, capture_output=True, text=True, env=self.env(), timeout=120)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise RuntimeError(f"api_probe.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        out = json.loads(proc.stdout)
        if "fatal" in out:
            raise RuntimeError(f"api_probe.py failed:\n{out['fatal']}")
        return out


def prepare(major: str, work: Path) -> ApiEnv:
    """Unpack the wheel sets of ``major`` into ``work`` and build its stand-in libraries."""
    sets = wheel_sets()
    site = work / f"site-{major}"
    for name in PAIRS[major]:
        for whl in sets[name]:
            with zipfile.ZipFile(whl) as z:
                z.extractall(site)
    # what the tensorrt-cuXX wheel installs on top of the bindings: a re-exporting package
    (site / "tensorrt").mkdir(exist_ok=True)
    (site / "tensorrt" / "__init__.py").write_text(
        "from tensorrt_bindings import *\nfrom tensorrt_bindings import __version__\n"
    )
    ext = next((site / "tensorrt_bindings").glob("tensorrt*.so"))
    symbols = build_stand_ins(ext, work / f"libs-{major}")
    return ApiEnv(major, site, work / f"libs-{major}", tuple(symbols))

"""Which TensorRT, cuda-python, CUDA driver and onnxruntime-gpu can work together.

NVIDIA builds each TensorRT wheel for one CUDA major (``tensorrt-cu12-bindings``,
``tensorrt-cu13-bindings``), cuda-python's major is the CUDA major of its bindings, and a
CUDA N runtime needs a driver that supports CUDA N. onnxruntime-gpu's TensorRT provider is
linked against one ``libnvinfer.so.<major>``. A combination outside these rules cannot
work: every check here turns it into an ``IncompatibleEnvironmentError`` (exit 3) that
names the versions and the extra that fits, instead of a failure deep inside a CUDA call
("no GPU") or a provider that silently does not load.

The rules are pure functions of version strings; the ``installed_*`` helpers read the
installed distributions' metadata, never importing tensorrt or CUDA. README.md ("GPU and
TensorRT: which extra") has the table these checks enforce.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from genedge.errors import IncompatibleEnvironmentError

# TensorRT 11 dropped DLA until 11.4.1 (JetPack 7.2.2); TensorRT 10.x (JetPack 6) has it.
DLA_SINCE_TRT11 = (11, 4, 1)
EXTRA_FOR_CUDA = {12: "trt-cu12", 13: "trt-cu13"}


def version_tuple(text: str | None) -> tuple[int, ...]:
    """ "10.3.0.26" -> (10, 3, 0, 26); "13.4.4" -> (13, 4, 4); no digits -> ()."""
    return tuple(int(p) for p in re.findall(r"\d+", str(text or ""))[:4])


def _major(text: str | None) -> int | None:
    v = version_tuple(text)
    return v[0] if v else None


@dataclass(frozen=True)
class TensorRTInstall:
    """The pip-installed TensorRT bindings: version and the CUDA major they were built for.

    ``cuda_major`` is None for bindings that do not say (a system TensorRT, e.g. JetPack's).
    """

    version: str
    cuda_major: int | None
    dist: str


def dist_version(name: str) -> str | None:
    """Version of an installed distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def installed_tensorrt(imported: str | None = None) -> TensorRTInstall | None:
    """The TensorRT bindings wheel installed by pip (``tensorrt-cuNN-bindings``), or None.

    ``imported``: the version of the ``tensorrt`` module actually imported; when wheels for
    several CUDA majors are installed, the one of that version is the one in use.
    """
    found = [
        TensorRTInstall(v, cuda, f"tensorrt-cu{cuda}-bindings")
        for cuda in (13, 12, 11)
        if (v := dist_version(f"tensorrt-cu{cuda}-bindings")) is not None
    ]
    found += [
        TensorRTInstall(v, None, dist)
        for dist in ("tensorrt-bindings", "tensorrt")  # older single-CUDA wheels, system installs
        if (v := dist_version(dist)) is not None
    ]
    same = [t for t in found if imported and version_tuple(t.version) == version_tuple(imported)]
    return (same or found or [None])[0]


def installed_cuda_python() -> str | None:
    """cuda-python's bindings version (``cuda-bindings`` from 12.6 on, else ``cuda-python``)."""
    return dist_version("cuda-bindings") or dist_version("cuda-python")


def _extra_hint(cuda_major: int | None) -> str:
    extra = EXTRA_FOR_CUDA.get(cuda_major or 0)
    pick = (
        f"pip install 'genedge[{extra}]'"
        if extra
        else "pip install 'genedge[trt-cu12]' (CUDA 12 drivers) or 'genedge[trt-cu13]' (CUDA 13)"
    )
    return f"Install a matching set: {pick}; on Jetson use JetPack's TensorRT (README: GPU and TensorRT)."


def check_cuda_python(trt: TensorRTInstall | None, cuda_python: str | None) -> None:
    """TensorRT built for CUDA N needs cuda-python N.x (exit 3 otherwise)."""
    if trt is None or trt.cuda_major is None or cuda_python is None:
        return
    have = _major(cuda_python)
    if have != trt.cuda_major:
        raise IncompatibleEnvironmentError(
            f"TensorRT {trt.version} ({trt.dist}) is built for CUDA {trt.cuda_major}, but "
            f"cuda-python {cuda_python} binds CUDA {have}: the two cannot share one process.",
            hint=_extra_hint(trt.cuda_major),
        )


def check_driver(driver_version: int, cuda_python: str | None) -> None:
    """cuda-python N.x needs a driver that supports CUDA N (``cudaDriverGetVersion``: 12040 = 12.4)."""
    want = _major(cuda_python)
    if want is None or driver_version <= 0:
        return
    drv = (driver_version // 1000, (driver_version % 1000) // 10)
    if drv[0] < want:
        raise IncompatibleEnvironmentError(
            f"The NVIDIA driver supports CUDA {drv[0]}.{drv[1]}, but cuda-python {cuda_python} "
            f"needs a CUDA {want} driver: every CUDA call would fail.",
            hint=_extra_hint(drv[0]) + " Or update the driver.",
        )


def check_dla(trt_version: str, dla_core: int | None) -> None:
    """DLA exists on TensorRT 10.x and on 11.x from 11.4.1 (exit 3 on 11.0 - 11.4.0)."""
    if dla_core is None:
        return
    v = version_tuple(trt_version)
    if v[:1] == (11,) and (v + (0, 0, 0))[:3] < DLA_SINCE_TRT11:
        raise IncompatibleEnvironmentError(
            f"--dla-core {dla_core}: TensorRT {trt_version} has no DLA support (TensorRT 11 brings "
            "DLA back in 11.4.1, JetPack 7.2.2).",
            hint="Build DLA engines with TensorRT 10.x (JetPack 6) or 11.4.1+, or drop --dla-core "
            "to build for the GPU.",
        )


# ---------------------------------------------------------------- onnxruntime-gpu's TensorRT provider

ORT_TRT_PROVIDER = "libonnxruntime_providers_tensorrt.so"


def elf_needed(path: str | Path) -> list[str]:
    """The ``DT_NEEDED`` sonames of a 64-bit little-endian ELF shared object ([] otherwise)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return []
            (shoff,) = struct.unpack_from("<Q", head, 0x28)
            shentsize, shnum = struct.unpack_from("<HH", head, 0x3A)
            f.seek(shoff)
            table = f.read(shentsize * shnum)
            sections = [
                struct.unpack_from("<IIQQQQII", table, i * shentsize) for i in range(shnum)
            ]  # name, type, flags, addr, offset, size, link, info
            for _, kind, _, _, offset, size, link, _ in sections:
                if kind != 6:  # SHT_DYNAMIC
                    continue
                f.seek(offset)
                dyn = f.read(size)
                str_off, str_size = sections[link][4], sections[link][5]
                f.seek(str_off)
                strtab = f.read(str_size)
                out = []
                for tag, val in struct.iter_unpack("<qQ", dyn[: len(dyn) // 16 * 16]):
                    if tag == 0:  # DT_NULL
                        break
                    if tag == 1:  # DT_NEEDED
                        out.append(strtab[val : strtab.index(b"\0", val)].decode(errors="replace"))
                return out
    except (OSError, struct.error, IndexError, ValueError):
        return []
    return []


def needed_major(sonames: list[str], lib: str) -> int | None:
    """``10`` from ``["libnvinfer.so.10", ...]`` for ``lib="libnvinfer"``; None if absent."""
    for name in sonames:
        m = re.fullmatch(rf"{re.escape(lib)}\.so\.(\d+)(?:\..*)?", name)
        if m:
            return int(m.group(1))
    return None


def check_ort_tensorrt(
    provider_needs: list[str], trt: TensorRTInstall | None, ort_version: str
) -> None:
    """ORT's TensorRT provider loads the ``libnvinfer.so.<major>`` it was linked against, built
    for one CUDA major: a pip TensorRT of another major (or CUDA) cannot serve it (exit 3)."""
    nvinfer = needed_major(provider_needs, "libnvinfer")
    cudart = needed_major(provider_needs, "libcudart")
    if trt is None or nvinfer is None:
        return
    trt_major = _major(trt.version)
    cuda_clash = cudart is not None and trt.cuda_major is not None and cudart != trt.cuda_major
    if trt_major != nvinfer or cuda_clash:
        built = f"libnvinfer.so.{nvinfer}" + (f" and libcudart.so.{cudart}" if cudart else "")
        need = f"TensorRT {nvinfer}.x" + (f" for CUDA {cudart}" if cudart else "")
        raise IncompatibleEnvironmentError(
            f"Backend 'ort-trt': onnxruntime-gpu {ort_version}'s TensorRT provider is linked "
            f"against {built}, but the installed TensorRT is {trt.version} ({trt.dist}).",
            hint=f"Install {need} beside this onnxruntime-gpu (README: GPU and TensorRT), or use "
            "--backend tensorrt (native engines) or --backend ort-cuda.",
        )


def ort_tensorrt_provider(ort_file: str | Path) -> Path | None:
    """The TensorRT provider library beside onnxruntime's ``__init__.py``, if present."""
    path = Path(ort_file).parent / "capi" / ORT_TRT_PROVIDER
    return path if path.is_file() else None

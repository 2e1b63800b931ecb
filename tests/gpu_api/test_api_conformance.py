"""Our TensorRT and cuda-python API use, checked against the real bindings, without a GPU.

This checks NAMES AND SIGNATURES, NOT BEHAVIOUR. The real Python bindings of TensorRT 10.3
(JetPack 6) and 11.4 (``tensorrt-cu12-bindings`` / ``tensorrt-cu13-bindings``) and of
cuda-python 12.9 and 13.5 (``cuda-bindings``) are imported in a subprocess, TensorRT on
stand-in libnvinfer / libnvonnxparser / libnvinfer_plugin objects that hold no TensorRT.
Every module attribute, enum member, class method and property our code reaches from a
TensorRT or cuda-python module in export/, runtime/ and bench/ (found by walking the AST,
so new uses are covered without a list to keep) must exist on each version, every call must
bind to a documented signature, every property we assign must be writable, and every method
our subclasses define must be one TensorRT calls. A name one version lacks passes only where
version_guards.py lists it with the guard that keeps that version away from it.

Our pure-Python decision code also runs against the real modules (api_decisions.py):
build-path choice, engine-record rules, the calibrator factory, the logger, the progress
monitor, CUDA error mapping, the version-compatibility rules. No engine is built or run:
whether TensorRT and CUDA do what we ask is for ``make gpu-check`` on a GPU.

The wheels come from ``make trt-api-wheels`` (``make test`` runs it). Without them the test
skips with the reason, except in CI or with GENEDGE_REQUIRE_TRT_API=1, where it fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from api_decisions import CHECKS
from api_env import PAIRS, REPO
from api_uses import NullResolver, Type, Walker, source_files
from conformance import excused, failures
from version_guards import GUARDS, GuardChecker

MAJORS = sorted(PAIRS)


@pytest.fixture(scope="module")
def checker() -> GuardChecker:
    return GuardChecker(source_files(REPO))


@pytest.mark.parametrize("major", MAJORS)
def test_every_binding_name_we_use_fits_this_tensorrt(api_reports, checker, major):
    report = api_reports[major]
    assert report["tensorrt_version"].split(".")[0] == major
    bad = failures(report, major, checker)
    assert not bad, (
        f"TensorRT {report['tensorrt_version']} / cuda-python {report['cuda_bindings_version']}:\n"
        + "\n".join(bad)
        + "\nA name only one TensorRT has needs a guard and an entry in version_guards.py."
    )


@pytest.mark.parametrize("major", MAJORS)
def test_the_stand_ins_replace_only_tensorrt_entry_points(api_envs, major):
    """What the stand-in libraries define is read from the bindings' own symbol table: the
    handful of TensorRT C entry points, nothing of the C or C++ runtime."""
    symbols = api_envs[major].stand_in_symbols
    assert "createInferBuilder_INTERNAL" in symbols and "createInferRuntime_INTERNAL" in symbols
    assert all(re.fullmatch(r"(create|get|init)\w+", s) for s in symbols), symbols
    assert len(symbols) < 20, symbols


@pytest.mark.parametrize("major", MAJORS)
def test_the_walk_reaches_the_tensorrt_objects(api_reports, major):
    """The type inference follows builder -> network -> config and runtime -> engine ->
    context (otherwise their methods would go unchecked)."""
    report = api_reports[major]
    recv = report["receivers"]
    assert {"builder", "network", "parser", "config", "cudart"} <= set(
        recv["export/stages/tensorrt.py"]
    )
    assert {"self._runtime", "self._engine", "self._context"} <= set(recv["runtime/trt_backend.py"])
    assert "prop" in recv["runtime/cuda.py"]  # probe_environment's device properties
    names = {u["name"] for u in report["uses"]}
    for expected in (
        "tensorrt:IExecutionContext.execute_async_v3",
        "tensorrt:Runtime.deserialize_cuda_engine",
        "tensorrt:IBuilderConfig.set_timing_cache",
        "tensorrt:ILogger.log",
        "cudart:cudaMemcpyAsync",
        "cudart:cudaMemcpy",  # export's calibrator, reached through ``trt, cudart = ..., ...``
        "cudart:cudaDeviceProp.integrated",
    ):
        assert expected in names, expected
    assert len(report["uses"]) > 80


@pytest.mark.parametrize("check", [c.__name__ for c in CHECKS])
@pytest.mark.parametrize("major", MAJORS)
def test_decision_code_against_the_real_enums(api_reports, major, check):
    got = {d["name"]: d for d in api_reports[major]["decisions"]}
    assert check in got, sorted(got)
    assert got[check]["ok"], got[check]["error"]


@pytest.mark.parametrize("guard", GUARDS, ids=lambda g: f"trt{g.missing_on}:{g.guard}")
def test_each_version_guard_is_needed_and_holds(api_reports, checker, guard):
    lacking = api_reports[guard.missing_on]
    missing_names = {
        u["name"] for u in lacking["uses"] if "has no attribute" in (u["problem"] or "")
    }
    for name in guard.names:
        assert name in missing_names, f"{name} is used and present on TensorRT {guard.missing_on}"
        for major, report in api_reports.items():
            if major != guard.missing_on:
                uses = [u for u in report["uses"] if u["name"] == name]
                assert uses and not any(u["problem"] for u in uses), (major, name)
    for use in (u for u in lacking["uses"] if u["name"] in guard.names):
        assert excused(use, guard.missing_on, checker), f"unguarded: {use['where']} {use['name']}"
    for fn in guard.functions:
        file, name = fn.split(":")
        assert name in checker.funcs[file], f"{fn} no longer exists"
    proof = {d["name"]: d for d in lacking["decisions"]}[guard.proved_by]
    assert proof["ok"], proof["error"]


def _inject(tmp_path: Path, lines: list[str]) -> Path:
    """export/stages/tensorrt.py with ``lines`` added right after the builder config is created."""
    src = (REPO / "export" / "stages" / "tensorrt.py").read_text()
    m = re.search(r"\n( +)config = builder\.create_builder_config\(\)\n", src)
    assert m, "anchor line moved: update _inject"
    indent = m.group(1)
    extra = "".join(f"{indent}{line}\n" for line in lines)
    out = tmp_path / "tensorrt.py"
    out.write_text(src[: m.end()] + extra + src[m.end() :])
    return out


BOGUS = [
    "config.set_flag(trt.BuilderFlag.BOGUS_FLAG)",  # no such enum member
    "config.set_timing_cache(config.create_timing_cache(b''), ignore_mismatches=False)",
    "builder.build_serialized_network(network)",  # one argument short
    "config.no_such_property = 1",
    "cudart_bogus = require('cuda.cudart', 'trt').cudaNoSuchCall()",
    "config.set_flag(trt.BuilderFlag.INT8)",  # exists on 10 only, and here it is unguarded
]


@pytest.mark.parametrize("major", MAJORS)
def test_a_name_a_supported_version_lacks_fails(api_envs, tmp_path, major):
    edited = _inject(tmp_path, BOGUS)
    report = api_envs[major].probe(("export/stages/tensorrt.py", edited), only=True)
    checker = GuardChecker({"export/stages/tensorrt.py": edited.read_text()})
    bad = "\n".join(failures(report, major, checker))
    assert "has no attribute 'BOGUS_FLAG'" in bad
    assert "set_timing_cache(_, ignore_mismatches=_) binds to none of" in bad
    assert "build_serialized_network(_) binds to none of" in bad
    assert "has no attribute 'no_such_property'" in bad
    assert "has no attribute 'cudaNoSuchCall'" in bad
    assert ("has no attribute 'INT8'" in bad) == (major == "11"), bad
    clean = failures(
        api_envs[major].probe(
            ("export/stages/tensorrt.py", REPO / "export/stages/tensorrt.py"), only=True
        ),
        major,
        checker,
    )
    assert not clean, clean


# ---------------------------------------------------------------- no wheels needed below
GUARDED_SRC = """
def build(req, trt):
    if req.path == LEGACY:
        legacy(trt)
    if req.path == LEGACY:
        trt.BuilderFlag.INT8

def legacy(trt):
    trt.BuilderFlag.INT8
    calib(trt)

def calib(trt):
    return trt.IInt8EntropyCalibrator2

def early(trt):
    if not hasattr(trt, "IProgressMonitor"):
        return None
    return trt.IProgressMonitor

def unguarded(trt):
    legacy(trt)
    return trt.BuilderFlag.INT8
"""


def _line(text: str, needle: str, nth: int = 0) -> int:
    return [i for i, s in enumerate(text.splitlines(), 1) if needle in s][nth]


def test_guard_checker_follows_ifs_early_returns_and_callers():
    c = GuardChecker({"m.py": GUARDED_SRC})
    g = "req.path == LEGACY"
    assert c.guarded("m.py", _line(GUARDED_SRC, "trt.BuilderFlag.INT8", 0), "build", g)
    # legacy() is called from a guarded branch and from unguarded(): not guarded
    assert not c.guarded("m.py", _line(GUARDED_SRC, "trt.BuilderFlag.INT8", 1), "legacy", g)
    assert not c.guarded("m.py", _line(GUARDED_SRC, "IInt8EntropyCalibrator2"), "calib", g)
    assert not c.guarded("m.py", _line(GUARDED_SRC, "trt.BuilderFlag.INT8", 2), "unguarded", g)
    hasattr_guard = "hasattr(trt, 'IProgressMonitor')"
    assert c.guarded(
        "m.py", _line(GUARDED_SRC, "return trt.IProgressMonitor"), "early", hasattr_guard
    )
    without = GUARDED_SRC.replace("def unguarded(trt):\n    legacy(trt)\n", "def unguarded(trt):\n")
    c2 = GuardChecker({"m.py": without})
    assert c2.guarded("m.py", _line(without, "trt.BuilderFlag.INT8", 1), "legacy", g)
    assert c2.guarded("m.py", _line(without, "IInt8EntropyCalibrator2"), "calib", g)


def test_the_walk_finds_roots_without_a_list_of_names():
    src = """
import tensorrt as trt2
from genedge.errors import require

def get_rt():
    return require("cuda.cudart", "trt")

def use():
    rt = get_rt()
    b = trt2.Builder(None)
    rt.cudaFoo(1, x=2)
    t, c = trt2, get_rt()
    c.cudaBar()
    with trt2.Runtime(None) as runtime:
        runtime.deserialize_cuda_engine(b"")
    class M(trt2.IProgressMonitor):
        def phase_start(self, a, b, c):
            pass
"""
    uses = {(u.name, u.kind) for u in Walker({"x.py": src}).uses()}
    assert ("tensorrt:Builder", "call") in uses
    assert ("cudart:cudaFoo", "call") in uses
    assert ("cudart:cudaBar", "call") in uses
    assert ("tensorrt:Runtime.deserialize_cuda_engine", "call") not in uses  # no return types

    class Classes(NullResolver):  # calling tensorrt.Runtime gives a Runtime, as the bindings say
        def returns(self, callee):
            return (
                Type(callee.root, callee.path, instance=True)
                if callee.path == ("Runtime",)
                else None
            )

    uses = {(u.name, u.kind) for u in Walker({"x.py": src}, Classes()).uses()}
    assert ("tensorrt:Runtime.deserialize_cuda_engine", "call") in uses  # through ``with ... as``
    assert ("tensorrt:IProgressMonitor.phase_start", "override") in uses


def test_the_wheels_are_pinned_with_hashes():
    """make trt-api-wheels downloads with --require-hashes: every requirement is name==version
    with sha256 hashes, one file per wheel set the tests use."""
    reqs = sorted((REPO / "tests" / "gpu_api" / "wheels").glob("*.txt"))
    assert {p.stem for p in reqs} == {s for pair in PAIRS.values() for s in pair}
    for p in reqs:
        lines = [ln for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        heads = [ln for ln in lines if not ln.startswith(" ")]
        assert heads, p
        for head in heads:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][\w.]*\s*\\", head), head
        hashes = [ln for ln in lines if ln.startswith(" ")]
        assert len(hashes) >= len(heads)
        assert all(re.fullmatch(r"\s+--hash=sha256:[0-9a-f]{64}(\s*\\)?", h) for h in hashes)
    make = (REPO / "Makefile").read_text()
    assert "--no-deps --require-hashes" in make and "test: install trt-api-wheels" in make

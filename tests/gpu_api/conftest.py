"""Fixtures of the TensorRT / cuda-python API conformance tests (see test_api_conformance.py)."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from api_env import PAIRS, ApiEnv, missing_sets, prepare, required


def _unavailable(reason: str) -> None:
    if required():
        pytest.fail(f"{reason} (CI or GENEDGE_REQUIRE_TRT_API=1: the conformance test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def api_envs(tmp_path_factory) -> dict[str, ApiEnv]:
    """TensorRT major -> its bindings unpacked on stand-in libraries (built once a session)."""
    missing = missing_sets()
    if missing:
        _unavailable(
            f"binding wheels missing from build/trt-api/wheels/ ({', '.join(missing)}): "
            "run `make trt-api-wheels` (`make test` does it)"
        )
    tools = [t for t in ("nm", "readelf") if shutil.which(t) is None]
    if tools or not (shutil.which("gcc") or shutil.which("cc")):
        _unavailable(
            f"no C compiler or binutils ({', '.join(tools) or 'gcc/cc'}) to build stand-ins"
        )
    work = tmp_path_factory.mktemp("trt-api")
    return {major: prepare(major, work) for major in PAIRS}


@pytest.fixture(scope="session")
def api_reports(api_envs) -> dict[str, dict]:
    """TensorRT major -> api_probe.py's report over our real sources (probes run side by side)."""
    with ThreadPoolExecutor(len(api_envs)) as pool:
        futures = {major: pool.submit(env.probe) for major, env in api_envs.items()}
        return {major: f.result() for major, f in futures.items()}

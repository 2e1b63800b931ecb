"""The C ABI reports closed, forged and stale handles and bad thread counts as error codes.

Built and run for real (cmake) like tests/runtime/test_capi.py, whose fixtures it shares.
"""

from __future__ import annotations

from pathlib import Path

import test_capi
from test_capi import cases, run

capi = test_capi.capi  # the session's libgenedge build, shared with test_capi.py
bundle = test_capi.bundle


def test_closed_forged_and_stale_handles_are_error_codes(capi: Path, bundle: Path) -> None:
    r = run(capi, "genedge_probe", "handles", bundle)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    got = cases(r.stdout)
    expected = {
        "close": 0,
        "close_again": 2,
        "sample_closed": 2,
        "info_closed": 2,
        "stream_start_closed": 2,
        "stream_next_closed": 2,
        "stream_stop_closed": 2,
        "stream_stats_closed": 2,
        "sample_forged": 2,
        "close_forged": 2,
        "reopened_differs": 0,
        "sample_closed_after_reopen": 2,
        "sample_reopened": 0,
        "close_reopened": 0,
        "open_negative_threads": 2,
        "open_million_threads": 2,
        "threads_handle_null": 0,
    }
    assert {k: got[k][0] for k in expected} == expected, r.stdout
    for name in ("close_again", "sample_closed", "sample_forged", "sample_closed_after_reopen"):
        assert "closed or was never opened" in got[name][1], got[name]
    assert "per CPU" in got["open_million_threads"][1]
    assert "options.threads" in got["open_negative_threads"][1]

"""Ctrl-C after OpenVINO: its CPU plugin installs an alternate signal stack of exactly the
minimum frame size on the compiling thread, and on a CPU with AMX a SIGINT delivered there
faulted before Python's handler ran (a segmentation fault instead of exit 130)."""

from __future__ import annotations

import ctypes
import signal
import sys

import pytest

from genedge.interrupts import (
    SIGNAL_STACK_BYTES,
    _StackT,
    roomy_signal_stack,
    sigint_watch,
    signal_stack_bytes,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack")


@pytest.fixture
def own_signal_stack():
    """The thread's alternate signal stack as it was, put back after the test."""
    libc = ctypes.CDLL(None)
    before = _StackT()
    assert libc.sigaltstack(None, ctypes.byref(before)) == 0
    yield libc
    assert libc.sigaltstack(ctypes.byref(before), None) == 0


def test_a_small_signal_stack_is_replaced_and_a_roomy_one_kept(own_signal_stack):
    small = ctypes.create_string_buffer(20144)
    stack = _StackT(ctypes.cast(small, ctypes.c_void_p), 0, 20144)
    assert own_signal_stack.sigaltstack(ctypes.byref(stack), None) == 0
    assert signal_stack_bytes() == 20144
    assert roomy_signal_stack() is True
    assert signal_stack_bytes() == SIGNAL_STACK_BYTES
    assert roomy_signal_stack() is False  # already roomy: left alone


def test_no_signal_stack_stays_none(own_signal_stack):
    off = _StackT(None, 2, 0)  # SS_DISABLE
    assert own_signal_stack.sigaltstack(ctypes.byref(off), None) == 0
    assert signal_stack_bytes() is None
    assert roomy_signal_stack() is False
    assert signal_stack_bytes() is None


def test_ctrl_c_after_openvino_is_a_keyboard_interrupt(cgan_bundle, own_signal_stack):
    pytest.importorskip("openvino")
    from genedge.runtime import Sampler

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # even if run with &
    try:
        with Sampler.open(cgan_bundle.path, backend="openvino", threads=1) as s:
            s.sample(4, seed=0)
            size = signal_stack_bytes()
            assert size is None or size >= SIGNAL_STACK_BYTES, size
            for _ in range(20):
                s.sample(4, seed=1)  # the plugin's kernels run on this thread
                with pytest.raises(KeyboardInterrupt), sigint_watch("test"):
                    signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)

"""Code run on a user's behalf, Ctrl-C, and the CLI's parsing of hostile flag spellings."""

from __future__ import annotations

import signal
import sys

import pytest

from genedge.cli import build_parser, join_negative_values, main, whole_number
from genedge.errors import BadInputError
from genedge.interrupts import sigint_watch, user_code


def test_sys_exit_in_user_code_is_bad_input_naming_it():
    exits = pytest.raises(BadInputError, match=r"--module g\.py:G called sys\.exit\(0\)")
    with exits, user_code("--module g.py:G"):
        sys.exit(0)
    with pytest.raises(BadInputError, match=r"sys\.exit\('bye'\)"), user_code("g"):
        raise SystemExit("bye")


@pytest.fixture
def sigint_default():
    """Python's own SIGINT handler for the test: a run started in the background (``make test
    &`` from a script) inherits SIGINT ignored, and ``sigint_watch`` then rightly stays out."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_raised_keyboard_interrupt_is_bad_input_but_a_real_ctrl_c_is_not(sigint_default):
    raised = pytest.raises(BadInputError, match="raised KeyboardInterrupt without a Ctrl-C")
    with raised, sigint_watch("test"), user_code("--module g.py:G"):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt), sigint_watch("test"), user_code("--module g.py:G"):
        signal.raise_signal(signal.SIGINT)  # the handler runs: a Ctrl-C stays one


def test_sigint_watch_restores_the_previous_handler(sigint_default):
    before = signal.getsignal(signal.SIGINT)
    with sigint_watch("test"):
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before


def test_sigint_watch_stays_out_where_sigint_is_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with sigint_watch("test"):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_output_range_takes_the_documented_negative_spelling():
    argv = ["export", "--module", "g.py:G", "--out", "b", "--output-range", "-1,1"]
    assert join_negative_values(argv)[-1] == "--output-range=-1,1"
    args = build_parser().parse_args(join_negative_values(argv))
    assert args.output_range == "-1,1"
    for other in (["--output-range", "0,1"], ["--output-range", "-0.5,2e0"]):
        args = build_parser().parse_args(join_negative_values(["export", "--out", "b", *other]))
        assert args.output_range == other[1]
    assert join_negative_values(["sample", "-n", "-1"]) == ["sample", "-n", "-1"]  # untouched


def test_whole_numbers_take_the_1e9_spelling():
    assert whole_number("1e9") == 10**9 and whole_number("12") == 12
    for bad in ("1.5", "inf", "nan", "x"):
        with pytest.raises(Exception, match="whole number"):
            whole_number(bad)


def test_a_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "b", "--rounds", "1.5"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.count("\n") == 1 and "see genedge bench --help" in err, err


def test_nested_commands_print_a_warning_once(capsys):
    import logging

    from genedge.cli import log_lines

    with log_lines(), log_lines():  # `genedge demo` runs commands through main()
        logging.getLogger("genedge.runtime").warning("cache %s", "a\x1b[31m")
    err = capsys.readouterr().err
    assert err == "cache a\\x1b[31m\n", err

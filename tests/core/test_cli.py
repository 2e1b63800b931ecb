import argparse
import importlib
import shlex
import subprocess
import sys

import pytest

from genedge import __version__
from genedge.cli import HANDLERS, build_parser, main
from genedge.errors import (
    BadInputError,
    CorruptArtifactError,
    IncompatibleEnvironmentError,
    IntegrityError,
    MissingExtraError,
    SecurityRefusal,
)
from genedge.lazy import lazy_import


def test_exit_codes_follow_design():
    assert BadInputError("x").exit_code == 2
    assert CorruptArtifactError("x").exit_code == 2
    assert IncompatibleEnvironmentError("x").exit_code == 3
    assert MissingExtraError("tensorrt", "trt").exit_code == 3
    assert IntegrityError("x").exit_code == 4
    assert SecurityRefusal("x").exit_code == 4


def test_missing_extra_names_the_install_line():
    e = MissingExtraError("onnxruntime", "cpu", purpose="`genedge sample`")
    assert "pip install 'genedge[cpu]'" in str(e) and "onnxruntime" in str(e)


def _subcommands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def test_every_subcommand_has_a_handler():
    assert set(_subcommands()) <= set(HANDLERS)


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help_without_importing_its_stage(command):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['torch'] = None; sys.modules['onnxruntime'] = None\n"
            "from genedge.cli import main; main([" + repr(command) + ", '--help'])",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: genedge " + command in proc.stdout


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and __version__ in capsys.readouterr().out


def test_missing_extra_becomes_exit_3_without_traceback():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['torch'] = None\n"
            "from genedge.cli import main; raise SystemExit(main(['train', 'gan', '--data', 'digits', '--out', 'x']))",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3, proc.stderr
    assert "genedge[train]" in proc.stderr and "Traceback" not in proc.stderr


def test_user_error_is_one_line_exit_2(monkeypatch, capsys):
    def handler(args):
        raise BadInputError(
            "Input 'z': received shape (1, 128); expected (B, 64).", hint="Pass a 64-d latent."
        )

    monkeypatch.setattr("genedge.cli._load_handler", lambda command: handler)
    assert main(["sample", "b", "--out", "x.png"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected (B, 64)" in err[0] and "Pass a 64-d latent." in err[0]


def test_a_bug_is_one_line_exit_1_with_its_traceback_saved(monkeypatch, capsys, tmp_path):
    def handler(args):
        raise KeyError("bug")

    monkeypatch.setattr("genedge.cli._load_handler", lambda command: handler)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("GENEDGE_DEBUG", raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert main(["sample", "b", "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error: KeyError" in err[0] and "report" in err[0]
    saved = list(tmp_path.glob("genedge-crash-*.txt"))
    assert len(saved) == 1 and "Traceback" in saved[0].read_text() and str(saved[0]) in err[0]


def test_genedge_debug_prints_the_traceback(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("genedge.cli._load_handler", lambda command: lambda args: 1 / 0)
    monkeypatch.setenv("GENEDGE_DEBUG", "1")
    assert main(["sample", "b", "--out", str(tmp_path / "x.png")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_an_os_error_is_exit_2_and_a_memory_error_exit_3(monkeypatch, capsys, tmp_path):
    def missing(args):
        (tmp_path / "nope.bin").read_bytes()

    monkeypatch.setattr("genedge.cli._load_handler", lambda command: missing)
    assert main(["sample", "b", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "nope.bin" in err and "Traceback" not in err

    def hungry(args):
        raise MemoryError

    monkeypatch.setattr("genedge.cli._load_handler", lambda command: hungry)
    assert main(["sample", "b", "--out", str(tmp_path / "x.png")]) == 3


def test_python_dash_m_works():
    proc = subprocess.run(
        [sys.executable, "-m", "genedge", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_parser_lists_design_commands():
    text = build_parser().format_help()
    for verb in ("demo", "train", "eval", "export", "sample", "live", "generate", "bench"):
        assert verb in text


def test_eval_routes_bundles_to_export_and_checkpoints_to_train(tmp_path):
    from genedge.cli import _handler_key

    args = build_parser().parse_args(["eval", str(tmp_path)])
    assert _handler_key(args) == "eval-bundle"
    args = build_parser().parse_args(["eval", str(tmp_path / "g.safetensors")])
    assert _handler_key(args) == "eval"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", _subcommands())
def test_help_describes_every_argument_and_shows_every_default(command):
    from genedge.cli import default_text

    p = _subparsers()[command]
    formatter = p._get_formatter()
    for action in p._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{command} {name}: no help text"
        d = action.default
        if action.option_strings and d not in (None, False, argparse.SUPPRESS):
            shown = formatter._expand_help(action)
            assert f"(default: {default_text(d)})" in shown, f"{command} {name}: {shown!r}"


def test_one_meaning_per_flag_name():
    """A flag spelled the same in two commands means the same thing; the old spellings with
    another meaning are deprecated aliases whose help names the new one."""
    from genedge.cli import DeprecatedAlias

    subs = _subparsers()
    live_help = subs["live"].format_help()
    export_help = subs["export"].format_help()
    assert "--tile N" in live_help and "--trt-profile MIN:OPT:MAX" in export_help
    for command in ("export", "live"):
        old = next(a for a in subs[command]._actions if "--batch" in a.option_strings)
        assert isinstance(old, DeprecatedAlias) and "deprecated spelling of --" in old.help
    bench = next(a for a in subs["bench"]._actions if "--batch" in a.option_strings)
    assert not isinstance(bench, DeprecatedAlias)  # bench keeps --batch: batch sizes to time


@pytest.mark.parametrize("command", _subcommands())
def test_help_ends_with_one_example(command):
    text = _subparsers()[command].format_help()
    example = text.rstrip().splitlines()[-1].strip()
    assert text.rstrip().splitlines()[-2] == "example:"
    assert example.startswith(f"genedge {command} ")
    build_parser().parse_args(shlex.split(example)[1:])  # it parses as written


def test_a_package_imported_late_names_its_extra(monkeypatch, capsys, tmp_path):
    def handler(args):
        importlib.import_module("onnxslim")

    monkeypatch.setitem(sys.modules, "onnxslim", None)
    monkeypatch.setattr("genedge.cli._load_handler", lambda command: handler)
    assert main(["sample", "b", "--out", str(tmp_path / "x.png")]) == 3
    err = capsys.readouterr().err
    assert "'onnxslim' is not installed" in err and "pip install 'genedge[export]'" in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_a_lazy_module_missing_at_first_use_names_the_command(monkeypatch, capsys, tmp_path):
    slim = lazy_import("onnxslim")

    def handler(args):
        slim.slim(None)

    monkeypatch.setitem(sys.modules, "onnxslim", None)
    monkeypatch.setattr("genedge.cli._load_handler", lambda command: handler)
    assert main(["sample", "b", "--out", str(tmp_path / "x.png")]) == 3
    err = capsys.readouterr().err
    assert "'onnxslim' is not installed (needed for `genedge sample`)" in err
    assert "pip install 'genedge[export]'" in err and err.count("\n") == 1


def test_export_without_rich_names_the_train_extra(monkeypatch, capsys, tmp_path):
    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")] + ["rich"]:
        monkeypatch.setitem(sys.modules, name, None)
    code = main(["export", str(tmp_path / "g.safetensors"), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 3 and "'rich' is not installed" in err and "genedge[train]" in err
    assert not (tmp_path / "b").exists()


def test_an_import_error_of_our_own_is_still_a_bug(monkeypatch, capsys, tmp_path):
    def handler(args):
        raise ImportError("cannot import name 'x'", name="genedge.runtime.sampler")

    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # the crash file lands in tmp_path
    monkeypatch.setattr("genedge.cli._load_handler", lambda command: handler)
    assert main(["sample", "b", "--out", str(tmp_path / "x.png")]) == 1
    assert "internal error: ImportError" in capsys.readouterr().err

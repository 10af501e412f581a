"""The command line's error contract: user errors exit 2, faults of the program exit 70
with a report that says so, and ``--debug`` shows the traceback instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qrnn_tn.cli import DTYPE_CHOICES, INTERNAL_ERROR, main
from qrnn_tn.cli import compile as compile_cmd

ROOT = Path(__file__).resolve().parents[3]


def _broken(args):
    raise ZeroDivisionError("a fault planted by the test")


@pytest.fixture
def broken_compile(monkeypatch):
    real = compile_cmd.register

    def register(sub):
        real(sub)
        sub.choices["compile"].set_defaults(func=_broken)

    monkeypatch.setattr(compile_cmd, "register", register)


def test_an_internal_error_is_reported_as_such_without_a_traceback(broken_compile, capsys):
    assert main(["compile", "default"]) == INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: a fault planted by the test" in err
    assert "--debug" in err
    assert "Traceback" not in err


def test_debug_lets_the_internal_error_through(broken_compile):
    with pytest.raises(ZeroDivisionError, match="planted"):
        main(["--debug", "compile", "default"])


def test_a_user_error_still_exits_2(tmp_path, capsys):
    assert main(["compile", str(tmp_path / "missing.toml")]) == 2
    assert "internal error" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["compile", "missing.toml"],
        ["simulate", "missing.toml", "--words", "0,1"],
        ["simulate", "bad.toml", "--words", "0,1"],
        ["compile", "--help"],
    ],
)
def test_input_errors_and_help_of_compile_and_simulate_import_no_torch(tmp_path, argv):
    (tmp_path / "bad.toml").write_text("[cell]\nio = 0\n")
    code = (
        "import sys\n"
        "from qrnn_tn.cli import main\n"
        "try:\n"
        f"    status = main({argv!r})\n"
        "except SystemExit as exit:\n"
        "    status = exit.code\n"
        "print(status, 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    status, torch_loaded = out.stdout.split()[-2:]
    assert status == ("0" if "--help" in argv else "2"), out.stderr
    assert torch_loaded == "False"


def test_the_command_lines_dtypes_are_the_simulation_dtypes():
    from qrnn_tn.dtypes import DTYPE_NAMES

    assert DTYPE_CHOICES == tuple(DTYPE_NAMES)

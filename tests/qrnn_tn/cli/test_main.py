"""The command line's error contract: user errors exit 2, faults of the program exit 70
with a report that says so, and ``--debug`` shows the traceback instead."""

from __future__ import annotations

import pytest

from qrnn_tn.cli import INTERNAL_ERROR, main
from qrnn_tn.cli import compile as compile_cmd


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

"""The ``qrnn-tn`` command line: one module per subcommand, registered here.

Every subcommand module exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a callable ``(args) -> int``. Errors users can fix (:class:`UsageError` and the
layer errors below) exit with status 2 and a one-paragraph message on stderr. Any other
exception is a fault of qrnn-tn itself: it exits with status :data:`INTERNAL_ERROR` and a
message saying so; ``qrnn-tn --debug COMMAND …`` lets it propagate with its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from compiler.errors import Error

__all__ = [
    "DTYPE_CHOICES",
    "INTERNAL_ERROR",
    "main",
    "UsageError",
    "seed_arg",
    "add_backend_options",
    "backend_options",
    "parse_key_values",
]


class UsageError(Error, ValueError):
    """A command-line argument is wrong; the message says how to fix it."""


#: Seeds are integers in [0, 2**63): what torch, numpy and Python all accept.
SEED_LIMIT = 2**63


def seed_arg(text: str) -> int:
    """``--seed`` as argparse reads it: an integer in [0, 2**63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{text} is out of range; a seed is in 0 … 2**63 - 1")
    return value


def parse_key_values(
    texts: Sequence[str], flag: str, example: str, *, decode: bool = True
) -> dict[str, Any]:
    """Parse the ``KEY=VALUE`` arguments of a repeatable ``flag`` into a dict.

    With ``decode`` each value is read as JSON where it parses (``8``, ``0.5``, ``null``,
    ``[3, 6]``) and kept as text otherwise; without it every value stays text (for typed
    options that parse it).
    """
    options: dict[str, Any] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {text!r}: write KEY=VALUE, e.g. {flag} {example}")
        if not decode:
            options[key] = value
            continue
        try:
            options[key] = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            options[key] = value
    return options


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--backend-option KEY=VALUE`` flag to ``parser``.

    :func:`backend_options` reads it; its help lists every backend's options from their
    definitions.
    """
    from qrnn_tn.backends.options import OPTIONS_BY_BACKEND

    accepted = "; ".join(
        f"{name}: {', '.join(cls.keys())}" for name, cls in sorted(OPTIONS_BY_BACKEND.items())
    )
    parser.add_argument(
        "--backend-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backend-specific option, repeatable (e.g. --backend mps --backend-option "
        f"max_bond=32); accepted: {accepted}. The docs' backends page says what each means",
    )


def backend_options(args: argparse.Namespace) -> dict[str, str]:
    """Return the ``--backend-option`` arguments as text.

    The backend's options class parses them (:func:`~qrnn_tn.backends.check_backend_options`).
    """
    return parse_key_values(args.backend_option, "--backend-option", "max_bond=32", decode=False)


#: The simulation dtypes a command accepts (the keys of :data:`qrnn_tn.dtypes.DTYPE_NAMES`,
#: written out so that parsing the command line imports no torch; a test keeps them equal).
DTYPE_CHOICES = ("float32", "float64", "complex64", "complex128")

#: What a user can fix: every error of the project (one base), and files that cannot be read.
_USER_ERRORS = (Error, OSError)

#: Exit status of an internal error (``EX_SOFTWARE`` of sysexits.h).
INTERNAL_ERROR = 70


def build_parser() -> argparse.ArgumentParser:
    from qrnn_tn.cli import compile as compile_cmd
    from qrnn_tn.cli import demo, simulate, train

    parser = argparse.ArgumentParser(
        prog="qrnn-tn",
        description="Compile and simulate quantum recurrent neural networks (Bausch 2020).",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an internal error instead of a one-line report",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (compile_cmd, simulate, train, demo):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``qrnn-tn``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _USER_ERRORS as err:
        print(f"qrnn-tn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"qrnn-tn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(
            f"qrnn-tn {args.command}: internal error: {type(err).__name__}: {err}\n"
            "This is a fault of qrnn-tn, not of your input. Rerun with `qrnn-tn --debug "
            f"{args.command} …` for the traceback, and report it with the command.",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())

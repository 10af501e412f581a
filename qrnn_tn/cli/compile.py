"""``qrnn-tn compile``: a cell spec to a program summary, JSON, OpenQASM 3 or Graphviz DOT."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from compiler.export import summary, to_dot, to_json, to_qasm3
from compiler.unroll import Program, compile_program
from qrnn_tn.cli import UsageError, seed_arg
from qrnn_tn.cli.reach import warn_unread

__all__ = ["register", "run", "FORMATS"]

FORMATS = ("summary", "json", "qasm3", "dot")

_DESCRIPTION = """\
Compile a cell spec (TOML or JSON, QRNN.md §8) unrolled over T steps and print it as a
summary (default), lossless JSON, OpenQASM 3 of the literal circuit (neurons expanded into
ancilla circuits; postselections are annotated measurements) or Graphviz DOT. OpenQASM 3
angles are numbers with --params or --seed, otherwise `input float[64] theta_k` parameters;
token bits are numbers with --words, otherwise `bit[io] w<t>` registers assigned before a run.
The summary ends with what the readouts can see: per input bit, which neurons read it and from
how many steps back it can change a readout; an input bit no readout can see is also a warning.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compile`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "compile",
        help="compile a cell spec; print a summary, JSON, OpenQASM 3 or DOT",
        description=_DESCRIPTION,
    )
    parser.add_argument("spec", metavar="SPEC", help="cell spec file (.toml or .json)")
    parser.add_argument(
        "--steps",
        type=int,
        metavar="T",
        help="number of steps (a sequence of T + 1 tokens; default: one less than the number "
        "of --words, else 1)",
    )
    parser.add_argument("--format", choices=FORMATS, default="summary", help="output format")
    values = parser.add_mutually_exclusive_group()
    values.add_argument(
        "--params",
        metavar="FILE",
        help="parameters for numeric OpenQASM 3 angles: a JSON array in canonical slot order "
        "or an object keyed by slot name",
    )
    values.add_argument(
        "--seed",
        type=seed_arg,
        metavar="S",
        help="draw the OpenQASM 3 angles from the spec's [init] with seed S",
    )
    parser.add_argument(
        "--words",
        metavar="W0,W1,...",
        help="the T + 1 tokens as integers (bit 0 = MSB) for OpenQASM 3 input writes",
    )
    parser.add_argument(
        "--literal", action="store_true", help="expand neurons into ancilla circuits first"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE (atomically)")
    parser.add_argument(
        "--backend", metavar="NAME", help="append the predicted cost of backend NAME (summary)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compile and write the requested export; user errors raise :class:`UsageError`."""
    if args.backend and args.format != "summary":
        raise UsageError(
            f"--backend adds a cost to the summary; it does not apply to --format {args.format}"
        )
    words = None if args.words is None else _parse_words(args.words)
    steps = args.steps if args.steps is not None else len(words) - 1 if words else 1
    program = compile_program(Path(args.spec), steps, literal=args.literal)
    warn_unread("compile", program.spec)
    if words is not None and len(words) != program.n_tokens:
        raise UsageError(
            f"--words gives {len(words)} tokens; {steps} steps need steps + 1 = {program.n_tokens}"
        )
    if words is not None and max(words) >= 2**program.io:
        raise UsageError(
            f"--words: token {max(words)} does not fit in io = {program.io} bits "
            f"(tokens are 0 … {2**program.io - 1})"
        )
    params = None
    if args.params is not None or args.seed is not None:
        from qrnn_tn.cli.params import program_params

        params = program_params(program, args.params, args.seed).numpy()

    if args.format == "json":
        text = to_json(program)
    elif args.format == "qasm3":
        text = to_qasm3(program, params, words)
    elif args.format == "dot":
        text = to_dot(program)
    else:
        cost = None if args.backend is None else _backend_cost(program, args.backend)
        text = summary(program, cost)
    _write(text, args.output)
    return 0


def _parse_words(text: str) -> list[int]:
    try:
        words = [int(w) for w in text.split(",")]
    except ValueError:
        raise UsageError(
            f"--words {text!r}: expected comma-separated integers such as 0,1,2"
        ) from None
    if any(w < 0 for w in words) or len(words) < 2:
        raise UsageError(f"--words {text!r}: expected at least two tokens, each >= 0")
    return words


def _backend_cost(program: Program, name: str) -> Any:
    """Predict the cost of preparing ``program`` on backend ``name``."""
    try:
        import qrnn_tn.backends as backends
        from qrnn_tn.backends.base import BackendOptions
    except ImportError as err:
        raise UsageError(
            f"--backend {name}: the simulation backends cannot be loaded ({err}); "
            "leave out --backend for the compiler summary alone"
        ) from None
    if not hasattr(backends, "get_backend"):
        raise UsageError(f"--backend {name}: this installation registers no backends yet")
    return backends.get_backend(name)(program, BackendOptions()).cost


def _write(text: str, output: str | None) -> None:
    """Print ``text`` or write it to ``output`` through a temporary file and ``os.replace``."""
    if output is None:
        sys.stdout.write(text)
        return
    target = Path(output)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

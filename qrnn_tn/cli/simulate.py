"""``qrnn-tn simulate``: per-step distributions of a cell on token sequences."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import torch

from compiler.spec import load_spec
from qrnn_tn.backends import RunResult
from qrnn_tn.cli import UsageError
from qrnn_tn.cli.params import program_params
from qrnn_tn.simulate import DTYPE_NAMES, load_program, make_plan

__all__ = ["register", "run"]

_DESCRIPTION = """\
Run a cell spec (TOML or JSON, QRNN.md §8) teacher-forced on token sequences and print, for
every step t, the distribution p_t over the 2^io words and the probability p_t(w_{t+1}) of the
next token, onto which the i/o lanes are then projected. --words takes one sequence
(3,1,0,2) or a file with one sequence per line (commas or spaces; blank lines and lines starting
with # are skipped), all of one length, run as a batch. Parameters come from --params (a JSON
array in canonical slot order, or an object keyed by slot name) or are drawn from the spec's
[init] with --seed (default 0). With --json a single sequence gives "probs" [steps][2^io] and
"target_prob" [steps]; a file gives one more leading axis, the batch.
"""

#: Tokens are separated by one comma (spaces around it allowed) or by spaces.
_SEPARATOR = re.compile(r"\s*,\s*|\s+")
#: Distributions wider than this print their most likely words only.
_MAX_COLUMNS = 16


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "simulate",
        help="per-step output distributions of a cell on token sequences",
        description=_DESCRIPTION,
    )
    parser.add_argument("spec", metavar="SPEC", help="cell spec file (.toml or .json)")
    parser.add_argument(
        "--words",
        required=True,
        metavar="W0,W1,...|FILE",
        help="one sequence of integer tokens (bit 0 = MSB), or a file of sequences",
    )
    values = parser.add_mutually_exclusive_group()
    values.add_argument("--params", metavar="FILE", help="parameters (JSON array or object)")
    values.add_argument(
        "--seed", type=int, default=0, metavar="S", help="draw parameters with seed S (default 0)"
    )
    parser.add_argument(
        "--backend", default="auto", metavar="NAME", help="backend name or `auto` (default)"
    )
    parser.add_argument("--dtype", choices=list(DTYPE_NAMES), default="float64")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Simulate and print; user errors raise :class:`UsageError` (or the layer's error)."""
    spec = load_spec(Path(args.spec))
    sequences, batched = _read_words(args.words)
    tokens = _check_words(sequences, spec.io)
    program = load_program(spec, tokens.shape[1] - 1)
    params = program_params(program, args.params, args.seed)
    plan, reason = make_plan(program, args.backend, args.dtype, tokens.shape[0])
    with torch.no_grad():
        result = plan.run(params, tokens)
    report = _report(result, plan.cost.backend, reason, args.dtype, batched)
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_text(result, report, spec.io))
    return 0


def _read_words(text: str) -> tuple[list[list[str]], bool]:
    """Sequences of token strings, and whether they came from a file (a batch)."""
    path = Path(text)
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [line.strip() for line in lines]
        sequences = [_SEPARATOR.split(row) for row in rows if row and not row.startswith("#")]
        if not sequences:
            raise UsageError(f"--words {text}: the file holds no sequences")
        return sequences, True
    if not re.fullmatch(r"[\s\d,+-]+", text):
        raise UsageError(
            f"--words {text!r}: neither a file nor comma-separated integers such as 3,1,0,2"
        )
    return [_SEPARATOR.split(text.strip())], False


def _check_words(sequences: list[list[str]], io: int) -> torch.Tensor:
    """Validated tokens ``[batch, L]``; every error names the sequence and position."""
    rows = []
    for b, sequence in enumerate(sequences):
        where = f"--words: sequence {b}" if len(sequences) > 1 else "--words"
        row = []
        for t, item in enumerate(sequence):
            try:
                row.append(int(item))
            except ValueError:
                raise UsageError(f"{where}, position {t}: {item!r} is not an integer") from None
            if not 0 <= row[-1] < 2**io:
                raise UsageError(
                    f"{where}, position {t}: token {row[-1]} does not fit in io = {io} bits "
                    f"(tokens are 0 … {2**io - 1})"
                )
        if len(row) < 2:
            raise UsageError(f"{where}: {len(row)} token(s); a sequence needs at least 2")
        if rows and len(row) != len(rows[0]):
            raise UsageError(
                f"{where}: {len(row)} tokens, but sequence 0 has {len(rows[0])}; a batch "
                "needs sequences of one length"
            )
        rows.append(row)
    return torch.tensor(rows, dtype=torch.int64)


def _report(
    result: RunResult, backend: str, reason: str, dtype: str, batched: bool
) -> dict[str, Any]:
    """The JSON report; without ``batched`` the batch axis (of one) is dropped."""

    def unbatch(x: torch.Tensor) -> Any:
        values = x.detach().cpu()
        values = (values if values.dtype == torch.int64 else values.double()).tolist()
        return values if batched else values[0]

    return {
        "backend": backend,
        "reason": reason,
        "dtype": dtype,
        "steps": result.probs.shape[1],
        "words": unbatch(result.words),
        "probs": unbatch(result.probs),
        "target_prob": unbatch(result.target_prob),
        "log_likelihood": unbatch(result.target_prob.log().sum(1)),
        "log_norm": unbatch(result.log_norm),
    }


def _distribution(p: list[float]) -> str:
    if len(p) <= _MAX_COLUMNS:
        return " ".join(f"{v:7.4f}" for v in p)
    top = sorted(range(len(p)), key=lambda w: -p[w])[:8]
    return "top: " + " ".join(f"{w}:{p[w]:.4f}" for w in top)


def _text(result: RunResult, report: dict[str, Any], io: int) -> str:
    """A readable table per sequence."""
    batch, steps = result.probs.shape[:2]
    words = result.words.tolist()
    probs = result.probs.detach().double().tolist()
    target = result.target_prob.detach().double().tolist()
    header = f"  step  read -> next  p(next)   p_t(0 … {2**io - 1})"
    lines = [
        f"{report['reason']}; dtype {report['dtype']}; {steps} steps, {batch} sequence(s)",
    ]
    for b in range(batch):
        lines += [f"sequence {b}: {' '.join(str(w) for w in words[b])}", header]
        for t in range(steps):
            lines.append(
                f"  {t + 1:4d}  {words[b][t]:4d} -> {words[b][t + 1]:<4d}  {target[b][t]:7.4f}"
                f"   {_distribution(probs[b][t])}"
            )
        loglik = sum(math.log(p) if p > 0 else -math.inf for p in target[b])
        lines.append(f"  log-likelihood of the sequence: {loglik:.6g}")
    return "\n".join(lines) + "\n"

"""``qrnn-tn simulate``: per-step distributions of a cell on token sequences."""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.spec import load_spec
from compiler.unroll import Program
from qrnn_tn import jsonio
from qrnn_tn.cli import DTYPE_CHOICES, UsageError, add_backend_options, backend_options, seed_arg
from qrnn_tn.cli.reach import warn_unread
from qrnn_tn.jsonio import read_text

if TYPE_CHECKING:  # torch is imported once the input is checked (see qrnn_tn.cli)
    import torch

    from qrnn_tn.backends import RunResult

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

--scheduler tcp://HOST:8786 runs the tensor-network backend on a dask cluster (started with
`dask scheduler` and `dask worker tcp://HOST:8786`, in this environment): the path search's
trials and every slice of every step are computed by the workers. --memory-budget bounds a
plan's memory; for the tensor network a smaller budget means more slices, that is more tasks
for the workers to share.
"""

#: Tokens are separated by one comma (spaces around it allowed) or by spaces.
_SEPARATOR = re.compile(r"\s*,\s*|\s+")
#: Distributions wider than this print their most likely words only.
_MAX_COLUMNS = 16
#: Binary units accepted by --memory-budget.
_UNITS = {"": 1, "b": 1, "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20}
_UNITS |= {"g": 2**30, "gib": 2**30, "t": 2**40, "tib": 2**40}
_INSTALL_DASK = "pip install 'dask[distributed]'"


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
        "--seed",
        type=seed_arg,
        default=0,
        metavar="S",
        help="draw parameters with seed S (default 0)",
    )
    parser.add_argument(
        "--backend", default="auto", metavar="NAME", help="backend name or `auto` (default)"
    )
    add_backend_options(parser)
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="float64")
    parser.add_argument(
        "--memory-budget",
        type=parse_size,
        metavar="SIZE",
        help="memory a run may use, in bytes or with a unit (512MiB, 2GiB; default: the "
        "memory available); the tensor network slices its steps to fit it",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="dask scheduler (tcp://HOST:8786): search paths and contract the tensor "
        "network's slices on its workers (tensornet backend; needs dask[distributed])",
    )
    parser.add_argument(
        "--scheduler-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up if the scheduler, or its first worker, does not answer within this "
        "time (default 10)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def parse_size(text: str) -> int:
    """Bytes from ``text``: an integer, or a number with a binary unit (``512MiB``, ``2G``)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; give bytes or a number with a unit such as 512MiB or 2GiB"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def run(args: argparse.Namespace) -> int:
    """Simulate and print; user errors raise :class:`UsageError` (or the layer's error)."""
    if args.scheduler is not None and args.backend not in ("auto", "tensornet"):
        raise UsageError(
            f"--scheduler runs the tensornet backend on a dask cluster; it does not apply to "
            f"--backend {args.backend} (leave --backend out, or give --backend tensornet)"
        )
    if not args.scheduler_timeout > 0:
        raise UsageError(f"--scheduler-timeout {args.scheduler_timeout:g}: must be > 0 seconds")
    spec = load_spec(Path(args.spec))
    warn_unread("simulate", spec)
    sequences, batched = _read_words(args.words)
    rows = _check_words(sequences, spec.io)

    import torch

    from qrnn_tn.backends import check_backend_options
    from qrnn_tn.cli.params import program_params
    from qrnn_tn.simulation import load_program

    check_backend_options(backend_options(args), args.backend)
    tokens = torch.tensor(rows, dtype=torch.int64)
    program = load_program(spec, tokens.shape[1] - 1)
    params = program_params(program, args.params, args.seed)
    simulate = _run_local if args.scheduler is None else _run_on_cluster
    result, report = simulate(args, program, params, tokens, batched)
    if not bool(torch.isfinite(result.probs).all()):
        raise UsageError(
            "the simulation gave non-finite probabilities (NaN or infinity): the parameters "
            "are too large for float arithmetic; use parameters of moderate size (angles)"
        )
    if args.json:
        sys.stdout.write(jsonio.dumps(report))
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_text(result, report, spec.io))
    return 0


def _run_local(
    args: argparse.Namespace,
    program: Program,
    params: torch.Tensor,
    tokens: torch.Tensor,
    batched: bool,
) -> tuple[RunResult, dict[str, Any]]:
    """Plan on ``--backend`` and run in this process."""
    import torch

    from qrnn_tn.simulation import make_plan

    plan, reason = make_plan(
        program,
        args.backend,
        args.dtype,
        tokens.shape[0],
        args.memory_budget,
        backend_options(args),
    )
    with torch.no_grad():
        result = plan.run(params, tokens)
    return result, _report(result, plan.cost.backend, str(reason), args.dtype, batched)


def _run_on_cluster(
    args: argparse.Namespace,
    program: Program,
    params: torch.Tensor,
    tokens: torch.Tensor,
    batched: bool,
) -> tuple[RunResult, dict[str, Any]]:
    """Plan (path search on the cluster) and run the tensor network on ``--scheduler``."""
    import torch

    from qrnn_tn.backends.tensornet import TensorNetCostDetails, TensorNetPlan
    from qrnn_tn.simulation import make_plan

    with _connect(args.scheduler, args.scheduler_timeout) as client:
        workers = len(client.scheduler_info()["workers"])
        plan, _ = make_plan(
            program,
            "tensornet",
            args.dtype,
            tokens.shape[0],
            args.memory_budget,
            backend_options={**backend_options(args), "parallel": client},
        )
        assert isinstance(plan, TensorNetPlan)  # make_plan prepared the named backend
        details = plan.cost.details
        assert isinstance(details, TensorNetCostDetails)
        if max(details.slices_per_step) == 1:
            print(
                "qrnn-tn simulate: note: no step of this plan is sliced, so each step is one "
                "task on one worker; a smaller --memory-budget splits steps into slices that "
                "the workers share",
                file=sys.stderr,
            )
        with torch.no_grad():
            result = plan.run(params, tokens, executor=client)
    reason = (
        f"backend tensornet (--scheduler {args.scheduler}: path search and slices on "
        f"{workers} dask worker(s))"
    )
    report = _report(result, "tensornet", reason, args.dtype, batched)
    report["scheduler"] = args.scheduler
    report["slices_per_step"] = list(details.slices_per_step)
    return result, report


def _connect(address: str, timeout: float) -> Any:
    """Connect a ``dask.distributed.Client`` to ``address`` (one worker at least).

    Raises :class:`UsageError` when dask is missing or no worker joins in ``timeout``.
    """
    try:
        from distributed import Client
    except ImportError:
        raise UsageError(
            f"--scheduler needs dask.distributed, which is not installed: {_INSTALL_DASK}"
        ) from None
    try:
        client = Client(address, timeout=timeout)
    except Exception as err:
        cause = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise UsageError(
            f"--scheduler {address}: could not connect within {timeout:g} s ({cause}). Check "
            "the address (tcp://HOST:8786) and that `dask scheduler` is running there"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:
        client.close()
        raise UsageError(
            f"--scheduler {address}: the scheduler has no workers after {timeout:g} s; start "
            f"some with `dask worker {address}` (in this environment)"
        ) from None
    return client


def _read_words(text: str) -> tuple[list[list[str]], bool]:
    """Sequences of token strings, and whether they came from a file (a batch)."""
    path = Path(text)
    if path.is_file():
        lines = read_text(path, "--words", UsageError).splitlines()
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


def _check_words(sequences: list[list[str]], io: int) -> list[list[int]]:
    """Validate the tokens ``[batch, L]``; every error names the sequence and position."""
    rows: list[list[int]] = []
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
    return rows


def _report(
    result: RunResult, backend: str, reason: str, dtype: str, batched: bool
) -> dict[str, Any]:
    """Build the JSON report; without ``batched`` the batch axis (of one) is dropped.

    A truncating backend's discarded weight per step is reported as ``discarded``.
    """
    import torch

    def unbatch(x: torch.Tensor) -> Any:
        tensor = x.detach().cpu()
        values = (tensor if tensor.dtype == torch.int64 else tensor.double()).tolist()
        return values if batched else values[0]

    extra = {} if result.discarded is None else {"discarded": unbatch(result.discarded)}
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
        **extra,
    }


def _distribution(p: list[float]) -> str:
    if len(p) <= _MAX_COLUMNS:
        return " ".join(f"{v:7.4f}" for v in p)
    top = sorted(range(len(p)), key=lambda w: -p[w])[:8]
    return "top: " + " ".join(f"{w}:{p[w]:.4f}" for w in top)


def _text(result: RunResult, report: dict[str, Any], io: int) -> str:
    """Format a readable table per sequence."""
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
        if "discarded" in report:
            per_step = report["discarded"] if batch > 1 else [report["discarded"]]
            lines.append(f"  weight discarded by truncation: {sum(per_step[b]):.3g}")
    return "\n".join(lines) + "\n"

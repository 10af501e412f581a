"""Reproduce the paper's tasks (QRNN.md §7) and tabulate our results beside the paper's.

``python -m benchmarks.reproduce [--budget quick|full] [--tasks a,b] [--data-dir DIR]
[--out DIR]`` trains each task's default cell with its default hyperparameters
(:mod:`qrnn_tn.tasks`) through :func:`qrnn_tn.train.train` and writes ``results.md`` (a
markdown table) and ``results.json`` under ``DIR`` (default
``benchmarks/results/reproduce/<budget>``). The quick budget (elman-xor, elman-letters,
memorise at small step counts) takes a few minutes on 2 cores; the full budget runs every
task at its default length. MNIST tasks are skipped, with a line in the table, when no
directory holds the IDX files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qrnn_tn.data import DataError
from qrnn_tn.model import QRNN
from qrnn_tn.tasks import MNIST_DIR_ENV, TASKS, build_datasets, default_config, default_spec
from qrnn_tn.train import atomic_write, train

#: Per budget: the tasks run by default and the optimiser steps per task (None: default).
BUDGETS: dict[str, dict[str, int | None]] = {
    "quick": {"elman-xor": 150, "elman-letters": 100, "memorise": 100},
    "full": {name: None for name in TASKS},
}
#: What the paper reports for each task (Bausch 2020; QRNN.md §7).
PAPER: dict[str, str] = {
    "elman-xor": "learns the predictable xor bits (training curves, no number)",
    "elman-letters": "learns the predictable vowels (training curves, no number)",
    "memorise": "memorises constant and cyclic sequences, loss to ~0",
    "dna": "converges at lengths 5 … 1000 (steps vs length; see qrnn_tn.analysis)",
    "digits-pixel": "— (not in the paper: small sklearn-digits stand-in for MNIST)",
    "mnist-pixel": "0 vs 1: 99.2 %; 3 vs 6: 89.7 % (Adam) / 97.1 % (L-BFGS) test accuracy",
    "mnist-reduced": "10-class 94.6 % (t-SNE, 1292 params), 96.7 % (UMAP, 3134 params)",
}
_COLUMNS = (
    "task",
    "cell (io/ws/S/d)",
    "params",
    "steps",
    "wall s",
    "test accuracy",
    "test loss",
    "paper",
)


def run_task(name: str, steps: int | None, data_dir: str | None) -> dict[str, Any]:
    """Train task ``name`` (``steps``: None for its default) and return its result row.

    MNIST tasks without data (no ``data_dir`` and no ``$QRNN_TN_MNIST``, or files
    missing) give a row with ``skipped`` set to the reason.
    """
    spec = default_spec(name)
    row: dict[str, Any] = {
        "task": name,
        "cell": f"{spec.io}/{spec.workspace}/{spec.stages}/{spec.neuron.degree}",
        "parameters": spec.n_parameters(),
        "paper": PAPER.get(name, ""),
    }
    options: dict[str, Any] = {}
    if name.startswith("mnist"):
        directory = data_dir or os.environ.get(MNIST_DIR_ENV)
        if not directory:
            return {**row, "skipped": "MNIST IDX files not found: put them in DIR (--data-dir DIR)"}
        options["data_dir"] = directory
    try:
        data = build_datasets(name, 0, **options)
    except DataError as err:
        if "data_dir" not in options:
            raise
        where = options["data_dir"]
        return {**row, "skipped": f"MNIST IDX files not found: put them in {where} ({err})"}
    config = default_config(name, steps=steps)
    model = QRNN(spec, backend=config.backend, seed=config.seed)
    started = time.perf_counter()
    summary = train(model, data.train, data.val, config, data.test, progress=False)
    return {
        **row,
        "steps": summary["steps"],
        "total_steps": summary["total_steps"],
        "stopped": summary["stopped"],
        "seconds": time.perf_counter() - started,
        "accuracy": summary["test"]["accuracy"],
        "loss": summary["test"]["loss"],
    }


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of result rows; a skipped task shows its reason across the row."""
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for r in rows:
        head = [r["task"], r["cell"], str(r["parameters"])]
        if "skipped" in r:
            cells = [*head, f"skipped: {r['skipped']}", "—", "—", "—", r["paper"]]
        else:
            stop = " (target)" if r["stopped"] == "target" else ""
            cells = [
                *head,
                f"{r['steps']}/{r['total_steps']}{stop}",
                f"{r['seconds']:.1f}",
                f"{100 * r['accuracy']:.1f} %",
                f"{r['loss']:.4f}",
                r["paper"],
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reproduce", description=__doc__)
    parser.add_argument("--budget", choices=tuple(BUDGETS), default="quick")
    parser.add_argument("--tasks", help=f"comma-separated, among {', '.join(TASKS)}")
    parser.add_argument("--data-dir", help="directory of the MNIST IDX files")
    parser.add_argument("--out", help="output directory (default benchmarks/results/reproduce/B)")
    args = parser.parse_args(argv)
    budget = BUDGETS[args.budget]
    names = args.tasks.split(",") if args.tasks else list(budget)
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    out = Path(args.out or Path("benchmarks/results/reproduce") / args.budget)
    rows = []
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows.append(run_task(name, budget.get(name), args.data_dir))
    table = format_table(rows)
    header = f"# Reproduction ({args.budget} budget)\n\n"
    atomic_write(out / "results.md", lambda f: f.write(header + table), mode="w")
    text = json.dumps({"budget": args.budget, "rows": rows}, indent=2) + "\n"
    atomic_write(out / "results.json", lambda f: f.write(text), mode="w")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

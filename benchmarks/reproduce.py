"""Reproduce the paper's tasks (QRNN.md §7) and tabulate our results beside the paper's.

``python -m benchmarks.reproduce [--budget quick|digits|full] [--tasks a,b] [--data-dir DIR]
[--out DIR]`` trains each task's default cell with its default hyperparameters
(:mod:`qrnn_tn.tasks`) through :func:`qrnn_tn.train.train` and writes ``results.md`` (a
markdown table) and ``results.json`` under ``DIR`` (default
``benchmarks/results/reproduce/<budget>``). The quick budget (elman-xor, elman-letters,
memorise at small step counts, DNA at length 50) takes a few minutes on 2 cores; the digits
budget runs the offline sklearn-digits targets (pixel by pixel 0 vs 1 and 3 vs 6, reduced
10-class); the
full budget runs every task at its default length. MNIST tasks are skipped, with a line in
the table, when no directory holds the IDX files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qrnn_tn.data import DataError
from qrnn_tn.tasks import MNIST_DIR_ENV, TASKS, build_datasets, default_config, default_spec
from qrnn_tn.train import atomic_write, build_model, train


@dataclass(frozen=True)
class Run:
    """One table row: a task, its optimiser steps (None: the task's default), task options."""

    task: str
    steps: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The task name, with the options when there are any: ``digits-pixel (digits=3,6)``."""
        if not self.options:
            return self.task
        return f"{self.task} ({', '.join(f'{k}={v}' for k, v in self.options.items())})"


#: Per budget: the runs made by default.
BUDGETS: dict[str, tuple[Run, ...]] = {
    "quick": (
        Run("elman-xor", 150),
        Run("elman-letters", 100),
        Run("memorise", 100),
        Run("dna", 300, {"length": 50}),
    ),
    "digits": (
        Run("digits-pixel", options={"digits": "0,1"}),
        Run("digits-pixel", options={"digits": "3,6"}),
        Run("digits-reduced"),
    ),
    "full": tuple(Run(name) for name in TASKS),
}
#: What the paper reports for each task (Bausch 2020; QRNN.md §7).
PAPER: dict[str, str] = {
    "elman-xor": "learns the predictable xor bits (training curves, no number)",
    "elman-letters": "learns the predictable vowels (training curves, no number)",
    "memorise": "memorises constant and cyclic sequences, loss to ~0",
    "dna": "converges at lengths 5 … 1000 (steps vs length; see qrnn_tn.analysis)",
    "digits-pixel": "not in the paper (8x8 stand-in); MNIST 10x10: 0 vs 1 99.2 %, 3 vs 6 89.7 %",
    "digits-reduced": "not in the paper (8x8 stand-in); MNIST 10-class t-SNE: 94.6 %",
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


def run_task(run: Run, data_dir: str | None) -> dict[str, Any]:
    """Train ``run`` and return its result row.

    MNIST tasks without data (no ``data_dir`` and no ``$QRNN_TN_MNIST``, or files
    missing) give a row with ``skipped`` set to the reason.
    """
    name = run.task
    spec = default_spec(name)
    row: dict[str, Any] = {
        "task": run.label,
        "options": run.options,
        "cell": f"{spec.io}/{spec.workspace}/{spec.stages}/{spec.neuron.degree}",
        "parameters": spec.n_parameters(),
        "paper": PAPER.get(name, ""),
    }
    options = dict(run.options)
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
    config = default_config(name, steps=run.steps)
    model = build_model(spec, config)
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


def select_runs(budget: Sequence[Run], names: Sequence[str]) -> list[Run]:
    """The budget's runs of the tasks ``names`` (all runs when empty), in the order named;
    a task the budget lacks runs with its defaults."""
    if not names:
        return list(budget)
    return [r for n in names for r in ([r for r in budget if r.task == n] or [Run(n)])]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reproduce", description=__doc__)
    parser.add_argument("--budget", choices=tuple(BUDGETS), default="quick")
    parser.add_argument("--tasks", help=f"comma-separated, among {', '.join(TASKS)}")
    parser.add_argument("--data-dir", help="directory of the MNIST IDX files")
    parser.add_argument("--out", help="output directory (default benchmarks/results/reproduce/B)")
    args = parser.parse_args(argv)
    names = args.tasks.split(",") if args.tasks else []
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    out = Path(args.out or Path("benchmarks/results/reproduce") / args.budget)
    rows = []
    for run in select_runs(BUDGETS[args.budget], names):
        print(f"{run.label} ...", file=sys.stderr, flush=True)
        rows.append(run_task(run, args.data_dir))
    table = format_table(rows)
    header = f"# Reproduction ({args.budget} budget)\n\n"
    atomic_write(out / "results.md", lambda f: f.write(header + table), mode="w")
    text = json.dumps({"budget": args.budget, "rows": rows}, indent=2) + "\n"
    atomic_write(out / "results.json", lambda f: f.write(text), mode="w")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

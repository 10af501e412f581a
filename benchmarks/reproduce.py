"""Reproduce the paper's tasks (QRNN.md §7) and tabulate our results beside the paper's.

``python -m benchmarks.reproduce [--budget quick|digits|mnist|full] [--tasks a,b] [--seeds 0,1,…]
[--jobs N] [--data-dir DIR] [--out DIR]`` trains each task's cell (the default one unless the
budget names a spec file) with the task's hyperparameters (:mod:`qrnn_tn.tasks`) through
:func:`qrnn_tn.training.train`, once per seed (a seed fixes the data split, the initialisation
and the batch order), and writes ``results.md`` (a markdown table: per task the mean test
accuracy and loss over the seeds, the accuracy's range) and ``results.json`` (every seed's
numbers) under ``DIR`` (default ``benchmarks/results/reproduce/<budget>``). Each run keeps
its checkpoints in ``DIR/runs/<task…>/seed-<S>``: a killed reproduction resumes its runs
where they stopped and reads back the finished ones. ``--jobs N`` trains N runs at once in
worker processes that share the torch threads. The quick budget (elman-xor, elman-letters,
memorise at small step counts, DNA at length 50) takes a few minutes on 2 cores; the digits
budget runs the offline sklearn-digits targets (pixel by pixel 0 vs 1 and 3 vs 6, reduced
10-class); the
mnist budget the paper's MNIST table (pixel by pixel 0 vs 1 and 3 vs 6, reduced 10-class by
t-SNE and by UMAP) on the IDX files in ``--data-dir``, with the postselection overhead at
initialisation and after training; the full budget runs every task at its default length.
MNIST tasks are skipped, with a line in the table, when no directory holds the IDX files (or
an optional package such as ``umap-learn`` is missing).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import statistics
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from compiler.spec import CellSpec, load_spec
from qrnn_tn import jsonio
from qrnn_tn.data import DataError
from qrnn_tn.tasks import (
    MNIST_DIR_ENV,
    TASKS,
    build_datasets,
    default_config,
    default_spec,
    task_options,
)
from qrnn_tn.training import (
    RunDir,
    TrainConfig,
    TrainError,
    TrainSummary,
    atomic_write,
    build_model,
    evaluate,
    train,
)

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Run:
    """One table row: a task, its optimiser steps, task options and the cell.

    ``steps`` None means the task's default; ``cell`` is a spec file relative to the
    repository (None: the task's default cell).
    """

    task: str
    steps: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    spec: str | None = None

    @property
    def slug(self) -> str:
        """A directory name for the run: task, options and spec file stem."""
        parts = [self.task, *(f"{k}-{v}" for k, v in self.options.items())]
        if self.spec is not None:
            parts.append(Path(self.spec).stem)
        return re.sub(r"[^A-Za-z0-9.=-]+", "-", "_".join(parts))

    def cell(self) -> CellSpec:
        """Return the cell this run trains."""
        return default_spec(self.task) if self.spec is None else load_spec(REPO / self.spec)

    @property
    def label(self) -> str:
        """The task name, with the options when there are any: ``digits-pixel (digits=3,6)``."""
        if not self.options:
            return self.task
        return f"{self.task} ({', '.join(f'{k}={v}' for k, v in self.options.items())})"


#: Per budget: the runs made by default.
BUDGETS: dict[str, tuple[Run, ...]] = {
    "quick": (
        Run("elman-xor", 300),
        Run("elman-letters", 100),
        Run("memorise", 100),
        Run("dna", 300, {"length": 50}),
    ),
    "digits": (
        Run("digits-pixel", 600, {"digits": "0,1"}, "examples/digits_pixel_paper_cell.toml"),
        Run("digits-pixel", options={"digits": "3,6"}),
        Run("digits-reduced"),
    ),
    "mnist": (
        Run("mnist-pixel", options={"digits": "0,1"}),
        Run("mnist-pixel", options={"digits": "3,6"}),
        Run("mnist-reduced", options={"method": "tsne"}),
        Run(
            "mnist-reduced",
            # 3-D UMAP's cells empty out from 5 bits on (docs/mnist.md): 4 bits
            options={"method": "umap", "n_components": 3, "bits": 4},
            spec="examples/mnist_umap.toml",
        ),
    ),
    "full": tuple(Run(name) for name in TASKS),
}
#: A line under the table of a budget whose figures need a caveat.
NOTES: dict[str, str] = {
    "mnist": "MNIST subset (7500 train / 1000 test from the official test set): not the "
    "paper's MNIST figures, which train on the official 60 000 training images. Overhead: "
    "the mean repetitions per projection on the test set (1 / p), at initialisation → after "
    "training.",
}
#: What the paper reports for each task (Bausch 2020; QRNN.md §7).
PAPER: dict[str, str] = {
    "elman-xor": "learns the predictable xor bits (training curves, no number)",
    "elman-letters": "learns the predictable vowels (training curves, no number)",
    "memorise": "memorises constant and cyclic sequences, loss to ~0",
    "dna": "converges at lengths 5 … 1000 (steps vs length; see benchmarks.long_sequence)",
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
    "overhead",
    "paper",
)


def _cell_row(run: Run, spec: CellSpec) -> dict[str, Any]:
    """Return the row fields that do not depend on training: task, options, cell, paper."""
    return {
        "task": run.label,
        "options": run.options,
        "spec": run.spec,
        "cell": f"{spec.io}/{spec.workspace}/{spec.stages}/{spec.neuron.degree}",
        "parameters": spec.n_parameters(),
        "paper": PAPER.get(run.task, ""),
    }


def _mnist_skip(run: Run, data_dir: str | None) -> tuple[dict[str, Any], str | None]:
    """Return the task options with the MNIST directory filled in, or the reason to skip."""
    options = dict(run.options)
    if not run.task.startswith("mnist"):
        return options, None
    directory = data_dir or os.environ.get(MNIST_DIR_ENV)
    if not directory:
        return options, "MNIST IDX files not found: put them in DIR (--data-dir DIR)"
    options["data_dir"] = directory
    return options, None


def _finished(run_dir: Path, config: TrainConfig, spec: CellSpec) -> TrainSummary | None:
    """Return the summary of a finished run of ``config`` and ``spec`` in ``run_dir``.

    None if unfinished. A finished run made with another configuration or cell is an error, not a
    result to reuse.
    """
    files = RunDir(run_dir)
    summary_path, info_path = files.file(RunDir.SUMMARY), files.file(RunDir.CONFIG)
    if not summary_path.exists():
        return None
    saved = json.loads(info_path.read_text()) if info_path.exists() else {}
    given = json.loads(json.dumps(config.to_dict()))
    same_config = {**saved.get("config", {}), "out": None} == {**given, "out": None}
    if not same_config or saved.get("spec") != spec.to_dict():  # the directory may move
        raise TrainError(
            f"{run_dir} holds a finished run with another configuration or cell; remove it "
            "or give another --out"
        )
    return files.read_summary()


def run_task(
    run: Run, data_dir: str | None, seed: int = 0, run_dir: Path | None = None
) -> dict[str, Any]:
    """Train ``run`` at ``seed`` and return its result row.

    With ``run_dir`` the run keeps its checkpoints there: a killed run resumes where it
    stopped and a finished one is read back instead of trained again. MNIST tasks without
    data (no ``data_dir`` and no ``$QRNN_TN_MNIST``, or files missing) give a row with
    ``skipped`` set to the reason.
    """
    spec = run.cell()
    row = _cell_row(run, spec) | {"seed": seed}
    options, skip = _mnist_skip(run, data_dir)
    if skip:
        return {**row, "skipped": skip}
    try:
        data = build_datasets(run.task, seed, **options)
    except DataError as err:
        if "data_dir" not in options:
            raise
        return {**row, "skipped": f"no data ({err})"}
    config = default_config(
        run.task,
        steps=run.steps,
        seed=seed,
        out=None if run_dir is None else str(run_dir),
        task_options=task_options(run.task, options),
    )
    summary = None if run_dir is None else _finished(run_dir, config, spec)
    model = build_model(spec, config)
    initial = evaluate(model, data.test, loss_kind=config.loss)
    if summary is None:
        # resume a killed run; one killed before its first checkpoint starts afresh
        resume = run_dir is not None and RunDir(run_dir).file(RunDir.LAST).exists()
        summary = train(
            model,
            data.train,
            data.val,
            config,
            data.test,
            resume=resume,
            overwrite=not resume,
            progress=False,
        )
    test = summary.test
    assert test is not None  # the run had a test set
    return {
        **row,
        "steps": summary.steps,
        "total_steps": summary.total_steps,
        "stopped": summary.stopped,
        "seconds": summary.seconds,
        "accuracy": test.accuracy,
        "loss": test.loss,
        "overhead_init": initial.overhead,
        "overhead": test.overhead,
    }


def combine_seeds(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine the rows of one run at several seeds into one table row.

    The row holds mean test accuracy and loss, their per-seed values, the mean seconds per
    run.
    """
    first = rows[0]
    if len(rows) == 1 or "skipped" in first:
        return {**first, "seeds": [r["seed"] for r in rows]}
    keys = ("seed", "steps", "stopped", "seconds", "accuracy", "loss")
    keys += tuple(k for k in ("overhead_init", "overhead") if k in first)
    per_seed = {k: [r[k] for r in rows] for k in keys}
    return {
        **{k: v for k, v in first.items() if k not in keys},
        "seeds": per_seed["seed"],
        "per_seed": [{k: r[k] for k in keys} for r in rows],
        "steps": per_seed["steps"],
        "stopped": "target" if all(s == "target" for s in per_seed["stopped"]) else "steps",
        "seconds": statistics.fmean(per_seed["seconds"]),
        "accuracy": statistics.fmean(per_seed["accuracy"]),
        "accuracy_range": [min(per_seed["accuracy"]), max(per_seed["accuracy"])],
        "loss": statistics.fmean(per_seed["loss"]),
        **{k: statistics.fmean(per_seed[k]) for k in ("overhead_init", "overhead") if k in first},
    }


def _steps_cell(r: dict[str, Any]) -> str:
    steps = r["steps"] if isinstance(r["steps"], list) else [r["steps"]]
    done = str(steps[0]) if min(steps) == max(steps) else f"{min(steps)}–{max(steps)}"
    stop = " (target)" if r["stopped"] == "target" else ""
    return f"{done}/{r['total_steps']}{stop}"


def _accuracy_cell(r: dict[str, Any]) -> str:
    text = f"{100 * r['accuracy']:.1f} %"
    if "accuracy_range" in r:
        low, high = r["accuracy_range"]
        text += f" ({100 * low:.1f}–{100 * high:.1f}, {len(r['seeds'])} seeds)"
    return text


def _overhead_cell(r: dict[str, Any]) -> str:
    if "overhead" not in r:
        return "—"
    return f"{r['overhead_init']:.3g} → {r['overhead']:.3g}"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Return a markdown table of result rows; a skipped task shows its reason across the row.

    A row over several seeds (:func:`combine_seeds`) shows means, the accuracy's range and
    the number of seeds; its seconds are per run.
    """
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for r in rows:
        head = [r["task"], r["cell"], str(r["parameters"])]
        if "skipped" in r:
            cells = [*head, f"skipped: {r['skipped']}", "—", "—", "—", "—", r["paper"]]
        else:
            cells = [
                *head,
                _steps_cell(r),
                f"{r['seconds']:.1f}",
                _accuracy_cell(r),
                f"{r['loss']:.4f}",
                _overhead_cell(r),
                r["paper"],
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def select_runs(budget: Sequence[Run], names: Sequence[str]) -> list[Run]:
    """Return the budget's runs of the tasks ``names`` (all runs when empty), in order.

    A task the budget lacks runs with its defaults.
    """
    if not names:
        return list(budget)
    return [r for n in names for r in ([r for r in budget if r.task == n] or [Run(n)])]


def _run_seed(run: Run, data_dir: str | None, seed: int, run_dir: Path, threads: int) -> dict:
    """:func:`run_task` in a worker process with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    return run_task(run, data_dir, seed, run_dir)


def _train_all(
    runs: Sequence[Run], keys: Sequence[tuple[int, int]], data_dir: str | None, out: Path, jobs: int
):
    """Yield the rows of ``keys`` (run index, seed) in order.

    Each run trains in ``out/runs/SLUG/seed-S``; ``jobs`` > 1 trains that many at once in
    worker processes sharing the threads.
    """
    args = [(runs[i], data_dir, s, out / "runs" / runs[i].slug / f"seed-{s}") for i, s in keys]
    if jobs == 1:
        yield from (run_task(*a) for a in args)
        return
    threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = [pool.submit(_run_seed, *a, threads) for a in args]
        try:
            yield from (f.result() for f in futures)
        finally:  # on an error, the runs not started yet are not started at all
            for future in futures:
                future.cancel()


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds {text!r}: give integers like 0,1,2") from None
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds {text!r}: give distinct integers >= 0")
    return seeds


def _jobs(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"jobs {text!r}: give an integer >= 1")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reproduce", description=__doc__)
    parser.add_argument("--budget", choices=tuple(BUDGETS), default="quick")
    parser.add_argument("--tasks", help=f"comma-separated, among {', '.join(TASKS)}")
    parser.add_argument("--seeds", type=_seeds, default=[0], help="comma-separated (default 0)")
    parser.add_argument("--jobs", type=_jobs, default=1, help="runs at once, one process each")
    parser.add_argument("--data-dir", help="directory of the MNIST IDX files")
    parser.add_argument("--out", help="output directory (default benchmarks/results/reproduce/B)")
    args = parser.parse_args(argv)
    names = args.tasks.split(",") if args.tasks else []
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    out = Path(args.out or Path("benchmarks/results/reproduce") / args.budget)
    runs = select_runs(BUDGETS[args.budget], names)
    keys = [(i, seed) for i in range(len(runs)) for seed in args.seeds]
    results = {}
    trained = _train_all(runs, keys, args.data_dir, out, args.jobs)
    for (i, seed), row in zip(keys, trained, strict=True):
        result = row.get("skipped") or f"test accuracy {100 * row['accuracy']:.1f} %"
        print(f"{runs[i].label}, seed {seed}: {result}", file=sys.stderr, flush=True)
        results[i, seed] = row
    rows = [combine_seeds([results[i, seed] for seed in args.seeds]) for i in range(len(runs))]
    table = format_table(rows)
    header = f"# Reproduction ({args.budget} budget, seeds {', '.join(map(str, args.seeds))})\n\n"
    if args.budget in NOTES:
        header += NOTES[args.budget] + "\n\n"
    atomic_write(out / "results.md", lambda f: f.write(header + table), mode="w")
    text = jsonio.dumps({"budget": args.budget, "seeds": args.seeds, "rows": rows}, indent=2)
    atomic_write(out / "results.json", lambda f: f.write(text + "\n"), mode="w")
    print(header + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

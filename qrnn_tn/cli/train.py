"""``qrnn-tn train``, ``evaluate`` and ``plot``: train a cell on a task, inspect a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compiler.spec import CellSpec, load_spec
from qrnn_tn import jsonio
from qrnn_tn.cli import (
    DTYPE_CHOICES,
    UsageError,
    add_backend_options,
    backend_options,
    parse_key_values,
    seed_arg,
)
from qrnn_tn.cli.reach import warn_unread

if TYPE_CHECKING:
    from qrnn_tn.training import TrainConfig, TrainSummary

__all__ = ["register", "run_train", "run_evaluate", "run_plot", "build_config", "summary_warnings"]

_TRAIN_DESCRIPTION = """\
Train a QRNN cell on one of the paper's tasks (QRNN.md §7) with exact gradients. SPEC is a
cell spec file, or `default` for the task's default cell. The run directory (--out, default
runs/TASK) receives config.json, metrics.jsonl, checkpoints last.pt / best.pt and
summary.json; --resume continues a killed run exactly where its last checkpoint left it,
--overwrite replaces the run there. One run at a time writes a directory (a lock).
--distributed trains data-parallel under torchrun (e.g. `torchrun --nproc-per-node 2
--no-python qrnn-tn train default --task elman-xor --distributed`): each rank takes a shard of
every batch, rank 0 writes the run directory.
Tasks: elman-xor, elman-letters, memorise, dna, digits-pixel, digits-reduced, mnist-pixel,
mnist-reduced.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``evaluate`` and ``plot`` subcommands to ``subparsers``."""
    parser = subparsers.add_parser(
        "train",
        help="train a cell on a task (checkpoints, metrics, resume)",
        description=_TRAIN_DESCRIPTION,
    )
    parser.add_argument("spec", metavar="SPEC", help="cell spec file (.toml/.json) or `default`")
    parser.add_argument("--task", required=True, metavar="T", help="task name (see above)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, metavar="N", help="optimiser steps")
    length.add_argument("--epochs", type=int, metavar="E", help="passes over the training set")
    parser.add_argument("--lr", type=float, help="learning rate (default: the task's)")
    parser.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        help="constant learning rate, or cosine decay to zero over the run (default: the task's)",
    )
    parser.add_argument("--batch-size", type=int, metavar="B", help="sequences per step")
    parser.add_argument("--optimiser", choices=("adam", "sgd", "rmsprop", "lbfgs"))
    parser.add_argument("--loss", choices=("nll", "paper"), help="training loss (default nll)")
    parser.add_argument("--backend", metavar="NAME", help="backend name or `auto` (default)")
    add_backend_options(parser)
    parser.add_argument("--dtype", choices=DTYPE_CHOICES)
    parser.add_argument("--clip", type=float, help="gradient-norm clip (default 0.5)")
    parser.add_argument(
        "--overhead-penalty",
        type=float,
        metavar="L",
        help="add L x the mean -log probability of the unscored steps' projections to the "
        "loss (see --overhead-penalty-scope); keeps them likely (default: the task's, mostly 0)",
    )
    parser.add_argument(
        "--overhead-penalty-scope",
        choices=("readout", "all"),
        help="what the penalty counts: the unscored steps' projections (readout, default) or "
        "every postselection, neurons included (all)",
    )
    parser.add_argument("--eval-every", type=int, metavar="N", help="validate every N steps")
    parser.add_argument("--target-loss", type=float, help="stop once validation loss <= this")
    parser.add_argument(
        "--target-accuracy", type=float, help="stop once validation accuracy >= this"
    )
    parser.add_argument("--seed", type=seed_arg, help="seed of data, initialisation and order")
    parser.add_argument("--digits", metavar="D,D", help="digit classes (pixel/MNIST tasks)")
    parser.add_argument("--data-dir", metavar="DIR", help="MNIST IDX files (MNIST tasks)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="other task option (e.g. n_triples=6, length=20); repeatable",
    )
    parser.add_argument("--out", metavar="DIR", help="run directory (default runs/TASK)")
    run = parser.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true", help="continue the run in --out")
    run.add_argument(
        "--overwrite", action="store_true", help="replace the run in --out (deletes its files)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the torchrun process group (gloo on CPU, nccl on CUDA)",
    )
    parser.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="evaluate a run's best parameters on its validation and test sets",
        description="Evaluate the best checkpoint of RUN (exact loss, accuracy, overhead).",
    )
    evaluate.add_argument("run", metavar="RUN", help="run directory made by `qrnn-tn train`")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(func=run_evaluate)

    plot = subparsers.add_parser(
        "plot",
        help="draw a run's curves, output distributions and samples (PNG)",
        description="Write curves.png, distributions.png and samples.png into RUN.",
    )
    plot.add_argument("run", metavar="RUN", help="run directory made by `qrnn-tn train`")
    plot.add_argument("--seed", type=seed_arg, default=0, help="seed of the samples")
    plot.set_defaults(func=run_plot)


def _task_options(args: argparse.Namespace) -> dict[str, Any]:
    options = parse_key_values(args.option, "--option", "n_triples=6")
    if args.digits is not None:
        options["digits"] = args.digits
    if args.data_dir is not None:
        options["data_dir"] = args.data_dir
    return options


def build_config(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> TrainConfig:
    """Build the run's :class:`~qrnn_tn.training.TrainConfig`.

    The task defaults (or the ``saved`` config of a resumed run), updated by the arguments
    given.
    """
    from qrnn_tn.tasks import default_config, task_options
    from qrnn_tn.training import TrainConfig

    overrides = {
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "batch_size": args.batch_size,
        "optimiser": args.optimiser,
        "loss": args.loss,
        "backend": args.backend,
        "dtype": args.dtype,
        "clip": args.clip,
        "overhead_penalty": args.overhead_penalty,
        "overhead_penalty_scope": args.overhead_penalty_scope,
        "eval_every": args.eval_every,
        "target_loss": args.target_loss,
        "target_accuracy": args.target_accuracy,
        "seed": args.seed,
        "steps": args.steps,
        "epochs": args.epochs,
        "out": args.out or f"runs/{args.task}",
        "backend_options": backend_options(args) or None,
    }
    options = _task_options(args)
    if saved is None:
        config = default_config(args.task, **overrides)
        config.task_options = task_options(args.task, options)
        return config
    data = dict(saved)
    if args.task != data.get("task"):
        raise UsageError(
            f"--task {args.task} but the run in {overrides['out']} is {data.get('task')!r}"
        )
    if args.steps is not None or args.epochs is not None:
        data["steps"], data["epochs"] = args.steps, args.epochs
    given = {k: v for k, v in overrides.items() if v is not None and k not in ("steps", "epochs")}
    data.update(given)
    if options and isinstance(data.get("task_options"), dict):
        data["task_options"] = task_options(args.task, {**data["task_options"], **options})
    return TrainConfig.from_dict(data)


def _spec(text: str, task: str) -> CellSpec:
    from qrnn_tn.tasks import default_spec

    return default_spec(task) if text == "default" else load_spec(Path(text))


def run_train(args: argparse.Namespace) -> int:
    """Build data, model and config from the arguments and train; prints the outcome.

    With ``--distributed`` every rank runs this inside the torchrun process group
    (:func:`qrnn_tn.training.distributed.session`); only rank 0 prints and writes files.
    """
    if not getattr(args, "distributed", False):
        return _run_train(args, main_rank=True)
    from qrnn_tn.training import distributed

    try:
        with distributed.session() as group:
            return _run_train(args, main_rank=group.is_main)
    except distributed.DistributedError as err:
        print(f"qrnn-tn train: error: {err}", file=sys.stderr)
        return 2


def _run_train(args: argparse.Namespace, main_rank: bool) -> int:
    from qrnn_tn.tasks import build_datasets, get_task
    from qrnn_tn.training import build_model, train

    get_task(args.task)
    out = Path(args.out or f"runs/{args.task}")
    from qrnn_tn.training.rundir import RunDir

    run_dir = RunDir(out)
    existing = run_dir.existing()
    saved = None
    if args.resume:
        if RunDir.LAST not in existing:
            raise UsageError(
                f"--resume: {out} has no checkpoint {RunDir.LAST} to resume from (it holds "
                f"{', '.join(existing) or 'no run files'}); nothing was changed. Start a new "
                "run there with --overwrite, or choose another --out"
            )
        if RunDir.CONFIG in existing:
            saved = run_dir.read_config()
    elif existing and not args.overwrite:
        raise UsageError(
            f"{out} already holds a run ({', '.join(existing)}); add --resume to continue it, "
            "--overwrite to replace it, or choose another --out"
        )
    config = build_config(args, saved)
    config.validate()
    spec = _spec(args.spec, args.task)
    if main_rank:
        warn_unread("train", spec)
    data = build_datasets(config.task, seed=config.seed, **config.task_options)
    if data.train.io != spec.io:
        raise UsageError(
            f"task {config.task} has {data.train.io}-bit tokens but {args.spec} has "
            f"cell.io = {spec.io}; use a spec with io = {data.train.io} (or `default`)"
        )
    model = build_model(spec, config)
    model.plan(data.train.length - 1, min(config.batch_size, len(data.train)))
    say = print if main_rank else (lambda *a, **k: None)
    say(
        f"{config.task}: cell {spec.name or args.spec} (io {spec.io}, workspace "
        f"{spec.workspace}, stages {spec.stages}, {model.n_params} parameters); "
        f"{len(data.train)} train / {len(data.val)} val / {len(data.test)} test sequences "
        f"of {data.train.length} tokens\n{model.backend_choice}\nrun directory: {out}",
        flush=True,
    )
    summary = train(
        model,
        data.train,
        data.val,
        config,
        data.test,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    say(_describe_summary(summary))
    for line in summary_warnings(summary, data.val):
        say(f"warning: {line}")
    return 0


def summary_warnings(summary: TrainSummary, val: Any) -> list[str]:
    """Say why the outcome may not be what was wanted.

    The accuracy is at chance, or the validation loss was still falling when the step budget
    ran out.
    """
    best, lines = summary.best_val, list[str]()
    if best is None:
        return lines
    if val.labels is not None and len(val.labels):
        majority = float(np.bincount(val.labels).max() / len(val.labels))
        if best.accuracy <= majority + 0.01:
            lines.append(
                f"the best validation accuracy {best.accuracy:.3f} is at chance (the "
                f"largest class is {majority:.3f} of the validation set): the model has not "
                "learnt the task; train longer (--steps) or see the task's documentation"
            )
    if summary.stopped == "steps" and summary.best_step == summary.steps:
        lines.append(
            f"the validation loss was still falling at the last step ({summary.steps}); "
            "more steps may help (--steps, or --resume with a larger --steps)"
        )
    return lines


def _describe_summary(summary: TrainSummary) -> str:
    best, test = summary.best_val, summary.test
    lines = [
        f"stopped after {summary.steps} of {summary.total_steps} steps "
        f"({'target reached' if summary.stopped == 'target' else 'step budget spent'}) "
        f"in {summary.seconds:.1f} s",
    ]
    if best is not None:
        lines.append(
            f"best validation (step {summary.best_step}): loss {best.loss:.4f}, "
            f"accuracy {best.accuracy:.4f}, overhead {best.overhead:.2f}"
        )
    if test is not None:
        lines.append(
            f"test: loss {test.loss:.4f}, accuracy {test.accuracy:.4f}, "
            f"overhead {test.overhead:.2f}"
            + ("" if test.discarded is None else f", discarded {test.discarded:.2g}")
        )
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate the best checkpoint of a run on its validation and test sets."""
    from qrnn_tn.tasks import build_datasets
    from qrnn_tn.training import evaluate, load_run

    model, config = load_run(args.run, "best")
    data = build_datasets(config.task, seed=config.seed, **config.task_options)
    results = {
        split: evaluate(model, getattr(data, split), loss_kind=config.loss)
        for split in ("val", "test")
    }
    if args.json:
        print(jsonio.dumps({split: r.to_json() for split, r in results.items()}, indent=2))
        return 0
    for split, r in results.items():
        truncated = "" if r.discarded is None else f"  discarded {r.discarded:.2g}"
        print(
            f"{split:>4}: loss {r.loss:.4f}  accuracy {r.accuracy:.4f}  "
            f"overhead {r.overhead:.2f}{truncated}  ({r.sequences} sequences)"
        )
    return 0


def run_plot(args: argparse.Namespace) -> int:
    """Write a run's figures and print their paths."""
    from qrnn_tn.plots import plot_run

    for name, path in plot_run(args.run, seed=args.seed).items():
        print(f"{name}: {path}")
    return 0

"""The paper's long-sequence study (DNA long-range memory) and a gradient-norm study.

:func:`long_sequence_study` trains a QRNN, a classical :class:`torch.nn.RNN` and an
:class:`torch.nn.LSTM` (both sized to about :data:`PAPER_PARAMETERS` parameters) on the
same DNA data (:func:`qrnn_tn.data.dna`) per length and seed, and records the optimiser
steps until the validation loss falls below a threshold (or a step cap), and the lowest
validation loss reached. Beyond the paper,
:func:`gradient_study` measures, at initialisation, the norm of the gradient of the
last-step loss with respect to all parameters, per length.

Both write ``out_dir/<name>.json`` atomically after every point and a PNG, and skip points
already in the JSON that were made with the same settings, so an interrupted study resumes
cheaply. ``python -m benchmarks.long_sequence --lengths 5,10,20 --seeds 3 --out runs/analysis``.
Every model trains with the library's loop (:func:`qrnn_tn.training.fit`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compiler.spec import load_spec
from qrnn_tn import jsonio
from qrnn_tn.data import SequenceDataset
from qrnn_tn.model import QRNN, step_losses, step_targets
from qrnn_tn.plots import plot_bands
from qrnn_tn.tasks import build_datasets, default_spec
from qrnn_tn.training import TrainConfig, atomic_write, evaluate
from qrnn_tn.training import fit as fit_loop

__all__ = [
    "LEARNING_RATES",
    "MODELS",
    "PAPER_PARAMETERS",
    "ClassicalRNN",
    "classical_parameters",
    "hidden_size",
    "make_model",
    "fit",
    "long_sequence_study",
    "gradient_study",
]

#: Models compared in the studies.
MODELS = ("qrnn", "rnn", "lstm")
#: Default Adam learning rate per model (the QRNN's is the DNA task's, ``TASKS["dna"]``).
LEARNING_RATES = {"qrnn": 0.05, "rnn": 0.01, "lstm": 0.01}
#: Parameter count of the paper's classical baselines.
PAPER_PARAMETERS = 888
#: Word size of the DNA task (2 base bits and 1 mark bit).
DNA_IO = 3
_GATES = {"rnn": 1, "lstm": 4}
_STEPS_MEASURE = (
    "optimiser steps (Adam, batch of DNA sequences teacher forced on their target stream, the "
    "marked base from the mark on, gradient norm clipped at 0.5; the training loop of "
    "qrnn_tn.training) until the validation loss (NLL of the last step) is at most "
    "`threshold`, checked every `eval_every` steps; a run that never gets there counts as "
    "`max_steps` (converged: false). "
    "`best_val_loss`: the lowest validation loss of those checks (and at step 0)"
)
_GRADIENT_MEASURE = (
    "at initialisation: Euclidean norm of d L / d parameters (all of them), where L is the mean "
    "NLL of the last step (the recall of the marked base) over a batch of DNA sequences; "
    "per seed a fresh initialisation and batch"
)


class ClassicalRNN(nn.Module):
    """A classical baseline: one-hot words -> ``nn.RNN``/``nn.LSTM`` -> linear readout.

    ``forward(words [B, L])`` returns teacher-forced distributions ``[B, L-1, 2^io]`` like
    :class:`~qrnn_tn.model.QRNN`; a target stream changes nothing for it (nothing is
    projected), so ``targets`` is accepted and unused.
    """

    def __init__(self, kind: str, io: int, hidden: int, *, seed: int = 0) -> None:
        super().__init__()
        if kind not in _GATES:
            raise ValueError(f"kind={kind!r}; accepted: {', '.join(_GATES)}")
        torch.manual_seed(seed)
        self.n_words = 2**io
        cls = nn.RNN if kind == "rnn" else nn.LSTM
        self.rnn = cls(self.n_words, hidden, batch_first=True, dtype=torch.float64)
        self.readout = nn.Linear(hidden, self.n_words, dtype=torch.float64)

    @property
    def n_params(self) -> int:
        """The number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, words: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Return the next-word distributions ``[batch, L - 1, n_words]`` of ``words``."""
        x = nn.functional.one_hot(words[:, :-1], self.n_words).to(torch.float64)
        out, _ = self.rnn(x)
        return torch.softmax(self.readout(out), dim=-1)

    def run(self, words: torch.Tensor, *, targets: torch.Tensor | None = None) -> StepRun:
        """Return the teacher-forced run of ``words`` (no postselection: ``log_norm`` is 0)."""
        probs = self(words, targets)
        scored = step_targets(words, targets)
        target_prob = probs.gather(-1, scored.unsqueeze(-1)).squeeze(-1)
        return StepRun(probs, target_prob, probs.new_zeros(probs.shape[0]))


@dataclasses.dataclass(frozen=True)
class StepRun:
    """A classical model's run, as the training loop reads a QRNN's."""

    probs: torch.Tensor
    target_prob: torch.Tensor
    log_norm: torch.Tensor
    discarded: torch.Tensor | None = None


def classical_parameters(kind: str, io: int, hidden: int) -> int:
    """Parameters of :class:`ClassicalRNN` (both biases of each gate, and the readout)."""
    n = 2**io
    return _GATES[kind] * hidden * (n + hidden + 2) + hidden * n + n


def hidden_size(kind: str, io: int = DNA_IO, target: int = PAPER_PARAMETERS) -> int:
    """Return the hidden size whose parameter count is closest to ``target``.

    For the paper's 888 parameters this is 22 for the RNN and 10 for the LSTM.
    """
    best, h = 1, 1
    while classical_parameters(kind, io, h) <= 2 * target:
        if abs(classical_parameters(kind, io, h) - target) < abs(
            classical_parameters(kind, io, best) - target
        ):
            best = h
        h += 1
    return best


def make_model(name: str, seed: int, cell: Any = None) -> nn.Module:
    """Return a freshly initialised model for the DNA task.

    ``name`` is ``"qrnn"`` (``cell``: a spec, default the DNA cell), ``"rnn"`` or ``"lstm"``
    (about :data:`PAPER_PARAMETERS` parameters).
    """
    if name == "qrnn":
        return QRNN(default_spec("dna") if cell is None else cell, seed=seed)
    if name in _GATES:
        return ClassicalRNN(name, DNA_IO, hidden_size(name), seed=seed)
    raise ValueError(f"model {name!r}; accepted: {', '.join(MODELS)}")


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _loss(
    model: nn.Module, words: np.ndarray, mask: np.ndarray, targets: np.ndarray | None
) -> torch.Tensor:
    words_t = torch.from_numpy(words)
    targets_t = None if targets is None else torch.from_numpy(targets)
    scored = step_targets(words_t, targets_t)
    return step_losses(model(words_t, targets_t), scored)[torch.from_numpy(mask)].mean()


def fit(
    model: nn.Module,
    train_set: SequenceDataset,
    val_set: SequenceDataset,
    *,
    lr: float,
    batch_size: int,
    max_steps: int,
    threshold: float,
    eval_every: int,
    seed: int,
) -> dict[str, Any]:
    """Train until the validation loss is at most ``threshold`` or ``max_steps`` steps.

    The loop is the library's (:func:`qrnn_tn.training.fit`): Adam, gradient norm clipped at
    0.5, the batch of a step fixed by ``seed`` and the step. Returns ``steps`` (at the
    converging validation, else ``max_steps``), ``converged``, the last ``val_loss``, the
    lowest one checked ``best_val_loss`` (step 0 included), and ``seconds``.
    """
    # the study scores the loss only: no label accuracy (a classical model has no exact one)
    val_set = dataclasses.replace(val_set, labels=None, n_label_steps=0)
    started = time.perf_counter()
    initial = evaluate(model, val_set).loss
    if initial <= threshold:
        return _fit_result(0, initial, initial, threshold, started)
    config = TrainConfig(
        task="dna",
        lr=lr,
        batch_size=batch_size,
        steps=max_steps,
        eval_every=eval_every,
        target_loss=threshold,
        seed=seed,
    )
    last = _LastValidation()
    state = fit_loop(model, train_set, val_set, config, log=last)
    best = initial if state.best_val is None else min(initial, state.best_val.loss)
    return _fit_result(state.step, last.loss, best, threshold, started)


class _LastValidation:
    """A loop log that keeps the last validation loss (and writes nothing)."""

    loss = float("nan")

    def append(self, record: dict[str, Any]) -> None:
        if record["split"] == "val":
            self.loss = record["loss"]

    def save_best(self, state: Any) -> None:
        """Keep nothing."""

    def save_last(self, state: Any) -> None:
        """Keep nothing."""

    def failure_note(self) -> str:
        return ""


def _fit_result(
    steps: int, val_loss: float, best: float, threshold: float, started: float
) -> dict[str, Any]:
    return {
        "steps": steps,
        "converged": val_loss <= threshold,
        "val_loss": val_loss,
        "best_val_loss": best,
        "seconds": time.perf_counter() - started,
    }


def _load(path: Path, study: str, measure: str) -> dict[str, Any]:
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if (data.get("study"), data.get("measure")) == (study, measure):
            return data  # a study measured differently starts afresh
    return {"study": study, "measure": measure, "parameters": {}, "runs": []}


def _save(path: Path, data: dict[str, Any]) -> None:
    text = jsonio.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")


def _done(data: dict[str, Any], model: str, length: int, seed: int, settings: dict) -> bool:
    return any(
        (r["model"], r["length"], r["seed"], r["settings"]) == (model, length, seed, settings)
        for r in data["runs"]
    )


def _summarise(
    data: dict[str, Any], key: str, settings: dict[str, dict], models: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Per model and length: median, mean, min, max of ``key`` over the matching runs."""
    summary: dict[str, list[dict[str, Any]]] = {}
    for name in models:
        runs = [r for r in data["runs"] if r["model"] == name and r["settings"] == settings[name]]
        rows = []
        for length in sorted({r["length"] for r in runs}):
            values = np.array([r[key] for r in runs if r["length"] == length], dtype=float)
            row = {
                "length": length,
                "n": len(values),
                "median": float(np.median(values)),
                "mean": float(values.mean()),
                "min": float(values.min()),
                "max": float(values.max()),
            }
            if key == "steps":
                row["converged"] = sum(r["converged"] for r in runs if r["length"] == length)
            rows.append(row)
        summary[name] = rows
    return summary


def _log(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _cell_settings(name: str, cell: Any) -> dict[str, Any] | None:
    if name != "qrnn":
        return None
    spec = default_spec("dna") if cell is None else load_spec(cell)
    return {
        "io": spec.io,
        "workspace": spec.workspace,
        "stages": spec.stages,
        "degree": spec.neuron.degree,
        "parameters": spec.n_parameters(),
    }


def long_sequence_study(
    lengths: Sequence[int],
    seeds: int | Sequence[int],
    models: Sequence[str] = MODELS,
    max_steps: int = 500,
    threshold: float = 1e-3,
    out_dir: str | Path = "runs/analysis",
    progress: bool = True,
    *,
    cell: Any = None,
    lr: float | Mapping[str, float] | None = None,
    batch_size: int = 16,
    eval_every: int = 10,
    n_train: int = 128,
    n_val: int = 64,
) -> dict[str, Any]:
    """Return the steps to converge on the DNA task vs sequence length, per model (paper's Fig.).

    Parameters
    ----------
    lengths
        DNA sequence lengths (>= 3).
    seeds
        A count (seeds ``0 … n-1``) or the seeds; a seed fixes data and initialisation.
    models
        Among :data:`MODELS`.
    max_steps, threshold
        Step cap, and the validation loss below which a run has converged (paper: 1e-3).
    out_dir
        Gets ``long_sequence.json`` (after every point) and ``long_sequence.png``.
    progress
        Log a line per point on stderr.
    cell
        The QRNN's spec (default: the DNA task's cell, io 3, workspace 3, stages 0, degree 2).
    lr
        Adam learning rate: one for all models, or per model (default
        :data:`LEARNING_RATES`).
    batch_size, eval_every, n_train, n_val
        Batch, validation interval, train and validation set sizes.

    Returns
    -------
    dict
        ``runs`` (one record per model, length, seed), ``summary`` (per model: median,
        min, max of the steps per length, runs converged), ``loss_summary`` (the same of
        ``best_val_loss``), ``parameters`` per model. Also writes ``long_sequence_loss.png``.
    """
    out = Path(out_dir)
    path = out / "long_sequence.json"
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    data = _load(path, "long_sequence", _STEPS_MEASURE)
    if lr is None or isinstance(lr, Mapping):
        rates = {**LEARNING_RATES, **(lr or {})}
    else:
        rates = dict.fromkeys(models, float(lr))
    base = {
        "max_steps": max_steps,
        "threshold": threshold,
        "batch_size": batch_size,
        "eval_every": eval_every,
        "n_train": n_train,
        "n_val": n_val,
    }
    settings = {
        name: {**base, "lr": rates[name], "cell": _cell_settings(name, cell)} for name in models
    }
    for length in lengths:
        for seed in seed_list:
            sets = None
            for name in models:
                if _done(data, name, length, seed, settings[name]):
                    continue
                if sets is None:
                    sets = build_datasets(
                        "dna", seed, length=length, n_train=n_train, n_val=n_val, n_test=1
                    )
                model = make_model(name, seed, cell)
                data["parameters"][name] = _n_params(model)
                result = fit(
                    model,
                    sets.train,
                    sets.val,
                    lr=rates[name],
                    batch_size=batch_size,
                    max_steps=max_steps,
                    threshold=threshold,
                    eval_every=eval_every,
                    seed=seed,
                )
                record = {"model": name, "length": length, "seed": seed, **result}
                data["runs"].append({**record, "settings": settings[name]})
                _summarise_study(data, settings, models)
                _save(path, data)
                _log(
                    progress,
                    f"{name} length {length} seed {seed}: {result['steps']} steps, val loss "
                    f"{result['val_loss']:.2e} (best {result['best_val_loss']:.2e}, "
                    f"{result['seconds']:.1f}s)",
                )
    _summarise_study(data, settings, models)
    _save(path, data)
    plot_bands(
        data["summary"],
        out / "long_sequence.png",
        xlabel="sequence length",
        ylabel=f"steps to val loss < {threshold:g} (cap {max_steps})",
        title="DNA long-range memory: steps to converge (median, min-max)",
    )
    plot_bands(
        data["loss_summary"],
        out / "long_sequence_loss.png",
        xlabel="sequence length",
        ylabel=f"lowest validation NLL of the last step (cap {max_steps} steps)",
        title="DNA long-range memory: best validation loss (median, min-max)",
        logy=True,
    )
    return data


def _summarise_study(
    data: dict[str, Any], settings: dict[str, dict], models: Sequence[str]
) -> None:
    data["summary"] = _summarise(data, "steps", settings, models)
    data["loss_summary"] = _summarise(data, "best_val_loss", settings, models)


def gradient_study(
    lengths: Sequence[int],
    seeds: int | Sequence[int],
    out_dir: str | Path = "runs/analysis",
    models: Sequence[str] = MODELS,
    *,
    cell: Any = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Gradient norm at initialisation vs sequence length, per model.

    Measured: ``||d L / d theta||_2`` over all parameters, ``L`` the mean last-step NLL on
    a batch of ``batch_size`` DNA sequences, a fresh initialisation and batch per seed.
    Writes ``gradient.json`` and ``gradient.png`` under ``out_dir``; returns the JSON
    (``runs`` with ``grad_norm`` per model, length, seed; ``summary`` mean/min/max).
    """
    out = Path(out_dir)
    path = out / "gradient.json"
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    data = _load(path, "gradient", _GRADIENT_MEASURE)
    settings = {
        name: {"batch_size": batch_size, "cell": _cell_settings(name, cell)} for name in models
    }
    for length in lengths:
        for seed in seed_list:
            batch = build_datasets(
                "dna", seed, length=length, n_train=batch_size, n_val=1, n_test=1
            ).train
            for name in models:
                if _done(data, name, length, seed, settings[name]):
                    continue
                model = make_model(name, seed, cell)
                data["parameters"][name] = _n_params(model)
                _loss(model, batch.words, batch.mask, batch.targets).backward()
                grads = [p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]
                norm = float(torch.linalg.vector_norm(torch.cat(grads)))
                data["runs"].append(
                    {
                        "model": name,
                        "length": length,
                        "seed": seed,
                        "grad_norm": norm,
                        "settings": settings[name],
                    }
                )
    data["summary"] = _summarise(data, "grad_norm", settings, models)
    _save(path, data)
    plot_bands(
        data["summary"],
        out / "gradient.png",
        xlabel="sequence length",
        ylabel="||dL/dθ|| at initialisation",
        title="Gradient norm of the last-step loss (mean line is median; band min-max)",
        logy=True,
    )
    return data


def _table(summary: dict[str, list[dict[str, Any]]], value: str) -> str:
    lines = []
    for name, rows in summary.items():
        for row in rows:
            extra = f" converged {row['converged']}/{row['n']}" if "converged" in row else ""
            lines.append(
                f"{name:5s} length {row['length']:4d}: {value} median {row['median']:.4g} "
                f"[{row['min']:.4g}, {row['max']:.4g}]{extra}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.long_sequence --lengths 5,10,20 --seeds 3 --out runs/analysis``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.long_sequence", description=__doc__)
    parser.add_argument("--lengths", default="5,10,20", help="comma-separated DNA lengths")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--threshold", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=10, help="validation interval")
    parser.add_argument("--out", default="runs/analysis")
    parser.add_argument(
        "--quick", action="store_true", help="small QRNN cell (workspace 2), 100 steps"
    )
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",")]
    models = tuple(args.models.split(","))
    cell = None
    max_steps = args.max_steps
    if args.quick:
        cell = {"cell": {"io": 3, "workspace": 2, "stages": 0}, "neuron": {"degree": 2}}
        max_steps = min(max_steps, 100)
    study = long_sequence_study(
        lengths,
        args.seeds,
        models,
        max_steps,
        args.threshold,
        args.out,
        cell=cell,
        eval_every=args.eval_every,
    )
    grads = gradient_study(lengths, args.seeds, args.out, models, cell=cell)
    print(f"parameters: {study['parameters']}")
    print(_table(study["summary"], "steps"))
    print(_table(study["loss_summary"], "best val loss"))
    print(_table(grads["summary"], "grad norm"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

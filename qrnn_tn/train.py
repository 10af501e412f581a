"""Training loop, evaluation, atomic checkpoints with exact resume, and metrics files.

The run directory (``TrainConfig.out``) and its files are described in
:mod:`qrnn_tn.rundir`; one process at a time writes it (a lock). Data order depends only on
the seed and the step, so a run resumed from ``last.pt`` repeats exactly what the
uninterrupted run does.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from compiler.spec import load_spec
from qrnn_tn import distributed
from qrnn_tn.backends import check_backend_options, options_as_dict
from qrnn_tn.data import SequenceDataset
from qrnn_tn.dtypes import DTYPE_NAMES
from qrnn_tn.errors import Error
from qrnn_tn.metrics import StepSums
from qrnn_tn.model import LOSS_KINDS, QRNN, step_losses, step_targets
from qrnn_tn.rundir import RunDir, RunDirError, atomic_write

__all__ = [
    "TrainError",
    "NonFiniteError",
    "TrainConfig",
    "OPTIMISERS",
    "train",
    "evaluate",
    "atomic_write",
    "load_checkpoint",
    "load_run",
    "build_model",
    "read_metrics",
]

#: Optimisers by name (QRNN.md §6; L-BFGS as in the paper's MNIST 3 vs 6 run).
OPTIMISERS = ("adam", "sgd", "rmsprop", "lbfgs")
#: Learning-rate schedules by name: ``constant``, or ``cosine`` decay to zero over the run.
LR_SCHEDULES = ("constant", "cosine")
#: What the overhead penalty counts: the projections of the unscored steps, or every
#: postselection (neurons too).
PENALTY_SCOPES = ("readout", "all")
#: Config fields that shape the trajectory: a resumed run must not change them.
_TRAJECTORY_FIELDS = (
    "task",
    "lr",
    "lr_schedule",
    "optimiser",
    "batch_size",
    "clip",
    "overhead_penalty",
    "overhead_penalty_scope",
    "seed",
    "eval_every",
    "loss",
    "backend",
    "backend_options",
    "dtype",
    "task_options",
)
_CHECKPOINT_FORMAT = 1
#: Sequences per evaluation batch (no gradients are kept, so this can be large).
EVAL_BATCH = 256


class TrainError(Error, ValueError):
    """Training cannot start or resume as asked; the message says what to change."""


@dataclass
class TrainConfig:
    """Hyperparameters and bookkeeping of one training run.

    ``steps`` optimiser steps, or ``epochs`` passes over the training set (give one).
    Validation runs every ``eval_every`` steps and at the end; training stops early once
    every target given (``target_loss``: validation loss at most this; ``target_accuracy``:
    validation accuracy at least this) is met. ``clip`` bounds the gradient norm (not
    applied with L-BFGS, whose line search needs the true gradient). ``out`` is the run
    directory (``None``: keep nothing on disk). ``task_options`` records how the datasets
    were built (see :mod:`qrnn_tn.tasks`); ``backend_options`` go to the backend (e.g.
    ``{"max_bond": 32}`` with ``backend="mps"``, or ``MPSOptions(max_bond=32)``): they are
    checked on construction and kept as a plain mapping of the values that differ from the
    defaults (what ``config.json`` records). ``lr_schedule`` ``"cosine"`` lowers the
    learning rate from ``lr`` to zero along half a cosine over the run's steps (a function
    of the step alone, so a resumed run follows it exactly). ``overhead_penalty`` ``λ > 0``
    adds ``λ`` times a postselection cost to the loss: with ``overhead_penalty_scope``
    ``"readout"`` (the default) the mean ``−log p_t(v_t)`` over the unscored steps (the log of
    their readout overhead; a next-token loss on the steps the task does not score), with
    ``"all"`` the mean per-step ``−log_norm`` (every neuron's success probability and every
    projection but the last, :class:`~qrnn_tn.backends.RunResult`). Without it, a task scored
    on its last step only (MNIST pixel by pixel) drives the projections of the other steps
    towards probability zero, where the renormalised state and the gradients become unstable
    (``docs/mnist.md``).
    """

    task: str = ""
    lr: float = 0.01
    lr_schedule: str = "constant"
    optimiser: str = "adam"
    batch_size: int = 16
    steps: int | None = None
    epochs: int | None = None
    clip: float | None = 0.5
    overhead_penalty: float = 0.0
    overhead_penalty_scope: str = "readout"
    seed: int = 0
    eval_every: int = 20
    target_loss: float | None = None
    target_accuracy: float | None = None
    out: str | None = None
    loss: str = "nll"
    backend: str = "auto"
    backend_options: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float64"
    task_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.backend, str):
            raise TrainError(f"backend={self.backend!r}; give a backend name or 'auto'")
        resolved = check_backend_options(self.backend_options, self.backend)
        self.backend_options = options_as_dict(resolved)

    def validate(self) -> None:
        """Raise :class:`TrainError` naming the first bad field and what is accepted."""
        if self.optimiser not in OPTIMISERS:
            raise TrainError(f"optimiser={self.optimiser!r}; accepted: {', '.join(OPTIMISERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise TrainError(
                f"lr_schedule={self.lr_schedule!r}; accepted: {', '.join(LR_SCHEDULES)}"
            )
        if self.loss not in LOSS_KINDS:
            raise TrainError(f"loss={self.loss!r}; accepted: {', '.join(LOSS_KINDS)}")
        if self.dtype not in DTYPE_NAMES:
            raise TrainError(f"dtype={self.dtype!r}; accepted: {', '.join(DTYPE_NAMES)}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise TrainError(f"lr={self.lr!r}; the learning rate must be a positive number")
        for name in ("batch_size", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TrainError(f"{name}={value!r}; must be an integer >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TrainError(f"seed={self.seed!r}; must be an integer")
        if not 0 <= self.seed < 2**63:
            raise TrainError(f"seed={self.seed}; must be in 0 … 2**63 - 1")
        if (self.steps is None) == (self.epochs is None):
            raise TrainError(
                f"steps={self.steps!r}, epochs={self.epochs!r}: give exactly one of them"
            )
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise TrainError(f"{name}={value!r}; must be an integer >= 1")
        if self.clip is not None and not self.clip > 0:
            raise TrainError(f"clip={self.clip!r}; must be > 0, or None for no clipping")
        penalty = self.overhead_penalty
        if not (isinstance(penalty, int | float) and not isinstance(penalty, bool)) or not (
            math.isfinite(penalty) and penalty >= 0
        ):
            raise TrainError(
                f"overhead_penalty={penalty!r}; must be a finite number >= 0 (0: no penalty)"
            )
        if self.overhead_penalty_scope not in PENALTY_SCOPES:
            raise TrainError(
                f"overhead_penalty_scope={self.overhead_penalty_scope!r}; accepted: "
                + ", ".join(PENALTY_SCOPES)
            )
        if not isinstance(self.task_options, dict):
            raise TrainError(f"task_options={self.task_options!r}; must be a dict of options")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise TrainError(f"target_accuracy={self.target_accuracy!r}; must be in (0, 1]")

    def total_steps(self, n_train: int) -> int:
        """Optimiser steps of the run for a training set of ``n_train`` sequences."""
        if self.steps is not None:
            return self.steps
        return self.epochs * math.ceil(n_train / self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainError(f"unknown config keys {unknown}; accepted: {', '.join(sorted(known))}")
        return cls(**data)


# --------------------------------------------------------------------------- files


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a run's ``metrics.jsonl`` (``path``: the file or its run directory); a line
    cut short by a crash is skipped."""
    path = Path(path)
    return RunDir(path if path.is_dir() else path.parent).read_metrics()


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`train` (tensors and plain values only)."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        raise TrainError(f"checkpoint {path} cannot be read ({err}); it is damaged") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise TrainError(f"{path} is not a qrnn-tn checkpoint (format {_CHECKPOINT_FORMAT})")
    return ckpt


def load_run(run_dir: str | os.PathLike, which: str = "best") -> tuple[QRNN, TrainConfig]:
    """The model of a run directory (``which``: ``"best"`` or ``"last"``) and its config."""
    run_dir = Path(run_dir)
    if which not in ("best", "last"):
        raise TrainError(f"which={which!r}; accepted: best, last")
    ckpt = load_checkpoint(RunDir(run_dir).file(RunDir.BEST if which == "best" else RunDir.LAST))
    config = TrainConfig.from_dict(ckpt["config"])
    spec = load_spec(ckpt["spec"])
    model = build_model(spec, config, init=np.zeros(spec.n_parameters()))
    model.load_state_dict(ckpt["model"])
    return model, config


def build_model(spec: Any, config: TrainConfig, init: Any = None) -> QRNN:
    """The :class:`QRNN` a run of ``config`` trains: its backend, backend options and dtype,
    initialised from ``config.seed`` (or from ``init``)."""
    return QRNN(
        spec,
        backend=config.backend,
        dtype=DTYPE_NAMES[config.dtype],
        init=init,
        seed=config.seed,
        backend_options=config.backend_options,
    )


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (global state)
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    legacy = (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
    np.random.set_state(legacy)  # noqa: NPY002 (restoring the global state)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    model: QRNN, dataset: SequenceDataset, *, loss_kind: str = "nll", batch_size: int = EVAL_BATCH
) -> dict[str, float]:
    """Loss, accuracy and postselection overhead of ``model`` on ``dataset`` (exact).

    ``loss`` is the mean over every unmasked step of the set. ``accuracy`` is, for a
    labelled set, the share of sequences whose most probable label under the exact joint
    label distribution is right (QRNN.md §3); otherwise the share of unmasked steps whose
    most probable word is the target. ``overhead`` is the mean of ``1 / p_t(w_{t+1})``
    over all steps (the expected repetitions per projection on a device); ``log_overhead``
    the mean over steps of ``−log_norm`` (every neuron's success and every projection but
    the last, as the log of the repetitions a step costs without amplitude amplification).
    A truncating backend (MPS with a bond cap) adds ``discarded``: the largest weight one
    sequence of the set lost to truncation over its steps (module :mod:`qrnn_tn.backends.mps`
    bounds the error by it).
    """
    sums = StepSums()
    for batch in dataset.batches(batch_size):
        words_t, mask_t, targets_t = _tensors(*batch, device=model.theta.device)
        scored = step_targets(words_t, targets_t)
        result = model.run(words_t, targets=targets_t)
        losses = step_losses(result.probs, scored, loss_kind)
        sums += StepSums.of(
            losses,
            result.probs,
            result.target_prob,
            scored,
            mask_t,
            result.discarded,
            result.log_norm,
        )
    if sums.scored == 0:
        raise TrainError(f"dataset {dataset.name!r} has no unmasked step to evaluate")
    metrics = sums.summary()
    if dataset.labels is not None:
        metrics["accuracy"] = _label_accuracy(model, dataset, batch_size)
    return metrics | {"sequences": len(dataset)}


def _tensors(
    words: np.ndarray, mask: np.ndarray, targets: np.ndarray | None, device: torch.device | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A batch of :meth:`SequenceDataset.batches` as tensors on ``device``."""
    words_t, mask_t = torch.from_numpy(words).to(device), torch.from_numpy(mask).to(device)
    targets_t = None if targets is None else torch.from_numpy(targets).to(device)
    return words_t, mask_t, targets_t


def _label_accuracy(model: QRNN, dataset: SequenceDataset, batch_size: int) -> float:
    k = dataset.n_label_steps
    runs_per_sequence = 2 ** (model.io * (k - 1))
    chunk = max(1, batch_size // runs_per_sequence)
    correct = 0
    for start in range(0, len(dataset), chunk):
        rows = slice(start, start + chunk)
        words = torch.from_numpy(dataset.words[rows])
        targets = None if dataset.targets is None else torch.from_numpy(dataset.targets[rows])
        predicted = model.label_distribution(words, k, targets).argmax(-1).cpu()
        correct += int((predicted == torch.from_numpy(dataset.labels[rows])).sum())
    return correct / len(dataset)


# --------------------------------------------------------------------------- training


def _make_optimiser(config: TrainConfig, model: QRNN) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimiser == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    if config.optimiser == "sgd":
        return torch.optim.SGD(params, lr=config.lr)
    if config.optimiser == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr)
    return torch.optim.LBFGS(params, lr=config.lr, line_search_fn="strong_wolfe")


def scheduled_lr(config: TrainConfig, step: int, total: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) of ``total``."""
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
    return config.lr


def _batch(
    dataset: SequenceDataset, batch_size: int, seed: int, step: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The batch of optimiser step ``step`` (0-based): a function of seed and step only."""
    per_epoch = math.ceil(len(dataset) / batch_size)
    epoch, index = divmod(step, per_epoch)
    epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    batches: Iterator = dataset.batches(batch_size, shuffle=True, seed=epoch_seed)
    for _ in range(index):
        next(batches)
    return _tensors(*next(batches), device=None)


def _train_step(
    model: QRNN,
    optimiser: torch.optim.Optimizer,
    words: torch.Tensor,
    mask: torch.Tensor,
    targets: torch.Tensor | None,
    config: TrainConfig,
    ddp: torch.nn.Module | None = None,
) -> dict[str, float]:
    """One optimiser step; returns the batch's loss, accuracy, overhead and gradient norm."""
    seen: dict[str, float] = {}

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        if ddp is not None:  # data-parallel hook: this rank's shard (qrnn_tn.distributed)
            group = distributed.current()
            return group.loss_backward(ddp, words, mask, targets, config.loss, seen)
        result = model.run(words, targets=targets)
        scored = step_targets(words, targets)
        _require_finite("the output probabilities", result.probs)
        losses = step_losses(result.probs, scored, config.loss)
        loss = losses[mask].mean()
        objective = loss
        if config.overhead_penalty > 0:
            log_overhead = -result.log_norm.mean() / result.probs.shape[1]
            objective = loss + config.overhead_penalty * _penalty(
                config, result, log_overhead, mask
            )
        _require_finite("the loss", objective)
        objective.backward()
        _require_finite("the gradient", model.theta.grad)
        if not seen:  # the first evaluation is the batch's state before the step
            sums = StepSums.of(
                losses,
                result.probs,
                result.target_prob,
                scored,
                mask,
                result.discarded,
                result.log_norm,
            )
            seen.update(sums.summary())
            seen["theta_norm"] = float(torch.linalg.vector_norm(model.theta.detach()))
            seen["grad_norm"] = float(torch.linalg.vector_norm(model.theta.grad))
        return loss

    if config.optimiser == "lbfgs":
        optimiser.step(closure)
    else:
        closure()
        if config.clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimiser.step()
    _require_finite("the parameters after the step", model.theta)
    return seen


def _duration(seconds: float) -> str:
    """``seconds`` as ``1h02m``, ``3m05s`` or ``42s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _penalty(
    config: TrainConfig, result: Any, log_overhead: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The overhead penalty's term (before its weight): the mean ``−log p_t(v_t)`` of the
    projections of the unscored steps (``"readout"``), or the mean per-step ``−log_norm``
    (``"all"``: neurons and projections)."""
    if config.overhead_penalty_scope == "all":
        return log_overhead
    unscored = ~mask
    if not bool(unscored.any()):
        return log_overhead.new_zeros(())
    p = result.target_prob[unscored]
    return -torch.log(p.clamp_min(torch.finfo(p.dtype).tiny)).mean()


class NonFiniteError(TrainError):
    """A training step met a NaN or infinity; the run stops before saving it."""


def _require_finite(what: str, value: torch.Tensor) -> None:
    """Raise :class:`NonFiniteError` if ``value`` holds a NaN or infinity."""
    if value is not None and not bool(torch.isfinite(value.detach()).all()):
        raise NonFiniteError(
            f"{what}: not finite (NaN or infinity); lower the learning rate or the "
            "initial parameter scale ([init] of the spec), or add gradient clipping"
        )


class _Progress:
    """A tqdm bar on a terminal, plain log lines (at validations) otherwise."""

    def __init__(self, total: int, initial: int, name: str, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self.name = name or "train"
        self.bar = None
        if enabled and sys.stderr.isatty():
            self.bar = tqdm(total=total, initial=initial, desc=self.name, file=sys.stderr)

    def step(self, record: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)

    def validation(self, step: int, train_loss: float, val: dict[str, float]) -> None:
        text = (
            f"val loss {val['loss']:.4f} acc {val['accuracy']:.3f} overhead {val['overhead']:.2f}"
            f" log-overhead {val['log_overhead']:.2f}"
        )
        if "discarded" in val:
            text += f" discarded {val['discarded']:.2g}"
        if self.bar is not None:
            self.bar.write(f"{self.name} step {step}: {text}", file=sys.stderr)
        elif self.enabled:
            left = (self.total - step) * val["seconds"] / step
            print(
                f"{self.name} step {step}/{self.total}: loss {train_loss:.4f} | {text} "
                f"| {val['seconds']:.1f}s, about {_duration(left)} left",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_inputs(
    model: QRNN,
    datasets: dict[str, SequenceDataset | None],
    config: TrainConfig,
    resume: bool,
) -> None:
    config.validate()
    if config.backend != model.backend:
        raise TrainError(
            f"config.backend={config.backend!r} but the model uses {model.backend!r}; "
            "build the model with the config's backend (or set config.backend to match)"
        )
    if DTYPE_NAMES[config.dtype] != model.dtype:
        raise TrainError(
            f"config.dtype={config.dtype!r} but the model uses {model.dtype}; make them agree"
        )
    if resume and config.out is None:
        raise TrainError("resume=True needs config.out, the run directory to resume from")
    for role, dataset in datasets.items():
        if dataset is None:
            continue
        if dataset.io != model.io:
            raise TrainError(
                f"{role} set {dataset.name!r} has {dataset.io}-bit tokens but the cell has "
                f"io={model.io}; use a spec with cell.io = {dataset.io}"
            )
        unscored = np.flatnonzero(~dataset.mask.any(axis=1))
        if unscored.size:
            raise TrainError(
                f"{role} set {dataset.name!r}: {unscored.size} sequence(s) have no unmasked "
                f"step (e.g. sequence {int(unscored[0])}); drop them, their loss is undefined"
            )
        if dataset.labels is not None and 2 ** (model.io * (dataset.n_label_steps - 1)) > 4096:
            raise TrainError(
                f"{role} set {dataset.name!r}: {dataset.n_label_steps} label steps of "
                f"{model.io} bits need {2 ** (model.io * (dataset.n_label_steps - 1))} runs "
                "per sequence for the exact label distribution; use fewer label steps"
            )


def train(
    model: QRNN,
    train_set: SequenceDataset,
    val_set: SequenceDataset | None,
    config: TrainConfig,
    test_set: SequenceDataset | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` in place; at the end it holds the best validated parameters.

    Parameters
    ----------
    model
        The QRNN to train (its backend and dtype must match ``config``).
    train_set, val_set, test_set
        Datasets; without ``val_set`` the training set is used for validation.
    config
        Hyperparameters; ``config.out`` is the run directory.
    resume
        Continue the run in ``config.out`` from its ``last.pt`` (an error if it has none).
        The trajectory fields of the config must equal the saved ones; ``steps``,
        ``epochs`` and the targets may change.
    overwrite
        Replace the run already in ``config.out`` (without it, a directory holding a run
        is an error unless ``resume``).
    progress
        Show a progress bar (terminal) or log lines (otherwise) on stderr.

    Returns
    -------
    dict
        The summary also written to ``summary.json``: steps done, why training stopped,
        best step and its validation metrics, test metrics, seconds.

    Raises
    ------
    RunDirError
        If another process is writing ``config.out`` (its lock), or its files are damaged.
    """
    with _holding(None if config.out is None else RunDir(config.out)):
        return _train(
            model, train_set, val_set, config, test_set, resume, overwrite, progress=progress
        )


@contextlib.contextmanager
def _holding(run_dir: RunDir | None) -> Iterator[None]:
    """Hold ``run_dir``'s lock (rank 0 holds it for a data-parallel run)."""
    if run_dir is None:
        yield
        return
    with contextlib.ExitStack() as stack:

        def acquire() -> str | None:
            try:
                stack.enter_context(run_dir.lock())
            except RunDirError as err:
                return str(err)
            return None

        message = _on_main(acquire)
        if message is not None:
            raise RunDirError(message)
        yield


def _train(
    model: QRNN,
    train_set: SequenceDataset,
    val_set: SequenceDataset | None,
    config: TrainConfig,
    test_set: SequenceDataset | None,
    resume: bool,
    overwrite: bool,
    *,
    progress: bool,
) -> dict[str, Any]:
    """:func:`train`, with the run directory locked."""
    _check_inputs(
        model, {"train": train_set, "validation": val_set, "test": test_set}, config, resume
    )
    val_set = train_set if val_set is None else val_set
    out = Path(config.out) if config.out is not None else None
    total = config.total_steps(len(train_set))
    # data-parallel hook (qrnn_tn.distributed): DDP wrapper, None in one process
    group = distributed.current()
    if group is not None and config.overhead_penalty > 0:
        raise TrainError(
            "overhead_penalty is not supported with data-parallel training (--distributed); "
            "train in one process or set overhead_penalty=0"
        )
    ddp = group.wrap(model) if group is not None else None
    optimiser = _make_optimiser(config, model)
    state = {"step": 0, "best_step": None, "best_val": None, "seconds": 0.0, "stopped": None}
    best_theta = model.theta.detach().clone()

    existing = [] if out is None else _on_main(RunDir(out).existing)
    _check_existing(out, existing, resume, overwrite)
    if resume:
        best_theta = _resume(out, model, optimiser, config, state)
    else:
        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)  # noqa: NPY002 (the global state)
        random.seed(config.seed)
        if out is not None and distributed.is_main():
            files = RunDir(out)
            files.clear()
            files.write_json(RunDir.CONFIG, _run_info(model, config))
            files.start_metrics()

    run_dir, out = out, (out if distributed.is_main() else None)  # only rank 0 writes
    bar = _Progress(total, state["step"], config.task, progress and distributed.is_main())
    started = time.perf_counter() - state["seconds"]
    try:
        while state["step"] < total and state["stopped"] is None:
            words, mask, targets = _batch(train_set, config.batch_size, config.seed, state["step"])
            lr = scheduled_lr(config, state["step"], total)
            for param_group in optimiser.param_groups:
                param_group["lr"] = lr
            try:
                seen = _train_step(model, optimiser, words, mask, targets, config, ddp)
            except NonFiniteError as err:
                kept = (
                    ""
                    if out is None or not RunDir(out).file(RunDir.LAST).exists()
                    else (f"; {RunDir(out).file(RunDir.LAST)} keeps the last finite checkpoint")
                )
                raise NonFiniteError(
                    f"training stopped at step {state['step'] + 1}: {err}{kept}"
                ) from None
            record = {**seen, "lr": lr}
            state["step"] += 1
            step = state["step"]
            record = {"split": "train", "step": step, **record}
            record["seconds"] = time.perf_counter() - started
            _append(out, record)
            bar.step(record)
            if step % config.eval_every == 0 or step == total:
                val = {
                    "split": "val",
                    "step": step,
                    **evaluate(model, val_set, loss_kind=config.loss),
                }
                val["seconds"] = time.perf_counter() - started
                val = _on_main(lambda val=val: val)  # every rank decides on rank 0's numbers
                if not all(math.isfinite(v) for v in val.values() if isinstance(v, float)):
                    raise NonFiniteError(
                        f"training stopped at step {step}: the validation metrics are not "
                        f"finite ({val}); lower the learning rate"
                    )
                _append(out, val)
                bar.validation(step, record["loss"], val)
                if state["best_val"] is None or val["loss"] < state["best_val"]["loss"]:
                    state["best_step"], state["best_val"] = step, val
                    best_theta = model.theta.detach().clone()
                    if out is not None:
                        _save_best(out, model, config, state)
                if _targets_met(config, val):
                    state["stopped"] = "target"
                state["seconds"] = time.perf_counter() - started
                if out is not None:
                    _save_checkpoint(RunDir(out).file(RunDir.LAST), model, optimiser, config, state)
    finally:
        bar.close()

    with torch.no_grad():
        model.theta.copy_(best_theta)
    summary = {
        "task": config.task,
        "parameters": model.n_params,
        "backend": str(model.backend_choice),
        "steps": state["step"],
        "total_steps": total,
        "stopped": state["stopped"] or "steps",
        "best_step": state["best_step"],
        "best_val": state["best_val"],
        "test": None,
        "seconds": state["seconds"],
        "out": None if run_dir is None else str(run_dir),
    }
    if test_set is not None:
        test = {"split": "test", "step": state["best_step"]}
        test.update(evaluate(model, test_set, loss_kind=config.loss))
        _append(out, test)
        summary["test"] = test
    if out is not None:
        RunDir(out).write_json(RunDir.SUMMARY, summary)
    return summary


def _targets_met(config: TrainConfig, val: dict[str, float]) -> bool:
    checks = []
    if config.target_loss is not None:
        checks.append(val["loss"] <= config.target_loss)
    if config.target_accuracy is not None:
        checks.append(val["accuracy"] >= config.target_accuracy)
    return bool(checks) and all(checks)


def _run_info(model: QRNN, config: TrainConfig) -> dict[str, Any]:
    return {
        "config": config.to_dict(),
        "spec": model.spec.to_dict(),
        "parameters": model.n_params,
    }


def _check_existing(out: Path | None, existing: list[str], resume: bool, overwrite: bool) -> None:
    """Refuse to resume a run that has no checkpoint, or to replace a run unasked."""
    if out is None:
        return
    held = ", ".join(existing) if existing else "no run files"
    if resume and RunDir.LAST not in existing:
        raise TrainError(
            f"cannot resume {out}: it has no checkpoint {RunDir.LAST} (it holds {held}); "
            "nothing was changed. Start a new run there with overwrite=True / --overwrite "
            "(which deletes those files), or choose another output directory"
        )
    if not resume and existing and not overwrite:
        raise TrainError(
            f"{out} already holds a run ({held}); resume it (resume=True / --resume), "
            "replace it (overwrite=True / --overwrite) or choose another output directory"
        )


def _append(out: Path | None, record: dict[str, Any]) -> None:
    if out is not None:
        RunDir(out).append_metrics(record)


def _save_checkpoint(
    path: Path,
    model: QRNN,
    optimiser: torch.optim.Optimizer,
    config: TrainConfig,
    state: dict[str, Any],
) -> None:
    ckpt = {
        "format": _CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "spec": model.spec.to_dict(),
        "optimiser": optimiser.state_dict(),
        "rng": _rng_state(),
        "config": config.to_dict(),
        "state": state,
    }
    atomic_write(path, lambda f: torch.save(ckpt, f))


def _save_best(out: Path, model: QRNN, config: TrainConfig, state: dict[str, Any]) -> None:
    ckpt = {
        "format": _CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "spec": model.spec.to_dict(),
        "config": config.to_dict(),
        "state": state,
    }
    atomic_write(RunDir(out).file(RunDir.BEST), lambda f: torch.save(ckpt, f))


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as JSON would read it back (tuples become lists), for comparisons."""
    return json.loads(json.dumps(data))


def _resume(
    out: Path,
    model: QRNN,
    optimiser: torch.optim.Optimizer,
    config: TrainConfig,
    state: dict[str, Any],
) -> torch.Tensor:
    """Restore the run in ``out``; returns the best parameters so far."""
    run_dir = RunDir(out)
    ckpt = _on_main(lambda: load_checkpoint(run_dir.file(RunDir.LAST)))
    # a run saved before a field existed ran with its default
    saved = {**_plain(TrainConfig().to_dict()), **_plain(ckpt["config"])}
    given = _plain(config.to_dict())
    changed = [k for k in _TRAJECTORY_FIELDS if saved.get(k) != given[k]]
    if changed:
        detail = ", ".join(f"{k}: saved {saved.get(k)!r}, given {given[k]!r}" for k in changed)
        raise TrainError(
            f"cannot resume {out}: the config differs from the saved run ({detail}); "
            "use the saved values or start a new run in another directory"
        )
    if ckpt["spec"] != model.spec.to_dict():
        raise TrainError(
            f"cannot resume {out}: the model's cell spec differs from the saved one "
            f"({ckpt['spec']}); build the model from the run's config.json"
        )
    model.load_state_dict(ckpt["model"])
    optimiser.load_state_dict(ckpt["optimiser"])
    _set_rng_state(ckpt["rng"])
    state.update(ckpt["state"])

    def trim_log() -> None:
        has_log = run_dir.file(RunDir.METRICS).exists()
        records = run_dir.read_metrics(strict=True) if has_log else []
        kept = [
            r for r in records if r.get("split") in ("train", "val") and r["step"] <= state["step"]
        ]
        run_dir.write_metrics(kept)

    # rank 0 reads and rewrites the log; a damaged log raises on every rank, not rank 0 only
    _on_main(trim_log)
    if state["best_step"] is None:
        return model.theta.detach().clone()
    best = _on_main(lambda: load_checkpoint(run_dir.file(RunDir.BEST)))["model"]["theta"]
    return best.to(model.theta)


def _on_main(fn: Callable[[], Any]) -> Any:
    """``fn()``; data-parallel: run on rank 0 only, result shared (qrnn_tn.distributed)."""
    group = distributed.current()
    return fn() if group is None else group.on_main(fn)

"""The hyperparameters and bookkeeping of a training run, its model, and training's errors."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from qrnn_tn.backends import check_backend_options, options_as_dict
from qrnn_tn.dtypes import DTYPE_NAMES
from qrnn_tn.errors import Error
from qrnn_tn.model import LOSS_KINDS, QRNN

__all__ = [
    "LR_SCHEDULES",
    "OPTIMISERS",
    "PENALTY_SCOPES",
    "TRAJECTORY_FIELDS",
    "NonFiniteError",
    "TrainConfig",
    "TrainError",
    "build_model",
]

#: Optimisers by name (QRNN.md §6; L-BFGS as in the paper's MNIST 3 vs 6 run).
OPTIMISERS = ("adam", "sgd", "rmsprop", "lbfgs")
#: Learning-rate schedules by name: ``constant``, or ``cosine`` decay to zero over the run.
LR_SCHEDULES = ("constant", "cosine")
#: What the overhead penalty counts: the projections of the unscored steps, or every
#: postselection (neurons too).
PENALTY_SCOPES = ("readout", "all")
#: Config fields that shape the trajectory: a resumed run must not change them.
TRAJECTORY_FIELDS = (
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


class TrainError(Error, ValueError):
    """Training cannot start or resume as asked; the message says what to change."""


class NonFiniteError(TrainError):
    """A training step met a NaN or infinity; the run stops before saving it."""


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
        """Check the backend options and keep them as a plain mapping."""
        if not isinstance(self.backend, str):
            raise TrainError(f"backend={self.backend!r}; give a backend name or 'auto'")
        resolved = check_backend_options(self.backend_options, self.backend)
        self.backend_options = options_as_dict(resolved)

    def validate(self) -> None:
        """Raise :class:`TrainError` naming the first bad field and what is accepted."""
        self._check_choices()
        self._check_counts()
        self._check_numbers()
        if not isinstance(self.task_options, dict):
            raise TrainError(f"task_options={self.task_options!r}; must be a dict of options")

    def _check_choices(self) -> None:
        choices = {
            "optimiser": OPTIMISERS,
            "lr_schedule": LR_SCHEDULES,
            "loss": LOSS_KINDS,
            "dtype": tuple(DTYPE_NAMES),
        }
        for name, accepted in choices.items():
            value = getattr(self, name)
            if value not in accepted:
                raise TrainError(f"{name}={value!r}; accepted: {', '.join(accepted)}")

    def _check_counts(self) -> None:
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

    def _check_numbers(self) -> None:
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise TrainError(f"lr={self.lr!r}; the learning rate must be a positive number")
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
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise TrainError(f"target_accuracy={self.target_accuracy!r}; must be in (0, 1]")

    def total_steps(self, n_train: int) -> int:
        """Return the optimiser steps of the run for a training set of ``n_train`` sequences."""
        if self.steps is not None:
            return self.steps
        assert self.epochs is not None  # validate() asks for one of them
        return self.epochs * math.ceil(n_train / self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain mapping (what ``config.json`` records)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Return the config of :meth:`to_dict`'s mapping; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainError(f"unknown config keys {unknown}; accepted: {', '.join(sorted(known))}")
        return cls(**data)


def build_model(spec: Any, config: TrainConfig, init: Any = None) -> QRNN:
    """Return the :class:`~qrnn_tn.model.QRNN` a run of ``config`` trains.

    It has the config's backend, backend options and dtype, and is initialised from
    ``config.seed`` (or from ``init``).
    """
    return QRNN(
        spec,
        backend=config.backend,
        dtype=DTYPE_NAMES[config.dtype],
        init=init,
        seed=config.seed,
        backend_options=config.backend_options,
    )

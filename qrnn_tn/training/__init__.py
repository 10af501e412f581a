"""Training: the loop, evaluation, run directories, metrics and data-parallel ranks.

- :class:`TrainConfig` (:mod:`~qrnn_tn.training.config`) holds a run's hyperparameters;
  :func:`build_model` makes the QRNN it trains.
- :func:`train` (:mod:`~qrnn_tn.training.loop`) trains a QRNN with a run directory and
  returns a :class:`TrainSummary`; :func:`fit` is its loop, over any model of the
  :class:`~qrnn_tn.training.protocol.SequenceModel` protocol.
- :func:`evaluate` (:mod:`~qrnn_tn.training.evaluate`) scores a model exactly and returns an
  :class:`Evaluation`.
- :class:`RunDir` (:mod:`~qrnn_tn.training.rundir`) owns a run's files; :func:`load_run`,
  :func:`load_checkpoint` and :func:`read_metrics` read them back.
- :class:`~qrnn_tn.training.metrics.StepSums` sums batch metrics, one way for training,
  evaluation and the ranks of :mod:`~qrnn_tn.training.distributed`.
"""

from qrnn_tn.training.config import (
    LR_SCHEDULES,
    OPTIMISERS,
    PENALTY_SCOPES,
    NonFiniteError,
    TrainConfig,
    TrainError,
    build_model,
)
from qrnn_tn.training.evaluate import EVAL_BATCH, evaluate
from qrnn_tn.training.loop import (
    LoopState,
    batch_at,
    fit,
    make_optimiser,
    scheduled_lr,
    train,
    train_step,
)
from qrnn_tn.training.protocol import SequenceModel, StepOutputs
from qrnn_tn.training.results import Evaluation, TrainSummary
from qrnn_tn.training.rundir import (
    RunDir,
    RunDirError,
    atomic_write,
    load_checkpoint,
    load_run,
    read_metrics,
)

__all__ = [
    "EVAL_BATCH",
    "LR_SCHEDULES",
    "OPTIMISERS",
    "PENALTY_SCOPES",
    "Evaluation",
    "LoopState",
    "NonFiniteError",
    "RunDir",
    "RunDirError",
    "SequenceModel",
    "StepOutputs",
    "TrainConfig",
    "TrainError",
    "TrainSummary",
    "atomic_write",
    "batch_at",
    "build_model",
    "evaluate",
    "fit",
    "load_checkpoint",
    "load_run",
    "make_optimiser",
    "read_metrics",
    "scheduled_lr",
    "train",
    "train_step",
]

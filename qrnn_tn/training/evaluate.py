"""Exact evaluation of a model on a data set: loss, accuracy, postselection overhead."""

from __future__ import annotations

import numpy as np
import torch

from qrnn_tn.data import SequenceDataset
from qrnn_tn.model import step_losses, step_targets
from qrnn_tn.training.config import TrainError
from qrnn_tn.training.metrics import StepSums
from qrnn_tn.training.protocol import LabelModel, SequenceModel
from qrnn_tn.training.results import Evaluation

__all__ = ["EVAL_BATCH", "as_tensors", "evaluate", "label_accuracy"]

#: Sequences per evaluation batch (no gradients are kept, so this can be large).
EVAL_BATCH = 256


@torch.no_grad()
def evaluate(
    model: SequenceModel,
    dataset: SequenceDataset,
    *,
    loss_kind: str = "nll",
    batch_size: int = EVAL_BATCH,
) -> Evaluation:
    """Return the loss, accuracy and postselection overhead of ``model`` on ``dataset``.

    The numbers are exact (no sampling); :class:`~qrnn_tn.training.Evaluation` says what
    each means. A labelled set is scored by :func:`label_accuracy`, which needs a
    :class:`~qrnn_tn.training.protocol.LabelModel`.
    """
    device = next(iter(model.parameters())).device
    sums = StepSums()
    for batch in dataset.batches(batch_size):
        words_t, mask_t, targets_t = as_tensors(*batch, device=device)
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
    means = sums.summary()
    accuracy = means["accuracy"]
    if dataset.labels is not None:
        if not isinstance(model, LabelModel):
            raise TrainError(
                f"dataset {dataset.name!r} is labelled but {type(model).__name__} gives no "
                "label distribution; evaluate it with a QRNN or drop the labels"
            )
        accuracy = label_accuracy(model, dataset, batch_size)
    return Evaluation(
        loss=means["loss"],
        accuracy=accuracy,
        overhead=means["overhead"],
        log_overhead=means["log_overhead"],
        sequences=len(dataset),
        discarded=means.get("discarded"),
    )


def as_tensors(
    words: np.ndarray,
    mask: np.ndarray,
    targets: np.ndarray | None,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Return a batch of :meth:`SequenceDataset.batches` as tensors on ``device``."""
    words_t, mask_t = torch.from_numpy(words).to(device), torch.from_numpy(mask).to(device)
    targets_t = None if targets is None else torch.from_numpy(targets).to(device)
    return words_t, mask_t, targets_t


@torch.no_grad()
def label_accuracy(model: LabelModel, dataset: SequenceDataset, batch_size: int) -> float:
    """Return the share of sequences whose most probable label (exact joint) is right.

    ``batch_size`` bounds the runs made at once: a sequence of ``k`` label steps takes
    ``2^(io (k - 1))`` runs.
    """
    if dataset.labels is None:
        raise TrainError(f"dataset {dataset.name!r} has no labels to score")
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

"""What the training loop and evaluation need from a model.

:class:`~qrnn_tn.model.QRNN` satisfies these protocols; so can any ``torch.nn.Module`` that
maps token sequences to per-step distributions (the classical baselines of the benchmarks'
long-sequence study), which then trains with the same loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch

__all__ = ["LabelModel", "SequenceModel", "StepOutputs"]


class StepOutputs(Protocol):
    """A teacher-forced run of a batch (:class:`~qrnn_tn.backends.RunResult` is one).

    ``probs [batch, steps, 2^io]`` are the per-step distributions, ``target_prob [batch,
    steps]`` the probability of the word each step was projected on, ``log_norm [batch]`` the
    log of the postselections' success (zeros for a model without them) and ``discarded
    [batch, steps]`` the weight lost to truncation (``None``: exact).
    """

    @property
    def probs(self) -> torch.Tensor:
        """Per-step distributions (differentiable)."""
        ...

    @property
    def target_prob(self) -> torch.Tensor:
        """Probability of the word each step was projected on."""
        ...

    @property
    def log_norm(self) -> torch.Tensor:
        """Log of the probability of the postselected history."""
        ...

    @property
    def discarded(self) -> torch.Tensor | None:
        """Weight each step lost to truncation, or ``None``."""
        ...


class SequenceModel(Protocol):
    """A model the loop trains: trainable parameters and a teacher-forced run.

    ``run(words [batch, L], targets=None)`` returns the :class:`StepOutputs` of the ``L - 1``
    steps; step ``t`` reads ``words[:, t]`` and predicts ``targets[:, t]`` when given, else
    ``words[:, t + 1]``.
    """

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]:
        """Return the trainable parameters."""
        ...

    def run(self, words: torch.Tensor, *, targets: torch.Tensor | None = None) -> StepOutputs:
        """Return the run of ``words`` (teacher forced)."""
        ...


@runtime_checkable
class LabelModel(Protocol):
    """A model that gives the exact joint distribution of a sequence's label words."""

    @property
    def io(self) -> int:
        """Bits per token."""
        ...

    def label_distribution(
        self, words: torch.Tensor, n_label_steps: int, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return ``[batch, 2^(io k)]``, the distribution of the last ``k`` label words."""
        ...

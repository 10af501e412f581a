"""Batch metrics, computed one way for training steps, evaluation and data-parallel ranks.

A batch contributes sums (:class:`StepSums`): its loss summed over the unmasked steps, how
many of those it predicts right, the postselection overhead ``1 / p_t(w_{t+1})`` and its
log over all postselections (``−log_norm``) summed over every step, and the largest weight a
sequence lost to bond truncation. Sums add across
batches and across ranks (an all-reduce of :meth:`StepSums.to_tensor`), and
:meth:`StepSums.summary` turns them into the metrics a run reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["StepSums"]

#: Slot of the discarded weight in :meth:`StepSums.to_tensor`; ``-1`` there means "exact".
_NO_TRUNCATION = -1.0


@dataclass(frozen=True)
class StepSums:
    """Sums over the steps of one or more batches.

    ``loss`` and ``correct`` run over the ``scored`` (unmasked) steps; ``overhead`` and
    ``log_overhead`` (``−log_norm``: every neuron's success and every projection) over all
    ``steps``; ``discarded`` is the largest weight one sequence lost to truncation over its
    steps (``None`` for an exact backend).
    """

    loss: float = 0.0
    scored: int = 0
    correct: int = 0
    overhead: float = 0.0
    steps: int = 0
    log_overhead: float = 0.0
    discarded: float | None = None

    @classmethod
    def of(
        cls,
        losses: torch.Tensor,
        probs: torch.Tensor,
        target_prob: torch.Tensor,
        scored: torch.Tensor,
        mask: torch.Tensor,
        discarded: torch.Tensor | None = None,
        log_norm: torch.Tensor | None = None,
    ) -> StepSums:
        """Return the sums of one batch.

        The inputs are per-step ``losses`` and ``probs [batch, steps, 2^io]``, the probability
        ``target_prob [batch, steps]`` of the word each step was projected on, the ``scored`` words,
        the ``mask`` of unmasked steps and the MPS's per-step ``discarded [batch, steps]`` weights
        (``None`` for exact backends), and the run's ``log_norm [batch]``
        (:class:`~qrnn_tn.backends.RunResult`; ``None``: not counted).
        """
        with torch.no_grad():
            tiny = torch.finfo(target_prob.dtype).tiny
            return cls(
                loss=float(losses[mask].sum()),
                scored=int(mask.sum()),
                correct=int((probs.argmax(-1) == scored)[mask].sum()),
                overhead=float((1 / target_prob.clamp_min(tiny)).sum()),
                steps=target_prob.numel(),
                log_overhead=0.0 if log_norm is None else -float(log_norm.sum()),
                discarded=None if discarded is None else float(discarded.sum(dim=-1).max()),
            )

    def __add__(self, other: StepSums) -> StepSums:
        """Return the sums of both; the discarded weight is the larger of the two."""
        worst = [d for d in (self.discarded, other.discarded) if d is not None]
        return StepSums(
            loss=self.loss + other.loss,
            scored=self.scored + other.scored,
            correct=self.correct + other.correct,
            overhead=self.overhead + other.overhead,
            steps=self.steps + other.steps,
            log_overhead=self.log_overhead + other.log_overhead,
            discarded=max(worst) if worst else None,
        )

    def to_tensor(self, device: torch.device | None = None) -> torch.Tensor:
        """Return ``[loss, scored, correct, overhead, steps, log_overhead, discarded]``.

        The vector is float64, for a reduction across ranks: sum all but the last
        (:meth:`from_tensors`) and take the maximum of the last.
        """
        discarded = _NO_TRUNCATION if self.discarded is None else self.discarded
        values = [
            self.loss,
            self.scored,
            self.correct,
            self.overhead,
            self.steps,
            self.log_overhead,
            discarded,
        ]
        return torch.tensor(values, dtype=torch.float64, device=device)

    @classmethod
    def from_tensors(cls, summed: torch.Tensor, maximum: torch.Tensor) -> StepSums:
        """Return the sums from :meth:`to_tensor` vectors reduced across ranks.

        ``summed`` is their reduction by sum, ``maximum`` by maximum (of which only the
        discarded weight is read).
        """
        loss, scored, correct, overhead, steps, log_overhead, _ = summed.tolist()
        discarded = float(maximum[-1])
        return cls(
            loss=loss,
            scored=round(scored),
            correct=round(correct),
            overhead=overhead,
            steps=round(steps),
            log_overhead=log_overhead,
            discarded=None if discarded == _NO_TRUNCATION else discarded,
        )

    def summary(self) -> dict[str, float]:
        """Return the means of the sums.

        ``loss`` (mean over the scored steps), ``accuracy`` (share of scored steps whose
        most probable word is the target), ``overhead`` (mean expected repetitions per
        projection on a device), ``log_overhead`` (mean per step of ``−log_norm``) and, for a
        truncating backend, ``discarded``.
        """
        out = {
            "loss": self.loss / self.scored if self.scored else math.nan,
            "accuracy": self.correct / self.scored if self.scored else math.nan,
            "overhead": self.overhead / self.steps if self.steps else math.nan,
            "log_overhead": self.log_overhead / self.steps if self.steps else math.nan,
        }
        if self.discarded is not None:
            out["discarded"] = self.discarded
        return out

"""What training and evaluation return: frozen records that read and write their JSON.

:class:`Evaluation` is one evaluation of a model on a data set (a validation or test line of
``metrics.jsonl``); :class:`TrainSummary` the outcome of a run (``summary.json``). Their
``to_json`` gives the keys those files have always had, and ``from_json`` reads them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Evaluation", "TrainSummary"]


@dataclass(frozen=True)
class Evaluation:
    """Loss, accuracy and postselection overhead of a model on a data set (exact).

    Attributes
    ----------
    loss
        Mean loss over every unmasked step of the set.
    accuracy
        For a labelled set, the share of sequences whose most probable label under the
        exact joint label distribution is right (QRNN.md §3); otherwise the share of
        unmasked steps whose most probable word is the target.
    overhead
        Mean of ``1 / p_t(w_{t+1})`` over all steps: the expected repetitions per projection
        on a device.
    log_overhead
        Mean over steps of ``−log_norm`` (every neuron's success and every projection but
        the last): the log of the repetitions a step costs without amplitude amplification.
    sequences
        Sequences in the set.
    discarded
        For a truncating backend (MPS with a bond cap), the largest weight one sequence lost
        to truncation over its steps; ``None`` for an exact backend.
    split, step, seconds
        Where the evaluation was made in a run: ``"val"`` or ``"test"``, the optimiser step
        of the parameters and the seconds since the run started (``None`` outside a run;
        a test has no seconds).
    """

    loss: float
    accuracy: float
    overhead: float
    log_overhead: float
    sequences: int
    discarded: float | None = None
    split: str | None = None
    step: int | None = None
    seconds: float | None = None

    def at(self, split: str, step: int | None, seconds: float | None = None) -> Evaluation:
        """Return this evaluation marked as made on ``split`` at ``step`` of a run."""
        return replace(self, split=split, step=step, seconds=seconds)

    def is_finite(self) -> bool:
        """Whether every number is finite (a diverged model gives NaN or infinity)."""
        values = (self.loss, self.accuracy, self.overhead, self.log_overhead, self.seconds)
        numbers = [*values, self.discarded]
        return all(math.isfinite(v) for v in numbers if v is not None)

    def to_json(self) -> dict[str, Any]:
        """Return the record as ``metrics.jsonl`` and ``summary.json`` hold it."""
        record: dict[str, Any] = {}
        if self.split is not None:
            record |= {"split": self.split, "step": self.step}
        record |= {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "overhead": self.overhead,
            "log_overhead": self.log_overhead,
        }
        if self.discarded is not None:
            record["discarded"] = self.discarded
        record["sequences"] = self.sequences
        if self.seconds is not None:
            record["seconds"] = self.seconds
        return record

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evaluation:
        """Return the evaluation of a record written by :meth:`to_json`."""
        return cls(
            loss=data["loss"],
            accuracy=data["accuracy"],
            overhead=data["overhead"],
            log_overhead=data["log_overhead"],
            sequences=data["sequences"],
            discarded=data.get("discarded"),
            split=data.get("split"),
            step=data.get("step"),
            seconds=data.get("seconds"),
        )


@dataclass(frozen=True)
class TrainSummary:
    """The outcome of a training run (``summary.json``).

    Attributes
    ----------
    task
        The config's task name.
    parameters
        Trainable parameters of the model.
    backend
        How the backend was chosen (its description).
    steps, total_steps
        Optimiser steps done, and the run's budget.
    stopped
        ``"target"`` when the validation targets were met, else ``"steps"``.
    best_step, best_val
        The step with the lowest validation loss and that validation (``None`` before any).
    test
        The evaluation of the best parameters on the test set (``None`` without one).
    seconds
        Training time (the run's time before a resume included).
    out
        The run directory, or ``None`` when nothing was kept on disk.
    """

    task: str
    parameters: int
    backend: str
    steps: int
    total_steps: int
    stopped: str
    best_step: int | None
    best_val: Evaluation | None
    test: Evaluation | None
    seconds: float
    out: str | None

    def to_json(self) -> dict[str, Any]:
        """Return the summary as ``summary.json`` holds it."""
        return {
            "task": self.task,
            "parameters": self.parameters,
            "backend": self.backend,
            "steps": self.steps,
            "total_steps": self.total_steps,
            "stopped": self.stopped,
            "best_step": self.best_step,
            "best_val": None if self.best_val is None else self.best_val.to_json(),
            "test": None if self.test is None else self.test.to_json(),
            "seconds": self.seconds,
            "out": self.out,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainSummary:
        """Return the summary of a ``summary.json`` mapping."""
        best_val, test = data.get("best_val"), data.get("test")
        return cls(
            task=data["task"],
            parameters=data["parameters"],
            backend=data["backend"],
            steps=data["steps"],
            total_steps=data["total_steps"],
            stopped=data["stopped"],
            best_step=data["best_step"],
            best_val=None if best_val is None else Evaluation.from_json(best_val),
            test=None if test is None else Evaluation.from_json(test),
            seconds=data["seconds"],
            out=data.get("out"),
        )

"""The training loop: optimiser steps, validations, early stopping, checkpoints, resume.

:func:`fit` is the loop itself, over any :class:`~qrnn_tn.training.protocol.SequenceModel`;
:func:`train` runs it for a :class:`~qrnn_tn.model.QRNN` with a run directory
(:mod:`qrnn_tn.training.rundir`, one writer at a time), exact resume and data-parallel
ranks. Data order depends only on the seed and the step (:func:`batch_at`), so a run resumed
from ``last.pt`` repeats exactly what the uninterrupted run does.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from qrnn_tn.data import SequenceDataset
from qrnn_tn.dtypes import DTYPE_NAMES
from qrnn_tn.model import QRNN, step_losses, step_targets
from qrnn_tn.training import distributed
from qrnn_tn.training.config import TRAJECTORY_FIELDS, NonFiniteError, TrainConfig, TrainError
from qrnn_tn.training.evaluate import as_tensors, evaluate
from qrnn_tn.training.metrics import StepSums
from qrnn_tn.training.progress import Progress
from qrnn_tn.training.protocol import SequenceModel, StepOutputs
from qrnn_tn.training.results import Evaluation, TrainSummary
from qrnn_tn.training.rundir import RunDir, RunDirError, load_checkpoint

__all__ = [
    "LoopLog",
    "LoopState",
    "batch_at",
    "fit",
    "make_optimiser",
    "scheduled_lr",
    "train",
    "train_step",
]


@dataclass
class LoopState:
    """Where a run stands: steps done, the best validation so far, time, why it stopped."""

    step: int = 0
    best_step: int | None = None
    best_val: Evaluation | None = None
    seconds: float = 0.0
    stopped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the state as a checkpoint holds it (plain values)."""
        return {
            "step": self.step,
            "best_step": self.best_step,
            "best_val": None if self.best_val is None else self.best_val.to_json(),
            "seconds": self.seconds,
            "stopped": self.stopped,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        """Return the state of a checkpoint's ``state`` mapping."""
        best_val = data.get("best_val")
        return cls(
            step=data["step"],
            best_step=data.get("best_step"),
            best_val=None if best_val is None else Evaluation.from_json(best_val),
            seconds=data.get("seconds", 0.0),
            stopped=data.get("stopped"),
        )


class LoopLog(Protocol):
    """Where :func:`fit` keeps a run: its metrics log and checkpoints."""

    def append(self, record: dict[str, Any]) -> None:
        """Append a metrics record (a training step, a validation, the test)."""

    def save_best(self, state: LoopState) -> None:
        """Keep the model's parameters as the best so far."""

    def save_last(self, state: LoopState) -> None:
        """Keep everything a resume needs (after a validation)."""

    def failure_note(self) -> str:
        """Return what to add to an error that stops the run (where its last state is)."""


def scheduled_lr(config: TrainConfig, step: int, total: int) -> float:
    """Return the learning rate of optimiser step ``step`` (0-based) of ``total``."""
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
    return config.lr


def batch_at(
    dataset: SequenceDataset, batch_size: int, seed: int, step: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Return the batch of optimiser step ``step`` (0-based): a function of seed and step only.

    Each epoch is a shuffle of the set seeded by ``(seed, epoch)``.
    """
    per_epoch = math.ceil(len(dataset) / batch_size)
    epoch, index = divmod(step, per_epoch)
    epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    batches = dataset.batches(batch_size, shuffle=True, seed=epoch_seed)
    for _ in range(index):
        next(batches)
    return as_tensors(*next(batches))


def make_optimiser(config: TrainConfig, model: SequenceModel) -> torch.optim.Optimizer:
    """Return the optimiser ``config.optimiser`` over the model's parameters."""
    params = model.parameters()
    if config.optimiser == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    if config.optimiser == "sgd":
        return torch.optim.SGD(params, lr=config.lr)
    if config.optimiser == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr)
    return torch.optim.LBFGS(params, lr=config.lr, line_search_fn="strong_wolfe")


# --------------------------------------------------------------------------- one step


def _require_finite(what: str, value: torch.Tensor | None) -> None:
    """Raise :class:`NonFiniteError` if ``value`` holds a NaN or infinity."""
    if value is not None and not bool(torch.isfinite(value.detach()).all()):
        raise NonFiniteError(
            f"{what}: not finite (NaN or infinity); lower the learning rate or the "
            "initial parameter scale ([init] of the spec), or add gradient clipping"
        )


def _norm(tensors: list[torch.Tensor]) -> float:
    """Return the Euclidean norm of all entries of ``tensors``."""
    return float(torch.linalg.vector_norm(torch.cat([t.reshape(-1) for t in tensors])))


def _penalty(
    config: TrainConfig, result: StepOutputs, log_overhead: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Return the overhead penalty's term (before its weight).

    The mean ``−log p_t(v_t)`` of the projections of the unscored steps (``"readout"``), or
    the mean per-step ``−log_norm`` (``"all"``: neurons and projections).
    """
    if config.overhead_penalty_scope == "all":
        return log_overhead
    unscored = ~mask
    if not bool(unscored.any()):
        return log_overhead.new_zeros(())
    p = result.target_prob[unscored]
    return -torch.log(p.clamp_min(torch.finfo(p.dtype).tiny)).mean()


def train_step(
    model: SequenceModel,
    optimiser: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    config: TrainConfig,
    ddp: DistributedDataParallel | None = None,
) -> dict[str, float]:
    """Make one optimiser step on ``batch`` (words, mask, targets) and check it is finite.

    Returns the batch's metrics before the step (loss, accuracy, overhead, log-overhead and,
    truncating, the discarded weight) and the norms of the parameters and of the gradient.
    ``ddp`` is the data-parallel wrapper (:mod:`qrnn_tn.training.distributed`). Raises
    :class:`~qrnn_tn.training.NonFiniteError` on a NaN or infinity.
    """
    words, mask, targets = batch
    seen: dict[str, float] = {}
    params = list(model.parameters())

    def closure() -> float:
        optimiser.zero_grad()
        group = distributed.current()
        if ddp is not None and group is not None:  # this rank's shard
            return float(group.loss_backward(ddp, words, mask, targets, config.loss, seen))
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
        for p in params:
            _require_finite("the gradient", p.grad)
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
            seen["theta_norm"] = _norm([p.detach() for p in params])
            seen["grad_norm"] = _norm([p.grad for p in params if p.grad is not None])
        return float(loss.detach())  # what L-BFGS reads

    if config.optimiser == "lbfgs":
        optimiser.step(closure)
    else:
        closure()
        if config.clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.clip)
        optimiser.step()
    for p in params:
        _require_finite("the parameters after the step", p)
    return seen


# --------------------------------------------------------------------------- the loop


def _snapshot(model: SequenceModel) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _on_main(fn: Callable[[], Any]) -> Any:
    """Return ``fn()``; data-parallel: run on rank 0 only, the result shared with all."""
    group = distributed.current()
    return fn() if group is None else group.on_main(fn)


def _targets_met(config: TrainConfig, val: Evaluation) -> bool:
    checks = []
    if config.target_loss is not None:
        checks.append(val.loss <= config.target_loss)
    if config.target_accuracy is not None:
        checks.append(val.accuracy >= config.target_accuracy)
    return bool(checks) and all(checks)


class _Loop:
    """The state of :func:`fit` while it runs."""

    def __init__(
        self,
        model: SequenceModel,
        val_set: SequenceDataset,
        config: TrainConfig,
        state: LoopState,
        log: LoopLog | None,
        best: list[torch.Tensor],
    ) -> None:
        self.model, self.val_set, self.config = model, val_set, config
        self.state, self.log, self.best = state, log, best
        self.started = time.perf_counter() - state.seconds

    def record(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.append(record)

    def step(
        self,
        train_set: SequenceDataset,
        optimiser: torch.optim.Optimizer,
        total: int,
        ddp: DistributedDataParallel | None,
    ) -> dict[str, Any]:
        """Make the next optimiser step and log it; return its metrics record."""
        config, state = self.config, self.state
        batch = batch_at(train_set, config.batch_size, config.seed, state.step)
        lr = scheduled_lr(config, state.step, total)
        for param_group in optimiser.param_groups:
            param_group["lr"] = lr
        try:
            seen = train_step(self.model, optimiser, batch, config, ddp)
        except NonFiniteError as err:
            kept = "" if self.log is None else self.log.failure_note()
            raise NonFiniteError(
                f"training stopped at step {state.step + 1}: {err}{kept}"
            ) from None
        state.step += 1
        record = {"split": "train", "step": state.step, **seen, "lr": lr}
        record["seconds"] = time.perf_counter() - self.started
        self.record(record)
        return record

    def validate(self, train_loss: float, bar: Progress) -> None:
        """Validate, keep the best parameters, decide whether to stop, checkpoint."""
        state, step = self.state, self.state.step
        val = evaluate(self.model, self.val_set, loss_kind=self.config.loss)
        val = val.at("val", step, time.perf_counter() - self.started)
        val = _on_main(lambda: val)  # every rank decides on rank 0's numbers
        if not val.is_finite():
            raise NonFiniteError(
                f"training stopped at step {step}: the validation metrics are not "
                f"finite ({val.to_json()}); lower the learning rate"
            )
        self.record(val.to_json())
        bar.validation(step, train_loss, val)
        if state.best_val is None or val.loss < state.best_val.loss:
            state.best_step, state.best_val = step, val
            self.best = _snapshot(self.model)
            if self.log is not None:
                self.log.save_best(state)
        if _targets_met(self.config, val):
            state.stopped = "target"
        state.seconds = time.perf_counter() - self.started
        if self.log is not None:
            self.log.save_last(state)


def fit(
    model: SequenceModel,
    train_set: SequenceDataset,
    val_set: SequenceDataset,
    config: TrainConfig,
    *,
    optimiser: torch.optim.Optimizer | None = None,
    state: LoopState | None = None,
    best: list[torch.Tensor] | None = None,
    log: LoopLog | None = None,
    ddp: DistributedDataParallel | None = None,
    progress: bool = False,
) -> LoopState:
    """Train ``model`` in place until ``config``'s steps or targets; it ends on the best.

    Every ``config.eval_every`` steps and at the last, ``model`` is evaluated on
    ``val_set``; at the end it holds the parameters of the lowest validation loss. The
    loop continues ``state`` (default: a new run) with ``optimiser`` (default:
    :func:`make_optimiser`) from the ``best`` parameters so far (default: the current
    ones); ``log`` keeps the records and checkpoints, ``ddp`` is the data-parallel wrapper
    (:mod:`qrnn_tn.training.distributed`), ``progress`` shows a bar or log lines.

    Returns
    -------
    LoopState
        Steps done, the best step and its validation, seconds, and ``stopped``
        (``"target"`` when the targets were met, else ``None``).
    """
    config.validate()
    total = config.total_steps(len(train_set))
    optimiser = make_optimiser(config, model) if optimiser is None else optimiser
    state = LoopState() if state is None else state
    loop = _Loop(model, val_set, config, state, log, _snapshot(model) if best is None else best)
    bar = Progress(total, state.step, config.task, progress)
    try:
        while state.step < total and state.stopped is None:
            record = loop.step(train_set, optimiser, total, ddp)
            bar.step(record)
            if state.step % config.eval_every == 0 or state.step == total:
                loop.validate(record["loss"], bar)
    finally:
        bar.close()
    with torch.no_grad():
        for param, value in zip(model.parameters(), loop.best, strict=True):
            param.copy_(value)
    return state


# --------------------------------------------------------------------------- a QRNN run


def _rng_state() -> dict[str, Any]:
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())  # noqa: NPY002
    kind, keys, pos, has_gauss, cached = legacy
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


class _RunLog:
    """A :class:`LoopLog` writing a run directory (rank 0 of a data-parallel run)."""

    def __init__(
        self, files: RunDir, model: QRNN, optimiser: torch.optim.Optimizer, config: TrainConfig
    ) -> None:
        self.files, self.model, self.optimiser, self.config = files, model, optimiser, config

    def append(self, record: dict[str, Any]) -> None:
        self.files.append_metrics(record)

    def save_best(self, state: LoopState) -> None:
        self.files.save_checkpoint(
            RunDir.BEST,
            {
                "model": self.model.state_dict(),
                "spec": self.model.spec.to_dict(),
                "config": self.config.to_dict(),
                "state": state.to_dict(),
            },
        )

    def save_last(self, state: LoopState) -> None:
        self.files.save_checkpoint(
            RunDir.LAST,
            {
                "model": self.model.state_dict(),
                "spec": self.model.spec.to_dict(),
                "optimiser": self.optimiser.state_dict(),
                "rng": _rng_state(),
                "config": self.config.to_dict(),
                "state": state.to_dict(),
            },
        )

    def failure_note(self) -> str:
        last = self.files.file(RunDir.LAST)
        return f"; {last} keeps the last finite checkpoint" if last.exists() else ""


def _check_model(model: QRNN, config: TrainConfig, resume: bool) -> None:
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


def _check_dataset(role: str, dataset: SequenceDataset, model: QRNN) -> None:
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
    runs = 2 ** (model.io * (dataset.n_label_steps - 1))
    if dataset.labels is not None and runs > 4096:
        raise TrainError(
            f"{role} set {dataset.name!r}: {dataset.n_label_steps} label steps of "
            f"{model.io} bits need {runs} runs per sequence for the exact label "
            "distribution; use fewer label steps"
        )


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


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Return ``data`` as JSON would read it back (tuples become lists), for comparisons."""
    result: dict[str, Any] = json.loads(json.dumps(data))
    return result


def _check_resumable(out: Path, ckpt: dict[str, Any], model: QRNN, config: TrainConfig) -> None:
    """Refuse to resume with another trajectory or another cell than the saved run's."""
    # a run saved before a field existed ran with its default
    saved = {**_plain(TrainConfig().to_dict()), **_plain(ckpt["config"])}
    given = _plain(config.to_dict())
    changed = [k for k in TRAJECTORY_FIELDS if saved.get(k) != given[k]]
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


def _resume(
    out: Path, model: QRNN, optimiser: torch.optim.Optimizer, config: TrainConfig
) -> tuple[LoopState, list[torch.Tensor]]:
    """Restore the run in ``out``; return its state and the best parameters so far."""
    run_dir = RunDir(out)
    ckpt = _on_main(lambda: load_checkpoint(run_dir.file(RunDir.LAST)))
    _check_resumable(out, ckpt, model, config)
    model.load_state_dict(ckpt["model"])
    optimiser.load_state_dict(ckpt["optimiser"])
    _set_rng_state(ckpt["rng"])
    state = LoopState.from_dict(ckpt["state"])

    def trim_log() -> None:
        has_log = run_dir.file(RunDir.METRICS).exists()
        records = run_dir.read_metrics(strict=True) if has_log else []
        kept = [
            r for r in records if r.get("split") in ("train", "val") and r["step"] <= state.step
        ]
        run_dir.write_metrics(kept)

    # rank 0 reads and rewrites the log; a damaged log raises on every rank, not rank 0 only
    _on_main(trim_log)
    if state.best_step is None:
        return state, _snapshot(model)
    saved = _on_main(lambda: load_checkpoint(run_dir.file(RunDir.BEST)))["model"]
    return state, [saved[name].to(p) for name, p in model.named_parameters()]


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
) -> TrainSummary:
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
    TrainSummary
        The outcome, also written to ``summary.json``.

    Raises
    ------
    RunDirError
        If another process is writing ``config.out`` (its lock), or its files are damaged.
    """
    with _holding(None if config.out is None else RunDir(config.out)):
        return _train(
            model, train_set, val_set, config, test_set, resume, overwrite, progress=progress
        )


def _start(
    out: Path | None,
    model: QRNN,
    optimiser: torch.optim.Optimizer,
    config: TrainConfig,
    resume: bool,
) -> tuple[LoopState, list[torch.Tensor]]:
    """Resume the run in ``out``, or seed the random generators and start a new one."""
    if resume:
        assert out is not None  # _check_model asks for it
        return _resume(out, model, optimiser, config)
    best = _snapshot(model)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)  # noqa: NPY002 (the global state)
    random.seed(config.seed)
    if out is not None and distributed.is_main():
        files = RunDir(out)
        files.clear()
        run_info = {
            "config": config.to_dict(),
            "spec": model.spec.to_dict(),
            "parameters": model.n_params,
        }
        files.write_json(RunDir.CONFIG, run_info)
        files.start_metrics()
    return LoopState(), best


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
) -> TrainSummary:
    """Run :func:`train` with the run directory locked."""
    _check_model(model, config, resume)
    for role, dataset in (("train", train_set), ("validation", val_set), ("test", test_set)):
        if dataset is not None:
            _check_dataset(role, dataset, model)
    out = Path(config.out) if config.out is not None else None
    group = distributed.current()  # data-parallel: DDP wrapper; None in one process
    if group is not None and config.overhead_penalty > 0:
        raise TrainError(
            "overhead_penalty is not supported with data-parallel training (--distributed); "
            "train in one process or set overhead_penalty=0"
        )
    ddp = group.wrap(model) if group is not None else None
    optimiser = make_optimiser(config, model)
    existing = [] if out is None else _on_main(RunDir(out).existing)
    _check_existing(out, existing, resume, overwrite)
    state, best = _start(out, model, optimiser, config, resume)
    main = distributed.is_main()
    log = _RunLog(RunDir(out), model, optimiser, config) if out is not None and main else None
    fit(
        model,
        train_set,
        train_set if val_set is None else val_set,
        config,
        optimiser=optimiser,
        state=state,
        best=best,
        log=log,
        ddp=ddp,
        progress=progress and main,
    )
    test = None
    if test_set is not None:
        test = evaluate(model, test_set, loss_kind=config.loss).at("test", state.best_step)
        if log is not None:
            log.append(test.to_json())
    summary = TrainSummary(
        task=config.task,
        parameters=model.n_params,
        backend=str(model.backend_choice),
        steps=state.step,
        total_steps=config.total_steps(len(train_set)),
        stopped=state.stopped or "steps",
        best_step=state.best_step,
        best_val=state.best_val,
        test=test,
        seconds=state.seconds,
        out=None if out is None else str(out),
    )
    if log is not None:
        log.files.write_summary(summary)
    return summary

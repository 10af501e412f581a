"""Data-parallel training over a ``torch.distributed`` process group (``torchrun``).

Launch ``qrnn-tn train … --distributed`` (or a script calling :func:`qrnn_tn.training.train`
inside :func:`session`) under ``torchrun --nproc-per-node N``. Each rank takes the rows
``rank::world`` of every global batch, so the ranks together see exactly the batch one
process would; the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`
and each rank's loss is weighted by its share of the batch's unmasked steps, so the averaged
gradient is the one-process gradient of the batch's mean loss. Metrics and checkpoints are
written by rank 0 only; a resumed run loads rank 0's checkpoint on every rank.

The group uses gloo on CPU and nccl when CUDA is present (the model then moves to
``cuda:LOCAL_RANK``). Init, barriers and collectives time out after ``timeout`` seconds
(environment ``QRNN_TN_DIST_TIMEOUT``, default 300); a rank that fails makes the others
stop with :class:`DistributedError` instead of hanging.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from qrnn_tn.errors import Error
from qrnn_tn.model import QRNN, step_losses, step_targets
from qrnn_tn.training.metrics import StepSums

__all__ = [
    "DistributedError",
    "Group",
    "init",
    "session",
    "current",
    "rank",
    "world_size",
    "is_main",
    "shard",
    "DEFAULT_TIMEOUT",
]

T = TypeVar("T")

#: Seconds a rank waits for the others (init, barrier, collectives) before giving up.
DEFAULT_TIMEOUT = float(os.environ.get("QRNN_TN_DIST_TIMEOUT", "300"))
_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class RunOutputs(nn.Module):
    """A :class:`~qrnn_tn.model.QRNN` whose forward returns tensors DDP can carry.

    ``probs``, ``target_prob``, ``log_norm`` and the discarded weights (an empty tensor for
    an exact backend), for :class:`DistributedDataParallel`.
    """

    def __init__(self, model: QRNN) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, words: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        result = self.model.run(words, targets=targets)
        discarded = result.probs.new_zeros(0) if result.discarded is None else result.discarded
        return result.probs, result.target_prob, result.log_norm, discarded


class DistributedError(Error, RuntimeError):
    """The process group cannot start, or a rank failed; the message says which and why."""


@dataclass
class Group:
    """The place of a process in the data-parallel group (see :func:`init`)."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    timeout: float
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, which writes the run directory."""
        return self.rank == 0

    # ------------------------------------------------------------------ model

    def wrap(self, model: QRNN) -> DistributedDataParallel:
        """``model`` (moved to this rank's device) in DDP; parameters start from rank 0's.

        DDP runs :class:`RunOutputs` around it, so a rank sees the whole run (the target
        probabilities and the MPS's discarded weights too), not only the distributions.
        """
        if model.theta.device != self.device:
            model.to(self.device)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(RunOutputs(model), device_ids=device_ids)

    def loss_backward(
        self,
        ddp: DistributedDataParallel,
        words: torch.Tensor,
        mask: torch.Tensor,
        targets: torch.Tensor | None,
        loss_kind: str,
        seen: dict[str, float],
    ) -> torch.Tensor:
        """Run forward and backward on this rank's shard of the global batch.

        The batch is ``words, mask`` with its target stream ``targets`` (or ``None``: see
        :meth:`QRNN.forward`).

        The gradients left in the parameters (averaged by DDP) equal the one-process
        gradient of the mean loss over the batch's unmasked steps. Returns that global mean
        loss (the same value on every rank, as L-BFGS needs). On the first call per step it
        fills ``seen`` with the global batch's loss, accuracy, overhead and gradient norm.
        """
        device = self.device
        words, mask = words.to(device), mask.to(device)
        scored = step_targets(words, targets if targets is None else targets.to(device))
        n_global = int(mask.sum())
        local_words, local_mask = shard(words, mask, self.rank, self.world_size)
        local_scored = shard(scored, mask, self.rank, self.world_size)[0]
        weight = self.world_size / n_global  # DDP divides the summed gradients by the world
        if local_words.shape[0] == 0:  # fewer rows than ranks: join the all-reduce with 0
            local_words, local_mask, local_scored, weight = words[:1], mask[:1], scored[:1], 0.0
        targets = None if targets is None else local_scored
        probs, target_prob, log_norm, discarded = ddp(local_words, targets)
        losses = step_losses(probs, local_scored, loss_kind)
        local_sum = losses[local_mask].sum()
        (local_sum * weight).backward()
        local = StepSums.of(
            losses,
            probs,
            target_prob,
            local_scored,
            local_mask,
            discarded if discarded.numel() else None,
            log_norm,
        )
        if weight:
            summed, maximum = local.to_tensor(device), local.to_tensor(device)
        else:  # a rank without rows adds nothing and reads "exact" in the maximum
            maximum = StepSums().to_tensor(device)
            summed = torch.zeros_like(maximum)
        dist.all_reduce(summed)
        dist.all_reduce(maximum, op=dist.ReduceOp.MAX)
        sums = StepSums.from_tensors(summed, maximum)
        if not seen:
            seen.update(sums.summary())
            theta = ddp.module.model.theta
            seen["theta_norm"] = float(torch.linalg.vector_norm(theta.detach()))
            seen["grad_norm"] = float(torch.linalg.vector_norm(theta.grad))
        return torch.tensor(sums.loss / n_global, dtype=probs.real.dtype, device=device)

    # ------------------------------------------------------------------ coordination

    def on_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only, its result (or its exception) given to every rank."""
        payload: list[Any] = [None]
        if self.is_main:
            try:
                payload[0] = ("ok", fn())
            except Exception as err:  # handed to every rank, raised there
                payload[0] = ("error", err)
        dist.broadcast_object_list(payload, src=0, device=self._object_device())
        kind, value = payload[0]
        if kind == "error":
            raise value
        return value

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (decisions such as stopping early)."""
        return bool(self.on_main(lambda: flag))

    def barrier(self) -> None:
        """Wait for every rank, at most ``timeout`` seconds (gloo names the late rank)."""
        if self.backend == "gloo":
            dist.monitored_barrier(timeout=timedelta(seconds=self.timeout))
        else:
            dist.barrier()

    def _object_device(self) -> torch.device | None:
        return self.device if self.backend == "nccl" else None


_GROUP: Group | None = None


def current() -> Group | None:
    """Return the active :class:`Group`, or ``None`` when not training data-parallel."""
    return _GROUP


def rank() -> int:
    """Return the rank of this process in the data-parallel group (0 in one process)."""
    return 0 if _GROUP is None else _GROUP.rank


def world_size() -> int:
    """Return the number of processes in the data-parallel group (1 in one process)."""
    return 1 if _GROUP is None else _GROUP.world_size


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0, or the only process)."""
    return _GROUP is None or _GROUP.is_main


def shard(
    words: torch.Tensor, mask: torch.Tensor, rank: int, world_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s rows ``rank::world_size`` of a global batch (may be empty)."""
    return words[rank::world_size], mask[rank::world_size]


def init(*, backend: str | None = None, timeout: float | None = None) -> Group:
    """Join the process group described by torchrun's environment variables.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
    ``backend``: ``"gloo"`` or ``"nccl"`` (default: nccl when CUDA is present, else gloo).
    """
    global _GROUP
    if _GROUP is not None:
        return _GROUP
    missing = [name for name in _ENV if name not in os.environ]
    if missing:
        raise DistributedError(
            f"--distributed needs the environment torchrun sets ({', '.join(missing)} "
            "missing); launch with e.g. `torchrun --nproc-per-node 2 --no-python qrnn-tn train …"
            " --distributed`"
        )
    timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    rank_, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank_))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise DistributedError(f"backend={backend!r}; accepted: gloo, nccl")
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=rank_,
            world_size=world,
            timeout=timedelta(seconds=timeout),
        )
    except Exception as err:
        raise DistributedError(
            f"rank {rank_}: could not join the {world}-process group at "
            f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} within {timeout:g} s "
            f"({type(err).__name__}: {err})"
        ) from err
    _GROUP = Group(rank_, world, local_rank, backend, timeout, device)
    return _GROUP


def shutdown() -> None:
    """Leave the process group (safe to call when none is active)."""
    global _GROUP
    _GROUP = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def session(*, backend: str | None = None, timeout: float | None = None) -> Iterator[Group]:
    """:func:`init`, run the body, wait for every rank, and leave the group.

    If the body raises on this rank, the group is torn down so that the other ranks'
    collectives fail promptly; a rank that lost its peers raises :class:`DistributedError`
    naming itself and the cause.
    """
    group = init(backend=backend, timeout=timeout)
    try:
        group.barrier()
        yield group
        group.barrier()
    except DistributedError:
        raise
    except Exception as err:
        if _is_group_failure(err):
            raise DistributedError(
                f"rank {group.rank}/{group.world_size}: the process group failed; another "
                f"rank stopped or did not answer within {group.timeout:g} s "
                f"({type(err).__name__}: {err})"
            ) from err
        print(
            f"qrnn-tn: rank {group.rank}/{group.world_size} failed "
            f"({type(err).__name__}: {err}); stopping the group",
            file=sys.stderr,
            flush=True,
        )
        raise
    finally:
        shutdown()


def _is_group_failure(err: BaseException) -> bool:
    dist_error = getattr(dist, "DistError", None)
    if dist_error is not None and isinstance(err, dist_error):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(
        key in text for key in ("gloo", "nccl", "connection", "timed out", "timeout", "peer")
    )

"""Contracting the slices of a tree on an executor.

``run_on_executor(contraction, arrays, executor)`` submits every slice of a (sliced)
contraction to ``executor`` -- any :class:`concurrent.futures.Executor`, or anything with a
``submit`` returning futures with ``result()`` such as a ``dask.distributed.Client`` -- and
sums the slice results exactly: each slice returns ``(mantissa, log_scale)``, and the sum
rescales every mantissa to the largest log-scale before adding.

The sum is a :class:`torch.autograd.Function`. Its backward submits, per slice, the
vector-Jacobian product of that slice with respect to the leaves: the worker recomputes its
slice with gradients (the rescaling factors are constants there, as in the local run) and
returns the leaves' gradients, which are summed. Each slice is linear in every leaf, so the
sum of the slice gradients is the exact gradient.

Workers receive only detached CPU tensors, the compiled :class:`Contraction` (picklable: a
cotengra tree and its einsum steps) and the slice index. On a dask cluster the contraction and
the leaves are scattered once per pass and every slice task refers to them, so they cross the
network once per worker rather than once per slice. A failing slice (its future raising,
a dead worker, a refused submission) raises :class:`BackendError` naming the slice and the
cause; remaining futures are cancelled, never partially summed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

from qrnn_tn.backends.base import BackendError
from qrnn_tn.backends.tensornet.contract import Contraction, sum_rescaled

__all__ = ["run_on_executor", "slice_forward", "slice_vjp"]


def _slice_result(
    contraction: Contraction, arrays: list[torch.Tensor], index: int, segmented: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    tree = contraction.tree
    sliced = tree.slice_arrays(arrays, index) if tree.nslices > 1 else arrays
    return contraction._core(*sliced, segmented=segmented and len(contraction.segments) > 1)


def slice_forward(
    contraction: Contraction, arrays: list[torch.Tensor], index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Worker task: ``(mantissa, log_scale)`` of slice ``index``, without gradients."""
    with torch.no_grad():
        return _slice_result(contraction, arrays, index, segmented=False)


def slice_vjp(
    contraction: Contraction,
    arrays: list[torch.Tensor],
    needs: list[bool],
    index: int,
    top: torch.Tensor,
    grad_out: torch.Tensor,
) -> list[torch.Tensor | None]:
    """Worker task: gradients of ``<grad_out, mantissa_i * exp(log_i - top)>`` for the leaves.

    Recomputes slice ``index`` (checkpointed by segment when the tree has several) and returns
    one gradient per leaf, ``None`` where ``needs`` is false or the leaf is unused.
    """
    with torch.enable_grad():
        leaves = [a.detach().requires_grad_(n) for a, n in zip(arrays, needs, strict=True)]
        mantissa, log = _slice_result(contraction, leaves, index, segmented=True)
        weight = torch.exp(log.detach() - top).to(mantissa.dtype)
        out = mantissa * weight.reshape(-1, *([1] * (mantissa.dim() - 1)))
        wanted = [a for a in leaves if a.requires_grad]
        if not wanted or not out.requires_grad:
            return [None] * len(leaves)
        grads = iter(torch.autograd.grad(out, wanted, grad_out, allow_unused=True))
    return [next(grads) if a.requires_grad else None for a in leaves]


def _is_dask(executor: Any) -> bool:
    return type(executor).__module__.split(".")[0] == "distributed"


#: What a slice task returns.
R = TypeVar("R")


def _submit(executor: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """``executor.submit``; dask clients get ``pure=False`` (no hashing of the tensors)."""
    if _is_dask(executor):
        return executor.submit(fn, *args, pure=False)
    return executor.submit(fn, *args)


def _shared(executor: Any, what: str, *objects: Any) -> tuple[Any, ...]:
    """``objects`` stored once on a dask cluster (futures its tasks resolve), else as given."""
    if not _is_dask(executor):
        return objects
    try:
        return tuple(executor.scatter(list(objects), hash=False))
    except Exception as err:
        cause = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise BackendError(
            f"tensornet: could not send the contraction and leaves ({what}) to the dask "
            f"cluster: {cause}"
        ) from err


def _gather(
    executor: Any, fn: Callable[..., R], per_slice: list[tuple[Any, ...]], what: str
) -> list[R]:
    """Submit ``fn(*args)`` for each slice's args and collect results in order, or raise."""
    n = len(per_slice)
    futures = []
    try:
        for index, args in enumerate(per_slice):
            try:
                futures.append(_submit(executor, fn, *args))
            except Exception as err:
                raise _failure(index, n, what, "could not be submitted", err) from err
        results = []
        for index, future in enumerate(futures):
            try:
                results.append(future.result())
            except BaseException as err:
                if isinstance(err, KeyboardInterrupt):
                    raise
                raise _failure(index, n, what, "failed on the executor", err) from err
        return results
    except BaseException:
        for future in futures:
            cancel = getattr(future, "cancel", None)
            if cancel is not None:
                try:
                    cancel()
                except Exception:  # pragma: no cover - best effort
                    pass
        raise


def _failure(index: int, n: int, what: str, how: str, err: BaseException) -> BackendError:
    cause = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return BackendError(f"tensornet: slice {index} of {n} ({what}) {how}: {cause}")


def _combine(results: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """Exact sum of rescaled slices: every mantissa scaled to the largest log-scale."""
    if len(results) == 1:
        mantissa, log = results[0]
        return mantissa, log, log
    logs = torch.stack([log for _, log in results])
    top = logs.max(0).values
    return sum_rescaled(results, top), top, top


class _SliceSum(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, contraction: Contraction, executor: Any, *arrays: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        leaves = [a.detach().cpu() for a in arrays]
        n = contraction.tree.nslices
        shared = _shared(executor, "forward", contraction, leaves)
        results = _gather(executor, slice_forward, [(*shared, i) for i in range(n)], "forward")
        device = arrays[0].device if arrays else torch.device("cpu")
        results = [(m.to(device), s.to(device)) for m, s in results]
        total, top, _ = _combine(results)
        ctx.contraction, ctx.executor = contraction, executor
        ctx.leaves, ctx.top = leaves, top.detach().cpu()
        ctx.devices = [a.device for a in arrays]
        ctx.mark_non_differentiable(top)
        return total, top

    @staticmethod
    def backward(
        ctx: Any, grad_mantissa: torch.Tensor | None, _grad_log: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        needs = list(ctx.needs_input_grad[2:])
        none = (None, None)
        if grad_mantissa is None or not any(needs):
            return none + (None,) * len(needs)
        contraction = ctx.contraction
        g = grad_mantissa.detach().cpu()
        remote, leaves, top, g = _shared(
            ctx.executor, "backward", contraction, ctx.leaves, ctx.top, g
        )
        per_slice = [(remote, leaves, needs, i, top, g) for i in range(contraction.tree.nslices)]
        results = _gather(ctx.executor, slice_vjp, per_slice, "backward")
        grads: list[torch.Tensor | None] = [None] * len(needs)
        for slice_grads in results:
            for k, grad in enumerate(slice_grads):
                if grad is not None:
                    so_far = grads[k]
                    grads[k] = grad if so_far is None else so_far + grad
        grads = [
            None if grad is None else grad.to(device)
            for grad, device in zip(grads, ctx.devices, strict=True)
        ]
        return none + tuple(grads)


def run_on_executor(
    contraction: Contraction, arrays: list[torch.Tensor], executor: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mantissa, log_scale)`` of ``contraction``, its slices contracted on ``executor``.

    Differentiable in ``arrays`` (backward also runs on ``executor``); the log-scale is not.
    """
    if not callable(getattr(executor, "submit", None)):
        raise BackendError(
            f"executor must have a submit() method (a concurrent.futures.Executor or a "
            f"dask.distributed.Client); got {type(executor).__name__}"
        )
    return _SliceSum.apply(contraction, executor, *arrays)

"""Intra-op threads of a backend run, scoped to the run and its backward pass.

torch's intra-op thread count is one process-wide setting. A backend that knows its
operators are small (the MPS's site tensors at bonds up to 32) runs them fastest on one
thread: a second thread costs more in hand-over than it saves, and on a machine whose
cores are busy with other work it makes a run several times slower
(``python -m benchmarks.mps_training --parts threads``). :func:`run_threads` changes the
setting for the duration of a forward run and :func:`backward_threads` marks a run's graph
so that its backward pass gets the same count; both give the caller's setting back
afterwards, so a library user's :func:`torch.set_num_threads` is never changed behind their
back.

The backward scope starts when the gradient enters a run's outputs and ends when it leaves
through the run's parameters; scopes nest (two runs in one graph restore the caller's count
once both are done). A backward pass that stops before the parameters (an error, or
:func:`torch.autograd.grad` with respect to an intermediate tensor only) leaves the run's
count in place: :func:`torch.set_num_threads` sets yours again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["run_threads", "backward_threads", "scope_depth"]

_lock = threading.Lock()
_depth = 0
_saved = 0


def _enter(threads: int) -> None:
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = torch.get_num_threads()
        _depth += 1
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _leave() -> None:
    global _depth
    with _lock:
        if _depth == 0:
            return
        _depth -= 1
        if _depth == 0 and torch.get_num_threads() != _saved:
            torch.set_num_threads(_saved)


def scope_depth() -> int:
    """Open scopes (forward runs in progress plus backward passes entered, not left)."""
    return _depth


@contextmanager
def run_threads(threads: int) -> Iterator[None]:
    """Run the body on ``threads`` intra-op threads; the caller's setting afterwards."""
    _enter(threads)
    try:
        yield
    finally:
        _leave()


class _Token:
    """Whether a run's backward scope is open (so each pass enters and leaves once)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.open = False


class _Leave(torch.autograd.Function):
    """Identity on a run's parameters.

    Its backward, the last of the run's nodes, ends the backward scope.
    """

    @staticmethod
    def forward(ctx: Any, token: _Token, params: torch.Tensor) -> torch.Tensor:
        ctx.token = token
        return params.view_as(params)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        if ctx.token.open:
            ctx.token.open = False
            _leave()
        return None, grad


class _Enter(torch.autograd.Function):
    """Identity on a run's outputs.

    Its backward, the first of the run's nodes, opens the backward scope with ``threads``.
    """

    @staticmethod
    def forward(ctx: Any, token: _Token, *outputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.token = token
        ctx.set_materialize_grads(False)
        return tuple(o.view_as(o) for o in outputs)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        if not ctx.token.open:
            ctx.token.open = True
            _enter(ctx.token.threads)
        return (None, *grads)


def backward_threads(
    threads: int,
    params: torch.Tensor,
    run: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
) -> tuple[torch.Tensor, ...]:
    """``run(params)`` whose differentiable outputs carry a backward on ``threads`` threads.

    ``run`` takes the parameters and returns a tuple of tensors; those that need gradients
    pass through a marker that sets the count when the backward pass reaches them, and the
    parameters through one that restores the caller's count once the gradient has left.
    Without gradients it is ``run(params)``.
    """
    if not (params.requires_grad and torch.is_grad_enabled()):
        return run(params)
    token = _Token(threads)
    outputs = run(_Leave.apply(token, params))
    marked = [i for i, o in enumerate(outputs) if o.requires_grad]
    if not marked:
        return outputs
    entered = _Enter.apply(token, *(outputs[i] for i in marked))
    out = list(outputs)
    for i, tensor in zip(marked, entered, strict=True):
        out[i] = tensor
    return tuple(out)

"""Gradient checkpointing for graphs of many small operations.

:func:`recompute` runs a function without keeping its autograd graph and runs it again, with
the graph, when the backward pass reaches it. It does what :func:`torch.utils.checkpoint`
does, at a lower cost on the backends' graphs of thousands of small tensors: the non-reentrant
variant packs and unpacks every saved tensor through Python hooks (at n = 100 lanes, 3 steps,
bond 32 this doubled the MPS backend's forward+backward time), and the reentrant variant
calls ``backward`` inside ``backward``, so it refuses :func:`torch.autograd.grad`. Here the
backward pass differentiates the recomputed graph with :func:`torch.autograd.grad`, so either
entry point works, and checkpoints nest (a recomputed function may itself use
:func:`recompute`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["recompute"]


def recompute(fn: Callable[..., tuple[torch.Tensor, ...]], *args: Any) -> tuple[torch.Tensor, ...]:
    """``fn(*args)``, keeping only the tensors among ``args`` for the backward pass.

    ``fn`` must return a tuple of tensors and be deterministic (the recomputation must give
    the same shapes and values); arguments that are not tensors are passed through as they
    are. Integer outputs are not differentiable.
    """
    where = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    # the closure keeps the other arguments only: the tensors live in the autograd context,
    # which frees them once the backward pass has used them
    others = [None if isinstance(a, torch.Tensor) else a for a in args]

    def call(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        full = list(others)
        for i, tensor in zip(where, tensors, strict=True):
            full[i] = tensor
        return fn(*full)

    return _Recompute.apply(call, *(args[i] for i in where))


class _Recompute(torch.autograd.Function):
    @staticmethod
    def forward(  # autograd runs this without recording a graph
        ctx: Any, call: Callable[..., tuple[torch.Tensor, ...]], *tensors: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        ctx.call = call
        ctx.save_for_backward(*tensors)
        ctx.set_materialize_grads(False)
        outputs = call(*tensors)
        ctx.mark_non_differentiable(
            *(o for o in outputs if not (o.is_floating_point() or o.is_complex()))
        )
        return outputs

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        inputs = [
            t.detach().requires_grad_(need)
            for t, need in zip(ctx.saved_tensors, ctx.needs_input_grad[1:], strict=True)
        ]
        with torch.enable_grad():
            outputs = ctx.call(*inputs)
        used = [(o, g) for o, g in zip(outputs, grads, strict=True) if g is not None]
        used = [(o, g) for o, g in used if o.requires_grad]
        wrt = [x for x in inputs if x.requires_grad]
        found: Iterator[torch.Tensor | None] = iter(())
        if used and wrt:
            found = iter(
                torch.autograd.grad(
                    [o for o, _ in used], wrt, [g for _, g in used], allow_unused=True
                )
            )
        return (None, *(next(found, None) if x.requires_grad else None for x in inputs))

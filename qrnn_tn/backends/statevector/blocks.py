"""Fused blocks: a run of rotations and flips on a small state, applied as matrices.

On small states a run of rotations and flips (a whole stage of a step) costs more in torch
calls than in arithmetic. A :class:`Block` applies it as one matrix per value of the
classical bits it reads, built once per run by its own kernels acting on the identity, with
one matrix product per group of sequences; :mod:`~qrnn_tn.backends.statevector.fusion`
decides where that pays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from qrnn_tn.backends.statevector.bits import Bit

if TYPE_CHECKING:
    from qrnn_tn.backends.statevector.kernels import Kernel
    from qrnn_tn.backends.statevector.run import Run

__all__ = ["Block", "BlockOperators", "construct"]


class Block:
    """A run of rotations and flips applied as one matrix per value of the bits it reads.

    ``ψ_b ← M[v_b] ψ_b``, sequences grouped by ``v``. ``M`` is built once per run by the
    block's own kernels acting on the identity (one column per basis state and bit value);
    blocks equal up to which tokens they read share it.
    """

    changes_state = True

    def __init__(
        self,
        key: int,
        kernels: list[Kernel],
        build: tuple[Bit, ...],
        variables: tuple[Bit, ...],
        size: int,
    ) -> None:
        self.key, self.kernels, self.build, self.size = key, kernels, build, size
        self.variables: tuple[Bit, ...] = variables

    def flops(self) -> tuple[float, float]:
        """Return the element operations per amplitude of the forward and of the backward."""
        return 2 * 2**self.size, 4 * 2**self.size

    @property
    def columns(self) -> int:
        """Columns of the construction: one per basis state and value of the bits."""
        return 2 ** (self.size + len(self.build))

    def build_flops(self) -> tuple[float, float]:
        """Return the element operations of building the matrices, and of their backward."""
        f = sum(k.flops()[0] for k in self.kernels) * 2**self.size * self.columns
        b = sum(k.flops()[1] for k in self.kernels) * 2**self.size * self.columns
        return f, f + b

    def _apply(
        self,
        run: Run,
        psi: torch.Tensor,
        transpose: bool,
        grads: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        matrices = run.blocks.operator(self, run)
        if transpose:
            matrices = matrices.transpose(1, 2)
        if not self.variables:
            if grads is not None:
                grads[0][0].addmm_(psi, grads[1].T)
            return matrices[0] @ psi
        perm, counts = run.groups(self.variables)
        x = psi.index_select(1, perm)
        other = None if grads is None else grads[1].index_select(1, perm)
        out = torch.empty_like(x)
        start = 0
        for v, n in enumerate(counts):
            if n:
                part = slice(start, start + n)
                torch.mm(matrices[v], x[:, part], out=out[:, part])
                if grads is not None and other is not None:
                    grads[0][v].addmm_(x[:, part], other[:, part].T)
                start += n
        return torch.empty_like(out).index_copy_(1, perm, out)

    def forward(self, psi: torch.Tensor, run: Run) -> torch.Tensor:
        """Return ``M[v_b] ψ_b`` for every sequence ``b``."""
        return self._apply(run, psi, transpose=False)

    def backward(
        self, psi_in: torch.Tensor, psi_out: torch.Tensor, grad: torch.Tensor, run: Run
    ) -> torch.Tensor:
        """Return ``M[v_b]ᵀ g_b``; add the matrices' gradient to the run's blocks."""
        accumulator = run.blocks.gradient(self)
        return self._apply(run, grad, transpose=True, grads=(accumulator, psi_in))


class BlockOperators:
    """The block operators of one run, built on first use.

    Their gradients, summed over every use, flow back through the blocks' kernels once, at
    the end of the backward pass.
    """

    def __init__(self) -> None:
        self._operators: dict[int, torch.Tensor] = {}
        self._grads: dict[int, tuple[Block, torch.Tensor]] = {}

    def operator(self, block: Block, run: Run) -> torch.Tensor:
        """Return ``[2^r, 2^q, 2^q]``: the block's matrix for each value of its bits."""
        if block.key not in self._operators:
            columns = construct(block, run, keep=False)[0][-1]
            q, r = block.size, len(block.variables)
            operator = columns.view(2**q, 2**r, 2**q).transpose(0, 1).contiguous()
            self._operators[block.key] = operator
        return self._operators[block.key]

    def gradient(self, block: Block) -> torch.Tensor:
        """Return the accumulator of the block's matrices' gradient."""
        if block.key not in self._grads:
            operator = self._operators[block.key]
            self._grads[block.key] = (block, torch.zeros_like(operator))
        return self._grads[block.key][1]

    def finish(self, run: Run) -> None:
        """Send each operator's gradient through its kernels (into the run's tables)."""
        for block, grad in self._grads.values():
            states, sub = construct(block, run)
            q, r = block.size, len(block.variables)
            g = grad.transpose(0, 1).reshape(2**q, 2 ** (q + r))
            for i in range(len(block.kernels) - 1, -1, -1):
                g = block.kernels[i].backward(states[i], states[i + 1], g, sub)
        self._grads.clear()


def construct(block: Block, run: Run, keep: bool = True) -> tuple[list[torch.Tensor], Run]:
    """Apply the block's kernels to every basis state under every value of its bits.

    Column ``v·2^q + j`` starts as basis state ``j`` with the bits set to ``v``; the states
    after each kernel (only the last unless ``keep``) are returned with the run that assigns
    the bits.
    """
    q, r = block.size, len(block.build)
    dtype, device = run.tables.params.dtype, run.tables.params.device
    column = torch.arange(2 ** (q + r), device=device)
    assignment = {v: (column >> (q + r - 1 - i)) & 1 for i, v in enumerate(block.build)}
    sub = run.assigned(assignment, 2 ** (q + r))
    states = [torch.eye(2**q, dtype=dtype, device=device).repeat(1, 2**r)]
    for kernel in block.kernels:
        state = kernel.forward(states[-1], sub)
        if keep:
            states.append(state)
        else:
            states[-1] = state
    return states, sub

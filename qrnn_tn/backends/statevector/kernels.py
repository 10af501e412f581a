"""The kernels: each maps the state ``[2^q, B]`` forward and has an exact adjoint.

``forward`` is differentiable by plain autograd when grad mode is on (the ``"autograd"``
gradient) and uses fast in-place forms otherwise; ``backward`` takes the kernel's input and
output states and the gradient of its output, and returns the gradient of its input, adding
the gradients of the tables and outputs it reads to the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

from compiler.ir import WordBit
from qrnn_tn.backends.statevector.bits import Bit, static_index
from qrnn_tn.backends.statevector.layout import Layout, Words, abs2, dot, spread

if TYPE_CHECKING:
    from qrnn_tn.backends.statevector.run import Run

__all__ = ["Flip", "Kernel", "Normalise", "Project", "Promote", "Readout", "Rotate"]


class Kernel(Protocol):
    """One step of the simulation: a map of the state and its adjoint."""

    @property
    def changes_state(self) -> bool:
        """Whether the kernel's output differs from its input (a readout's does not)."""
        ...

    def flops(self) -> tuple[float, float]:
        """Return the element operations per amplitude of the forward and of the backward."""
        ...

    def forward(self, psi: torch.Tensor, run: Run) -> torch.Tensor:
        """Return the state after the kernel."""
        ...

    def backward(
        self, psi_in: torch.Tensor, psi_out: torch.Tensor, grad: torch.Tensor, run: Run
    ) -> torch.Tensor:
        """Return the gradient of the input state given that of the output state."""
        ...


class Rotate:
    """``[[c, -s], [s, c]]`` on the target, per branch of the sources (linear).

    Token-dependent classical sources pick each sequence's table column through a one-hot
    matrix product (gathering and, in the backward pass, scattering in one call each).
    """

    changes_state = True

    def __init__(self, arrangement: int, layout: Layout, runtime: tuple[Bit, ...]) -> None:
        self.arrangement, self.layout, self.runtime = arrangement, layout, runtime

    def flops(self) -> tuple[float, float]:
        """Return the element operations per amplitude of the forward and of the backward."""
        return 3, 9

    def _onehot(self, run: Run) -> torch.Tensor | None:
        if not self.runtime:
            return None
        return run.onehot(self.runtime, run.tables.params.dtype)

    def _tables(self, run: Run, onehot: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        cs = run.tables.get(self.arrangement)
        if onehot is not None:
            cs = cs @ onehot
        return cs.view(2, *self.layout.table_shape, cs.shape[1]).unbind(0)

    def forward(self, psi: torch.Tensor, run: Run) -> torch.Tensor:
        """Return the rotated state."""
        x = psi.view(*self.layout.shape, psi.shape[-1])
        c, s = self._tables(run, self._onehot(run))
        x0, x1 = x.unbind(self.layout.tdim)
        if torch.is_grad_enabled():
            out = torch.stack((x0 * c - x1 * s, x1 * c + x0 * s), self.layout.tdim)
            return out.view(psi.shape)
        out = torch.empty_like(x)
        o0, o1 = out.unbind(self.layout.tdim)
        torch.mul(x0, c, out=o0).addcmul_(x1, s, value=-1)
        torch.mul(x1, c, out=o1).addcmul_(x0, s)
        return out.view(psi.shape)

    def backward(
        self, psi_in: torch.Tensor, psi_out: torch.Tensor, grad: torch.Tensor, run: Run
    ) -> torch.Tensor:
        """Return the gradient of the input state; add the table's to the run's tables."""
        x = psi_in.view(*self.layout.shape, psi_in.shape[-1])
        g = grad.view(x.shape)
        onehot = self._onehot(run)
        c, s = self._tables(run, onehot)
        (x0, x1), (g0, g1) = x.unbind(self.layout.tdim), g.unbind(self.layout.tdim)
        columns = x.shape[-1] if onehot is not None else 1
        table_grad = c.new_empty(2, self.layout.rows, columns)
        if onehot is not None and not self.layout.half_dims and not g.is_complex():
            # Every other axis is a source and the batch stays: nothing to sum but the target.
            c_bar, s_bar = table_grad.view(2, *x0.shape).unbind(0)
            torch.mul(g0, x0, out=c_bar).addcmul_(g1, x1)
            torch.mul(g1, x0, out=s_bar).addcmul_(g0, x1, value=-1)
        else:
            self.layout.reduce(dot(g, x), self.layout.full_dims, table_grad[0])
            self.layout.reduce(dot(g1, x0) - dot(g0, x1), self.layout.half_dims, table_grad[1])
        run.tables.add_grad(self.arrangement, table_grad.view(-1, columns), onehot)
        out = torch.empty_like(g)
        o0, o1 = out.unbind(self.layout.tdim)
        torch.mul(g0, c, out=o0).addcmul_(g1, s)
        torch.mul(g1, c, out=o1).addcmul_(g0, s, value=-1)
        return out.view(grad.shape)


class Flip:
    """``X`` on a quantum qubit, for every sequence or (an input write) where a token bit is 1."""

    changes_state = True

    def __init__(self, position: int, n_quantum: int, bit: WordBit | None = None) -> None:
        self.shape = (2**position, 2, 2 ** (n_quantum - position - 1))
        self.bit = Bit(0, (bit,)) if bit is not None else None

    def flops(self) -> tuple[float, float]:
        """Return the element operations per amplitude of the forward and of the backward."""
        return 1, 1

    def forward(self, psi: torch.Tensor, run: Run) -> torch.Tensor:
        """Return the flipped state."""
        x = psi.view(*self.shape, psi.shape[-1])
        flipped = x.flip(1)
        if self.bit is not None:
            flipped = torch.where(run.index((self.bit,)).bool(), flipped, x)
        return flipped.view(psi.shape)

    def backward(
        self, psi_in: torch.Tensor, psi_out: torch.Tensor, grad: torch.Tensor, run: Run
    ) -> torch.Tensor:
        """Return the flipped gradient (a flip is its own adjoint)."""
        return self.forward(grad, run)


class Promote:
    """A classical qubit becomes quantum: a new state axis holding its value's basis state."""

    changes_state = True

    def __init__(self, position: int, n_quantum: int, value: Bit) -> None:
        self.shape = (2**position, 1, 2 ** (n_quantum - position))
        self.value = value

    def flops(self) -> tuple[float, float]:
        """Return the element operations per amplitude of the forward and of the backward."""
        return 2, 2

    def _onehot(self, run: Run, like: torch.Tensor) -> torch.Tensor:
        dtype = like.real.dtype if like.is_complex() else like.dtype
        if self.value.static:
            onehot = torch.zeros(2, 1, dtype=dtype, device=like.device)
            onehot[self.value.const] = 1
        else:
            bit = run.index((self.value,)).to(dtype)
            onehot = torch.stack((1 - bit, bit))
        return onehot.view(1, 2, 1, -1)

    def forward(self, psi: torch.Tensor, run: Run) -> torch.Tensor:
        """Return the state with the qubit's axis added."""
        x = psi.view(*self.shape, psi.shape[-1])
        return (x * self._onehot(run, psi)).view(-1, psi.shape[-1])

    def backward(
        self, psi_in: torch.Tensor, psi_out: torch.Tensor, grad: torch.Tensor, run: Run
    ) -> torch.Tensor:
        """Return the gradient with the qubit's axis projected out."""
        g = grad.view(self.shape[0], 2, self.shape[2], grad.shape[-1])
        return (g * self._onehot(run, grad)).sum(1).view(psi_in.shape)


class Readout:
    """Record ``p_t`` (normalised by the norm it reads); sample the next token if asked.

    Classical qubits of the word contribute their bit: the quantum marginal is placed at the
    full words those bits select, per sequence.
    """

    changes_state = False

    def __init__(
        self,
        quantum: tuple[int, ...],
        qubits: tuple[int, ...],
        step: int,
        values: dict[int, Bit],
    ) -> None:
        self.view, self.step, self.k = Words(quantum, qubits), step, len(qubits)
        shifts = [self.k - 1 - j for j, q in enumerate(qubits) if q in quantum]
        self.positions = spread(len(shifts), shifts)
        self.classical = tuple(
            (values[q], self.k - 1 - j) for j, q in enumerate(qubits) if q not in quantum
        )

    def flops(self) -> tuple[float, float]:
        """Return the element operations per amplitude of the forward and of the backward."""
        return 2, 3

    def _columns(self, run: Run, like: torch.Tensor) -> torch.Tensor | None:
        """``[B, 2^kq]`` full-word index of each quantum word, or ``None`` if all quantum."""
        if not self.classical:
            return None
        base = torch.zeros(run.batch, dtype=torch.int64, device=like.device)
        for value, shift in self.classical:
            base = base + (run.index((value,)) << shift)
        positions = torch.tensor(self.positions, device=like.device)
        return base[:, None] + positions[None, :]

    def forward(self, psi: torch.Tensor, run: Run) -> torch.Tensor:
        """Record the step's distribution (and sample); return the state unchanged."""
        if run.mode == "replay":
            return psi
        m = self.view.marginal(psi)
        p = m / m.sum(1, keepdim=True)
        columns = self._columns(run, psi)
        if columns is not None:
            p = p.new_zeros(p.shape[0], 2**self.k).scatter(1, columns, p)
        run.probs[self.step] = p
        if run.mode == "sample":
            token = torch.multinomial(p.detach(), 1, generator=run.generator).squeeze(1)
            run.words[:, self.step + 1] = token
        return psi

    def backward(
        self, psi_in: torch.Tensor, psi_out: torch.Tensor, grad: torch.Tensor, run: Run
    ) -> torch.Tensor:
        """Return ``grad`` plus the gradient the step's distribution sends to the state."""
        m = self.view.marginal(psi_in)
        z = m.sum(1, keepdim=True)
        g = run.incoming()[0][:, self.step]
        columns = self._columns(run, psi_in)
        if columns is not None:
            g = g.gather(1, columns)
        coef = 2 * (g - (g * m).sum(1, keepdim=True) / z) / z
        x = psi_in.view(*self.view.shape, psi_in.shape[-1])
        return grad + (x * self.view.expand(coef)).view(grad.shape)


class Project:
    """Keep the amplitudes whose word on ``qubits`` is ``word``; those qubits become classical.

    ``word`` gives each qubit's target bit; quantum qubits leave the state (summed out after
    masking), classical ones multiply the state by ``[value == target bit]``.
    """

    changes_state = True

    def __init__(
        self,
        quantum: tuple[int, ...],
        qubits: tuple[int, ...],
        word: tuple[Bit, ...],
        values: dict[int, Bit],
    ) -> None:
        self.view = Words(quantum, qubits)
        self.quantum_word = tuple(word[j] for j, q in enumerate(qubits) if q in quantum)
        self.checks = tuple((values[q], word[j]) for j, q in enumerate(qubits) if q not in quantum)

    def flops(self) -> tuple[float, float]:
        """Return the element operations per amplitude of the forward and of the backward."""
        return 2, 1

    def _mask(self, run: Run, like: torch.Tensor) -> torch.Tensor:
        dtype = like.real.dtype if like.is_complex() else like.dtype
        if all(bit.static for bit in self.quantum_word):
            onehot = torch.zeros(1, 2**self.view.k, dtype=dtype, device=like.device)
            onehot[:, static_index(self.quantum_word)] = 1
        else:
            onehot = torch.zeros(run.batch, 2**self.view.k, dtype=dtype, device=like.device)
            onehot.scatter_(1, run.index(self.quantum_word)[:, None], 1.0)
        for value, target in self.checks:
            same = run.index((value,)) == run.index((target,))
            onehot = onehot * same[:, None].to(dtype)
        return self.view.expand(onehot)

    def forward(self, psi: torch.Tensor, run: Run) -> torch.Tensor:
        """Return the projected state, without the word's quantum qubits."""
        x = psi.view(*self.view.shape, psi.shape[-1])
        out = x * self._mask(run, psi)
        if self.view.word_dims:
            out = out.sum(self.view.word_dims)
        return out.reshape(-1, psi.shape[-1])

    def backward(
        self, psi_in: torch.Tensor, psi_out: torch.Tensor, grad: torch.Tensor, run: Run
    ) -> torch.Tensor:
        """Return the gradient spread back over the word's qubits and masked."""
        shape = tuple(1 if i in self.view.word_dims else s for i, s in enumerate(self.view.shape))
        g = grad.view(*shape, grad.shape[-1])
        return (g * self._mask(run, grad)).reshape(psi_in.shape)


class Normalise:
    """``ψ / ‖ψ‖``, adding ``log ‖ψ‖²`` to the run's ``log_norm``."""

    changes_state = True

    def flops(self) -> tuple[float, float]:
        """Return the element operations per amplitude of the forward and of the backward."""
        return 3, 6

    def forward(self, psi: torch.Tensor, run: Run) -> torch.Tensor:
        """Return the normalised state; record the log of its norm²."""
        r = abs2(psi).sum(0)
        if run.mode != "replay":
            run.log_norms.append(r.log())
        return psi * r.rsqrt()

    def backward(
        self, psi_in: torch.Tensor, psi_out: torch.Tensor, grad: torch.Tensor, run: Run
    ) -> torch.Tensor:
        """Return the gradient of the input state, the norm's own included."""
        r = abs2(psi_in).sum(0)
        k = dot(psi_out, grad).sum(0) - 2 * run.incoming()[1]
        return (grad - psi_out * k) * r.rsqrt()

"""Views of the state ``[2^q, B]`` and of the tables that act on it.

The quantum qubits are the state's axes in ascending order, qubit 0 the most significant;
the batch comes last. A kernel reshapes the state so that the qubits it treats alike form
one axis (a *run*): :class:`Layout` for a rotation, :class:`Words` for a readout or a
projection. :class:`Arrangement` lays out a table the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Arrangement", "Layout", "Words", "abs2", "dot", "runs", "spread"]


def abs2(x: torch.Tensor) -> torch.Tensor:
    """Return ``|x|²`` elementwise."""
    return torch.view_as_real(x).square().sum(-1) if x.is_complex() else x * x


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return ``Re(conj(a) · b)`` elementwise."""
    if a.is_complex():
        return (torch.view_as_real(a) * torch.view_as_real(b)).sum(-1)
    return a * b


def runs(roles: list[str]) -> list[tuple[str, int]]:
    """Merge consecutive qubits of equal role into ``(role, size)`` runs (a target stays alone)."""
    out: list[tuple[str, int]] = []
    for role in roles:
        if out and out[-1][0] == role and role != "T":
            out[-1] = (role, out[-1][1] * 2)
        else:
            out.append((role, 2))
    return out


def spread(width: int, shifts: list[int]) -> list[int]:
    """For each ``width``-bit integer, its bits (first most significant) moved to ``shifts``."""
    return [
        sum(((w >> (width - 1 - i)) & 1) << shift for i, shift in enumerate(shifts))
        for w in range(2**width)
    ]


@dataclass(frozen=True)
class Layout:
    """How a rotation on ``target`` with quantum sources views the ``[2^q, B]`` state.

    ``shape`` groups the quantum qubits into runs (the batch is appended at run time); the
    table has ``table_shape``: the source runs, 1 elsewhere, no target axis (batch appended).
    ``full_dims``/``half_dims`` are the non-source axes with/without the target axis.
    """

    shape: tuple[int, ...]
    table_shape: tuple[int, ...]
    tdim: int
    rows: int
    full_dims: tuple[int, ...]
    half_dims: tuple[int, ...]

    @classmethod
    def of(cls, quantum: tuple[int, ...], target: int, sources: set[int]) -> Layout:
        """Return the layout of a rotation of ``target`` over the quantum ``sources``."""
        parts = runs(["T" if q == target else "S" if q in sources else "N" for q in quantum])
        tdim = next(i for i, (role, _) in enumerate(parts) if role == "T")
        half = [role for role, _ in parts if role != "T"]
        return cls(
            shape=tuple(size for _, size in parts),
            table_shape=tuple(size if role == "S" else 1 for role, size in parts if role != "T"),
            tdim=tdim,
            rows=math.prod(size for role, size in parts if role == "S"),
            full_dims=tuple(i for i, (role, _) in enumerate(parts) if role != "S"),
            half_dims=tuple(i for i, role in enumerate(half) if role != "S"),
        )

    def reduce(self, x: torch.Tensor, dims: tuple[int, ...], out: torch.Tensor) -> None:
        """Sum ``x`` over ``dims`` (and the batch unless ``out`` keeps it) into ``out``."""
        if out.shape[-1] == 1:
            dims = (*dims, x.ndim - 1)
        target = out.view([n for i, n in enumerate(x.shape) if i not in dims])
        if dims:
            torch.sum(x, dims, out=target)
        else:
            target.copy_(x)


@dataclass(frozen=True)
class Arrangement:
    """Rows and columns of a provider's table for one kernel: ``[2^q_src, 2^runtime]``.

    The raw table is indexed over the op's sources (first most significant). Sources that are
    classical with a constant value select a fixed slice; those with token-dependent values
    become the columns (picked per sequence); quantum sources, in ascending order, the rows.
    """

    provider: int
    m: int
    perm: tuple[int, ...]
    n_runtime: int
    n_static: int
    static_index: int

    def arrange(self, raw: torch.Tensor) -> torch.Tensor:
        """Return ``[2^m]`` as ``[2^q_src, 2^runtime]`` (contiguous)."""
        rows = 2 ** (self.m - self.n_runtime - self.n_static)
        table = raw.reshape((2,) * self.m).permute(self.perm) if self.m else raw
        table = table.reshape(2**self.n_runtime, 2**self.n_static, rows)[:, self.static_index]
        return table.T.contiguous()

    def unarrange(self, arranged: torch.Tensor) -> torch.Tensor:
        """Return the transpose of :meth:`arrange`: a gradient back to ``[2^m]`` in source order."""
        rows = 2 ** (self.m - self.n_runtime - self.n_static)
        full = arranged.new_zeros(2**self.n_runtime, 2**self.n_static, rows)
        full[:, self.static_index] = arranged.T
        if not self.m:
            return full.reshape(1)
        inverse = tuple(sorted(range(self.m), key=lambda i: self.perm[i]))
        return full.reshape((2,) * self.m).permute(inverse).reshape(-1)

    def nbytes(self, item: int) -> int:
        """Return the bytes of the arranged ``c`` and ``s`` tables at ``item`` bytes each."""
        return 2 * 2 ** (self.m - self.n_static) * item


class Words:
    """Views of the state separating the quantum qubits of a word (in its bit order)."""

    def __init__(self, quantum: tuple[int, ...], qubits: tuple[int, ...]) -> None:
        parts = runs(["R" if q in qubits else "N" for q in quantum])
        self.k = sum(q in quantum for q in qubits)
        self.shape = tuple(size for _, size in parts)
        self.word_shape = tuple(size if role == "R" else 1 for role, size in parts)
        self.word_dims = [i for i, (role, _) in enumerate(parts) if role == "R"]
        self.other_dims = [i for i, (role, _) in enumerate(parts) if role == "N"]
        order = [q for q in qubits if q in quantum]
        self.perm = tuple(sorted(range(self.k), key=lambda i: order[i]))
        self.inverse = tuple(sorted(range(self.k), key=lambda i: self.perm[i]))

    def marginal(self, psi: torch.Tensor) -> torch.Tensor:
        """Return the ``[B, 2^k]`` unnormalised probabilities of the word's quantum part."""
        batch = psi.shape[-1]
        x = abs2(psi.view(*self.shape, batch))
        if self.other_dims:
            x = x.sum(self.other_dims)
        x = x.reshape((2,) * self.k + (batch,)).permute(*self.inverse, self.k)
        return x.reshape(2**self.k, batch).T

    def expand(self, values: torch.Tensor) -> torch.Tensor:
        """Return ``[B, 2^k]`` per-word values broadcasting against the state view."""
        batch = values.shape[0]
        x = values.T.reshape((2,) * self.k + (batch,)).permute(*self.perm, self.k)
        return x.reshape(*self.word_shape, batch)

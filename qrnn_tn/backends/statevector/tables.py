"""Rotation tables: ``c(x)``, ``s(x)`` over the branches of a rotation's sources.

A neuron rotates its target by ``[[c, -s], [s, c]]`` with ``c``, ``s`` read from a table over
the ``2^m`` values of its sources (QRNN.md §2); an ``ry``/``mcry`` gate is the same with a
constant table. The providers build a table from the parameters and send a table's gradient
back to them exactly; :class:`Tables` holds the arranged tables of one run, built once and
cached, or rebuilt at every use when they would not fit next to the states.
"""

from __future__ import annotations

from typing import Protocol

import torch

from compiler.gates import neuron_branch_amplitudes
from compiler.ir import Angle, Neuron
from qrnn_tn.backends.statevector.layout import Arrangement

__all__ = [
    "NeuronTable",
    "RotationTable",
    "TableProvider",
    "Tables",
    "cache_tables",
    "subset_sums",
    "superset_sums",
]

#: Tables are cached while twice their size stays below this or a quarter of the budget.
TABLE_CACHE_BYTES = 256 * 2**20
#: Cost of one torch call, in element operations, for choosing between table algorithms.
CALL_OVERHEAD = 4096


def cache_tables(option: bool | None, table_bytes: int, budget: int) -> bool:
    """Return whether a run caches its tables.

    ``option`` if given, else whether twice ``table_bytes`` stays under
    :data:`TABLE_CACHE_BYTES` or a quarter of ``budget``.
    """
    if option is not None:
        return bool(option)
    return 2 * table_bytes <= max(TABLE_CACHE_BYTES, budget // 4)


def subset_sums(a: torch.Tensor, m: int) -> torch.Tensor:
    """Return the zeta transform ``f(x) = Σ_{S ⊆ x} a[S]`` over ``m`` bits (first highest)."""
    for i in range(m):
        v = a.view(2**i, 2, -1)
        a = torch.stack((v[:, 0], v[:, 0] + v[:, 1]), 1).view(-1)
    return a


def superset_sums(a: torch.Tensor, m: int) -> torch.Tensor:
    """Return the transpose of :func:`subset_sums`: ``g(S) = Σ_{x ⊇ S} a[x]``."""
    for i in range(m):
        v = a.view(2**i, 2, -1)
        a = torch.stack((v[:, 0] + v[:, 1], v[:, 1]), 1).view(-1)
    return a


class TableProvider(Protocol):
    """What builds one table from the parameters and differentiates it."""

    sources: tuple[int, ...]

    @property
    def decay_bits(self) -> int:
        """Bits of norm² the rotation may lose at most."""
        ...

    def flops(self) -> float:
        """Return the element operations of one build (or one backward) of the table."""
        ...

    def constant_bytes(self, item: int) -> int:
        """Return the bytes kept for the plan's lifetime."""
        ...

    def workspace_bytes(self, item: int) -> int:
        """Return the bytes held only while the table is built or differentiated."""
        ...

    def forward(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``c`` and ``s`` over the ``2^m`` branches of the sources."""
        ...

    def backward(
        self, params: torch.Tensor, c_bar: torch.Tensor, s_bar: torch.Tensor, out: torch.Tensor
    ) -> None:
        """Add ``∂L/∂θ`` to ``out`` given ``∂L/∂c`` and ``∂L/∂s``."""
        ...


class NeuronTable:
    """``c``, ``s`` over the ``2^m`` source branches of a neuron; exact manual backward.

    ``η`` over all branches comes from a subset-sum (zeta) transform in ``m·2^m`` or from the
    monomial matrix in ``2^m·D``, whichever costs less (the matrix needs one call).
    """

    def __init__(self, op: Neuron) -> None:
        self.op = op
        self.power = 2**op.order
        self.sources = op.sources
        m, d = len(op.sources), len(op.subsets)
        self.zeta = m * (2 * 2**m + CALL_OVERHEAD) < 2**m * d + CALL_OVERHEAD
        position = {q: i for i, q in enumerate(op.sources)}
        self._index = [sum(1 << (m - 1 - position[q]) for q in s) for s in op.subsets]
        self._tensors: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]]
        self._tensors = {}

    @property
    def decay_bits(self) -> int:
        """At most this many bits of norm² are lost: ``min c² + s² = 2^(1 - 2^k)``."""
        return self.power - 1

    def flops(self) -> float:
        """Return the element operations of one build (or one backward) of the table."""
        m, d = len(self.sources), len(self.op.subsets)
        return (m * 2 * 2**m if self.zeta else 2 * d * 2**m) + 8 * 2**m

    def constant_bytes(self, item: int) -> int:
        """Return the bytes kept for the plan's lifetime.

        The ``[2^m, d]`` monomial matrix (or the zeta transform's index vector) of each dtype
        it has been built in.
        """
        m, d = len(self.sources), len(self.op.subsets)
        return 16 * d if self.zeta else 2**m * d * item + 8 * d

    def workspace_bytes(self, item: int) -> int:
        """Return the bytes held only while the table is built or differentiated.

        The monomial matrix's int64 branch bits (shifted, then masked) while it is built, a
        second matrix while it is converted and its transpose's copy in the backward product;
        ``η``, its cosine, sine and their powers, and the backward's terms.
        """
        m, d = len(self.sources), len(self.op.subsets)
        building = 0 if self.zeta else 2**m * (16 * m + 32 + 2 * d * item)
        return building + 12 * 2**m * item

    def _constants(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (like.dtype, like.device)
        if key not in self._tensors:
            slots = torch.tensor(self.op.slots, device=like.device)
            if self.zeta:
                extra = torch.tensor(self._index, device=like.device)
            else:
                extra = torch.as_tensor(self.op.monomials(), dtype=like.dtype, device=like.device)
            self._tensors[key] = (slots, extra)
        return self._tensors[key]

    def eta(self, params: torch.Tensor) -> torch.Tensor:
        """Return the half-angles ``η(x)`` for every branch ``x`` of the sources (``[2^m]``)."""
        slots, extra = self._constants(params)
        theta = params.index_select(0, slots)
        if self.zeta:
            m = len(self.sources)
            table = subset_sums(params.new_zeros(2**m).index_add(0, extra, theta), m)
        else:
            table = extra @ theta
        return (table + self.op.offset) / 2

    def forward(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``c`` and ``s`` over the ``2^m`` branches of the sources."""
        return neuron_branch_amplitudes(self.eta(params), self.op.order)

    def backward(
        self, params: torch.Tensor, c_bar: torch.Tensor, s_bar: torch.Tensor, out: torch.Tensor
    ) -> None:
        """Add ``∂L/∂θ`` to ``out`` given ``∂L/∂c`` and ``∂L/∂s`` (``[2^m]`` each)."""
        eta = self.eta(params)
        cos, sin, p = eta.cos(), eta.sin(), self.power
        half_eta_bar = p * (s_bar * sin ** (p - 1) * cos - c_bar * cos ** (p - 1) * sin) / 2
        slots, extra = self._constants(params)
        if self.zeta:
            theta_bar = superset_sums(half_eta_bar, len(self.sources)).index_select(0, extra)
        else:
            theta_bar = extra.T @ half_eta_bar
        out.index_add_(0, slots, theta_bar)


class RotationTable:
    """``c``, ``s`` of an ``ry``/``mcry`` gate over its controls: identity but on all-ones."""

    decay_bits = 0

    def __init__(self, angle: Angle, qubits: tuple[int, ...]) -> None:
        self.angle = angle
        self.sources = qubits[:-1]
        self._tensors: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]]
        self._tensors = {}

    def flops(self) -> float:
        """Return the element operations of one build of the table."""
        return 4 * 2 ** len(self.sources)

    def constant_bytes(self, item: int) -> int:
        """Return the bytes of the angle's slots and coefficients."""
        return 8 * len(self.angle.terms) + item * len(self.angle.terms)

    def workspace_bytes(self, item: int) -> int:
        """Return the bytes of the padded cosine and sine, and the concatenation's copies."""
        return 6 * 2 ** len(self.sources) * item

    def _half_angle(self, params: torch.Tensor) -> torch.Tensor:
        key = (params.dtype, params.device)
        if key not in self._tensors:
            self._tensors[key] = (
                torch.tensor(
                    [s for s, _ in self.angle.terms], dtype=torch.int64, device=params.device
                ),
                torch.tensor(
                    [c for _, c in self.angle.terms], dtype=params.dtype, device=params.device
                ),
            )
        slots, coefs = self._tensors[key]
        return ((params.index_select(0, slots) * coefs).sum() + self.angle.const) / 2

    def _pad(self, value: torch.Tensor, fill: float) -> torch.Tensor:
        rest = value.new_full((2 ** len(self.sources) - 1,), fill)
        return torch.cat((rest, value.reshape(1)))

    def forward(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``c`` and ``s`` over the branches of the controls."""
        half = self._half_angle(params)
        return self._pad(half.cos(), 1.0), self._pad(half.sin(), 0.0)

    def backward(
        self, params: torch.Tensor, c_bar: torch.Tensor, s_bar: torch.Tensor, out: torch.Tensor
    ) -> None:
        """Add ``∂L/∂θ`` to ``out`` given ``∂L/∂c`` and ``∂L/∂s``."""
        half = self._half_angle(params)
        angle_bar = (s_bar[-1] * half.cos() - c_bar[-1] * half.sin()) / 2
        slots, coefs = self._tensors[(params.dtype, params.device)]
        out.index_add_(0, slots, coefs * angle_bar)


class Tables:
    """The arranged tables of one run, ``[c; s]`` stacked as ``[2·2^q_src, 2^runtime]``.

    Cached (built once, gradients summed, one provider backward at the end) or built at every
    use with an immediate backward, when the tables would not fit next to the states.
    """

    def __init__(
        self,
        providers: list[TableProvider],
        arrangements: list[Arrangement],
        params: torch.Tensor,
        cached: bool,
    ) -> None:
        self.providers, self.arrangements = providers, arrangements
        self.params, self.cached = params, cached
        self._values: dict[int, torch.Tensor] = {}
        self._grads: dict[int, torch.Tensor] = {}
        self.grad_params = torch.zeros_like(params)

    def start_backward(self, params: torch.Tensor) -> None:
        """Reset the gradient accumulators (a graph may be differentiated more than once)."""
        self.params = params
        self.grad_params = torch.zeros_like(params)
        self._grads.clear()

    def get(self, i: int) -> torch.Tensor:
        """Return arrangement ``i``'s stacked table."""
        if self.cached and i in self._values:
            return self._values[i]
        arrangement = self.arrangements[i]
        c, s = self.providers[arrangement.provider].forward(self.params)
        value = torch.cat((arrangement.arrange(c), arrangement.arrange(s)))
        if self.cached:
            self._values[i] = value
        return value

    def add_grad(self, i: int, grad: torch.Tensor, onehot: torch.Tensor | None) -> None:
        """Add a use's gradient to arrangement ``i``'s.

        ``grad`` is ``[2·rows, B]`` with ``onehot [2^runtime, B]``, else ``[2·rows, 1]``.
        """
        if not self.cached:
            columns = 1 if onehot is None else onehot.shape[0]
            total = grad.new_zeros(grad.shape[0], columns)
            self._backward({i: self._accumulate(total, grad, onehot)})
        elif i in self._grads:
            self._accumulate(self._grads[i], grad, onehot)
        else:
            self._grads[i] = grad if onehot is None else grad @ onehot.T

    @staticmethod
    def _accumulate(
        total: torch.Tensor, grad: torch.Tensor, onehot: torch.Tensor | None
    ) -> torch.Tensor:
        return total.add_(grad) if onehot is None else total.addmm_(grad, onehot.T)

    def finish(self) -> torch.Tensor:
        """Return the gradient of the parameters once every kernel's backward has run."""
        self._backward(self._grads)
        self._grads.clear()
        return self.grad_params

    def _backward(self, grads: dict[int, torch.Tensor]) -> None:
        raw: dict[int, torch.Tensor] = {}
        for i, grad in grads.items():
            arrangement = self.arrangements[i]
            c_bar, s_bar = grad.chunk(2)
            both = torch.stack((arrangement.unarrange(c_bar), arrangement.unarrange(s_bar)))
            p = arrangement.provider
            raw[p] = raw[p] + both if p in raw else both
        for p, (c_bar, s_bar) in raw.items():
            self.providers[p].backward(self.params, c_bar, s_bar, self.grad_params)

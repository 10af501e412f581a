"""Exact statevector backend: a batched torch simulation of a :class:`Program` (QRNN.md §2–§3).

**State.** Qubits known to be in a basis state — all of them at the start, the i/o lanes from a
projection until the output neurons rotate them, ancillas outside their neuron — are kept out of
the state as *classical* bits: a constant XOR token bits, evaluated per sequence. The *quantum*
qubits form one tensor ``[2^q, B]`` for a batch of ``B`` sequences: ascending qubit order, the
lowest qubit the most significant bit (QRNN.md §1), the batch last and contiguous so that every
kernel runs over long inner loops. A rotation of a classical qubit makes it quantum (the state
doubles); a projection makes its qubits classical again (the state halves per qubit). In a QRNN
the i/o lanes are classical for all but the output stage, so most kernels touch ``2^(n - io)``
amplitudes instead of ``2^n``.

**Kernels.** Neurons are applied in fused form, without ancillas: a table of ``c(x)``, ``s(x)``
over the branches ``x`` of the sources (from :func:`compiler.gates.neuron_branch_amplitudes`)
rotates the target, ``φ₀ = c ψ₀ - s ψ₁``, ``φ₁ = s ψ₀ + c ψ₁``. Quantum sources index the table
along state axes; classical sources select its rows, per sequence. ``ry``/``mcry`` gates are the
same kernel with a constant table; ``x`` and input writes flip a quantum qubit or a classical bit.

**Norms.** Norms only shrink (neurons, projections, postselections). The state is renormalised
at every projection and postselection, before any neuron that could take the norm² more than
``2^-80`` (float32) or ``2^-600`` (float64) below its last renormalisation (a neuron of order
``k`` shrinks it at most ``2^(2^k - 1)`` times), and once at the end; readouts divide by the norm
they read. The distributions and the accumulated ``log_norm`` equal those of renormalising after
every non-unitary operation, with a fraction of the passes over the state.

**Blocks.** On small states, a run of rotations and flips (a whole stage of a step) costs
more in torch calls than in arithmetic. It is then fused into one matrix per value of the
classical bits it reads, built once per run by its own kernels acting on the identity, and
applied per step with one matrix product per group of sequences; the cost model decides.

**Gradients.** A custom :class:`torch.autograd.Function` keeps one state every ``segment``
state-changing kernels (default ``⌈√kernels⌉``) and, in the backward pass, replays each segment
from its checkpoint and runs every kernel's exact adjoint (a block's gradient, summed over its
uses, goes back through its kernels once): peak memory about ``2√kernels`` states, where
autograd keeps several per kernel. Options: :class:`~qrnn_tn.backends.options.StatevectorOptions`
(``gradient``: ``"autograd"`` runs plain autograd over the same elementwise kernels, no blocks,
every intermediate kept, for checks and comparisons; ``segment``; ``cache_tables``, for wide
cells; ``fuse``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from compiler.gates import neuron_branch_amplitudes
from compiler.ir import Angle, Neuron, WordBit
from compiler.unroll import Program
from qrnn_tn.backends.base import (
    BackendError,
    BackendOptions,
    Cost,
    CostDetails,
    RunResult,
    check_params,
    check_words,
    format_bytes,
    register_backend,
    target_probs,
)
from qrnn_tn.backends.options import StatevectorOptions
from qrnn_tn.dtypes import real_dtype
from qrnn_tn.semantics import token_bits

__all__ = ["StatevectorCostDetails", "StatevectorPlan", "prepare", "MAX_QUBITS"]


@dataclass(frozen=True)
class StatevectorCostDetails(CostDetails):
    """The statevector's facts of a plan: qubits, the largest state (log2 amplitudes per
    sequence) for the batch, the steps and dtype, the kernels run (and distinct fused
    blocks), the gradient method (with its checkpoints under ``"recompute"``), the neuron
    tables (cached or rebuilt per use, and their bytes) and the forward flops."""

    qubits: int
    largest_state: int
    batch: int
    steps: int
    dtype: str
    kernels: int
    fused_blocks: int
    gradient: str
    checkpoint_every: int | None
    checkpoints: int | None
    tables_cached: bool
    table_bytes: int
    forward_flops: float

    def lines(self) -> list[str]:
        """The facts as the plan's description shows them."""
        gradient = self.gradient
        if self.checkpoint_every is not None:
            gradient += (
                f" (checkpoint every {self.checkpoint_every} kernels, {self.checkpoints} stored)"
            )
        return [
            f"qubits: {self.qubits}",
            f"largest state: 2^{self.largest_state} amplitudes x batch {self.batch}",
            f"steps: {self.steps}",
            f"dtype: {self.dtype}",
            f"kernels: {self.kernels} ({self.fused_blocks} distinct fused blocks)",
            f"gradient: {gradient}",
            f"tables: {'cached' if self.tables_cached else 'rebuilt per use'}, "
            f"{format_bytes(self.table_bytes)}",
            f"forward flops: {self.forward_flops:.3e}",
        ]


#: Widest register this backend accepts (2^40 amplitudes is already terabytes).
MAX_QUBITS = 40
#: Simulation dtypes and the real dtype of their tables, parameters and probabilities.
#: Largest norm² decay (in bits) allowed between two renormalisations, per real dtype.
_DECAY_LIMIT_BITS = {torch.float32: 80, torch.float64: 600}
#: Tables are cached while twice their size stays below this or a quarter of the budget.
_TABLE_CACHE_BYTES = 256 * 2**20
#: Cost of one torch call, in element operations, for choosing between table algorithms.
_CALL_OVERHEAD = 4096


# ----------------------------------------------------------------------------- classical bits


@dataclass(frozen=True)
class _Bit:
    """The value of a classical qubit: ``const`` XOR the listed token bits."""

    const: int = 0
    bits: tuple[WordBit, ...] = ()

    def flip(self, bit: WordBit | None = None) -> _Bit:
        """XOR with 1 (``bit`` is ``None``) or with a token bit."""
        if bit is None:
            return _Bit(1 - self.const, self.bits)
        bits = set(self.bits) ^ {bit}
        return _Bit(self.const, tuple(sorted(bits, key=lambda b: (b.token, b.bit))))

    @property
    def static(self) -> bool:
        return not self.bits


def _static_index(values: tuple[_Bit, ...]) -> int:
    """The integer ``Σ v_j 2^(k-1-j)`` of constant bits (first most significant)."""
    out = 0
    for value in values:
        out = 2 * out + value.const
    return out


# ----------------------------------------------------------------------------- layouts


def _runs(roles: list[str]) -> list[tuple[str, int]]:
    """Merge consecutive qubits of equal role into ``(role, size)`` runs (a target stays alone)."""
    out: list[tuple[str, int]] = []
    for role in roles:
        if out and out[-1][0] == role and role != "T":
            out[-1] = (role, out[-1][1] * 2)
        else:
            out.append((role, 2))
    return out


@dataclass(frozen=True)
class _Layout:
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
    def of(cls, quantum: tuple[int, ...], target: int, sources: set[int]) -> _Layout:
        runs = _runs(["T" if q == target else "S" if q in sources else "N" for q in quantum])
        tdim = next(i for i, (role, _) in enumerate(runs) if role == "T")
        half = [role for role, _ in runs if role != "T"]
        return cls(
            shape=tuple(size for _, size in runs),
            table_shape=tuple(size if role == "S" else 1 for role, size in runs if role != "T"),
            tdim=tdim,
            rows=math.prod(size for role, size in runs if role == "S"),
            full_dims=tuple(i for i, (role, _) in enumerate(runs) if role != "S"),
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
class _Arrangement:
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
        """``[2^m]`` → ``[2^q_src, 2^runtime]`` (contiguous)."""
        rows = 2 ** (self.m - self.n_runtime - self.n_static)
        table = raw.reshape((2,) * self.m).permute(self.perm) if self.m else raw
        table = table.reshape(2**self.n_runtime, 2**self.n_static, rows)[:, self.static_index]
        return table.T.contiguous()

    def unarrange(self, arranged: torch.Tensor) -> torch.Tensor:
        """Transpose of :meth:`arrange`: a gradient back to ``[2^m]`` in source order."""
        rows = 2 ** (self.m - self.n_runtime - self.n_static)
        full = arranged.new_zeros(2**self.n_runtime, 2**self.n_static, rows)
        full[:, self.static_index] = arranged.T
        if not self.m:
            return full.reshape(1)
        inverse = tuple(sorted(range(self.m), key=lambda i: self.perm[i]))
        return full.reshape((2,) * self.m).permute(inverse).reshape(-1)

    def nbytes(self, item: int) -> int:
        return 2 * 2 ** (self.m - self.n_static) * item


# ----------------------------------------------------------------------------- tables


def _subset_sums(a: torch.Tensor, m: int) -> torch.Tensor:
    """Zeta transform ``f(x) = Σ_{S ⊆ x} a[S]`` over ``m`` bits (first bit most significant)."""
    for i in range(m):
        v = a.view(2**i, 2, -1)
        a = torch.stack((v[:, 0], v[:, 0] + v[:, 1]), 1).view(-1)
    return a


def _superset_sums(a: torch.Tensor, m: int) -> torch.Tensor:
    """Transpose of :func:`_subset_sums`: ``g(S) = Σ_{x ⊇ S} a[x]``."""
    for i in range(m):
        v = a.view(2**i, 2, -1)
        a = torch.stack((v[:, 0] + v[:, 1], v[:, 1]), 1).view(-1)
    return a


class _NeuronTable:
    """``c``, ``s`` over the ``2^m`` source branches of a neuron; exact manual backward.

    ``η`` over all branches comes from a subset-sum (zeta) transform in ``m·2^m`` or from the
    monomial matrix in ``2^m·D``, whichever costs less (the matrix needs one call).
    """

    def __init__(self, op: Neuron) -> None:
        self.op = op
        self.power = 2**op.order
        self.sources = op.sources
        m, d = len(op.sources), len(op.subsets)
        self.zeta = m * (2 * 2**m + _CALL_OVERHEAD) < 2**m * d + _CALL_OVERHEAD
        position = {q: i for i, q in enumerate(op.sources)}
        self._index = [sum(1 << (m - 1 - position[q]) for q in s) for s in op.subsets]
        self._tensors: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def decay_bits(self) -> int:
        """At most this many bits of norm² are lost: ``min c² + s² = 2^(1 - 2^k)``."""
        return self.power - 1

    def flops(self) -> float:
        """Element operations of one build (or one backward) of the table."""
        m, d = len(self.sources), len(self.op.subsets)
        return (m * 2 * 2**m if self.zeta else 2 * d * 2**m) + 8 * 2**m

    def constant_bytes(self, item: int) -> int:
        """Bytes this table keeps for the plan's lifetime: the ``[2^m, d]`` monomial matrix
        (or the zeta transform's index vector) of each dtype it has been built in."""
        m, d = len(self.sources), len(self.op.subsets)
        return 16 * d if self.zeta else 2**m * d * item + 8 * d

    def workspace_bytes(self, item: int) -> int:
        """Bytes held only while the table is built or differentiated: the monomial
        matrix's int64 branch bits and column products (numpy) and the copy of its
        transpose, ``η``, its cosine, sine and their powers, and the backward's terms."""
        m, d = len(self.sources), len(self.op.subsets)
        # the monomial matrix's branch bits (shifted, then masked) while it is built, a
        # second matrix while it is converted, its transpose's copy in the backward product
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
        """Half-angles ``η(x)`` for every branch ``x`` of the sources (``[2^m]``)."""
        slots, extra = self._constants(params)
        theta = params.index_select(0, slots)
        if self.zeta:
            m = len(self.sources)
            table = _subset_sums(params.new_zeros(2**m).index_add(0, extra, theta), m)
        else:
            table = extra @ theta
        return (table + self.op.offset) / 2

    def forward(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
            theta_bar = _superset_sums(half_eta_bar, len(self.sources)).index_select(0, extra)
        else:
            theta_bar = extra.T @ half_eta_bar
        out.index_add_(0, slots, theta_bar)


class _RotationTable:
    """``c``, ``s`` of an ``ry``/``mcry`` gate over its controls: identity but on all-ones."""

    decay_bits = 0

    def __init__(self, angle: Angle, qubits: tuple[int, ...]) -> None:
        self.angle = angle
        self.sources = qubits[:-1]
        self._tensors: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def flops(self) -> float:
        return 4 * 2 ** len(self.sources)

    def constant_bytes(self, item: int) -> int:
        return 8 * len(self.angle.terms) + item * len(self.angle.terms)

    def workspace_bytes(self, item: int) -> int:
        """The padded cosine and sine, and the concatenation's copies."""
        return 6 * 2 ** len(self.sources) * item

    def _half_angle(self, params: torch.Tensor) -> torch.Tensor:
        key = (params.dtype, params.device)
        if key not in self._tensors:
            slots = [s for s, _ in self.angle.terms]
            coefs = [c for _, c in self.angle.terms]
            self._tensors[key] = (
                torch.tensor(slots, dtype=torch.int64, device=params.device),
                torch.tensor(coefs, dtype=params.dtype, device=params.device),
            )
        slots, coefs = self._tensors[key]
        return ((params.index_select(0, slots) * coefs).sum() + self.angle.const) / 2

    def _pad(self, value: torch.Tensor, fill: float) -> torch.Tensor:
        rest = value.new_full((2 ** len(self.sources) - 1,), fill)
        return torch.cat((rest, value.reshape(1)))

    def forward(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = self._half_angle(params)
        return self._pad(half.cos(), 1.0), self._pad(half.sin(), 0.0)

    def backward(
        self, params: torch.Tensor, c_bar: torch.Tensor, s_bar: torch.Tensor, out: torch.Tensor
    ) -> None:
        half = self._half_angle(params)
        angle_bar = (s_bar[-1] * half.cos() - c_bar[-1] * half.sin()) / 2
        slots, coefs = self._tensors[(params.dtype, params.device)]
        out.index_add_(0, slots, coefs * angle_bar)


class _Tables:
    """The arranged tables of one run, ``[c; s]`` stacked as ``[2·2^q_src, 2^runtime]``.

    Cached (built once, gradients summed, one provider backward at the end) or built at every
    use with an immediate backward, when the tables would not fit next to the states.
    """

    def __init__(self, providers: list, arrangements: list, params, cached: bool) -> None:
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
        """Arrangement ``i``'s stacked table."""
        if self.cached and i in self._values:
            return self._values[i]
        arrangement = self.arrangements[i]
        c, s = self.providers[arrangement.provider].forward(self.params)
        value = torch.cat((arrangement.arrange(c), arrangement.arrange(s)))
        if self.cached:
            self._values[i] = value
        return value

    def add_grad(self, i: int, grad: torch.Tensor, onehot: torch.Tensor | None) -> None:
        """Add a use's gradient (``[2·rows, B]`` with ``onehot [2^runtime, B]``, else
        ``[2·rows, 1]``) to arrangement ``i``'s."""
        if not self.cached:
            columns = 1 if onehot is None else onehot.shape[0]
            total = grad.new_zeros(grad.shape[0], columns)
            self._backward({i: self._accumulate(total, grad, onehot)})
        elif i in self._grads:
            self._accumulate(self._grads[i], grad, onehot)
        else:
            self._grads[i] = grad if onehot is None else grad @ onehot.T

    @staticmethod
    def _accumulate(total: torch.Tensor, grad: torch.Tensor, onehot) -> torch.Tensor:
        return total.add_(grad) if onehot is None else total.addmm_(grad, onehot.T)

    def finish(self) -> torch.Tensor:
        """Gradient of the parameters once every kernel's backward has run."""
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


# ----------------------------------------------------------------------------- the run


def _abs2(x: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(x).square().sum(-1) if x.is_complex() else x * x


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Re(conj(a) · b)`` elementwise."""
    if a.is_complex():
        return (torch.view_as_real(a) * torch.view_as_real(b)).sum(-1)
    return a * b


class _Run:
    """Mutable state of one run: tokens, sampling, outputs, and the incoming gradients.

    ``assignment`` fixes the values of some classical bits per column instead of reading them
    from the tokens (the columns of a block's construction are its bits' values).
    """

    def __init__(
        self,
        words: torch.Tensor,
        mode: str,
        generator,
        tables: _Tables,
        steps: int,
        io: int,
        assignment: dict[_Bit, torch.Tensor] | None = None,
    ) -> None:
        self.words, self.mode, self.generator, self.tables = words, mode, generator, tables
        self.io, self.assignment = io, assignment or {}
        self.probs: list[torch.Tensor | None] = [None] * steps
        self.log_norms: list[torch.Tensor] = []
        self.grad_probs: torch.Tensor | None = None
        self.grad_log_norm: torch.Tensor | None = None
        self.blocks = _Blocks()
        self._indices: dict[tuple[_Bit, ...], torch.Tensor] = {}
        self._onehots: dict[tuple, torch.Tensor] = {}
        self._groups: dict[tuple[_Bit, ...], tuple[torch.Tensor, list[int]]] = {}

    @property
    def batch(self) -> int:
        return self.words.shape[0]

    def index(self, values: tuple[_Bit, ...]) -> torch.Tensor:
        """``[B]`` integers ``Σ v_j 2^(k-1-j)`` of classical bits, per sequence (cached)."""
        if values not in self._indices:
            out = torch.zeros(self.batch, dtype=torch.int64, device=self.words.device)
            for value in values:
                out = 2 * out + self._bit(value, out)
            self._indices[values] = out
        return self._indices[values]

    def _bit(self, value: _Bit, like: torch.Tensor) -> torch.Tensor:
        if value in self.assignment:
            return self.assignment[value]
        return token_bits(self.words, value.bits, self.io, value.const)

    def groups(self, values: tuple[_Bit, ...]) -> tuple[torch.Tensor, list[int]]:
        """The sequences sorted by :meth:`index` (a permutation) and the size of each group."""
        if values not in self._groups:
            index = self.index(values)
            counts = torch.bincount(index, minlength=2 ** len(values)).tolist()
            self._groups[values] = (torch.argsort(index, stable=True), counts)
        return self._groups[values]

    def onehot(self, values: tuple[_Bit, ...], dtype: torch.dtype) -> torch.Tensor:
        """``[2^k, B]``: column ``b`` is the basis vector of :meth:`index` ``[b]`` (cached)."""
        key = (values, dtype)
        if key not in self._onehots:
            index = self.index(values)
            out = torch.zeros(2 ** len(values), self.batch, dtype=dtype, device=index.device)
            self._onehots[key] = out.scatter_(0, index[None, :], 1.0)
        return self._onehots[key]

    def outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        probs = torch.stack(self.probs, 1)
        if self.log_norms:
            log_norm = torch.stack(self.log_norms).sum(0)
        else:
            log_norm = probs.new_zeros(probs.shape[0])
        return probs, log_norm


# ----------------------------------------------------------------------------- kernels
#
# Each kernel maps the state ``[2^q, B]`` forward (differentiable by plain autograd when grad
# mode is on; the fast in-place forms otherwise) and has an exact adjoint ``backward``.


class _Rotate:
    """``[[c, -s], [s, c]]`` on the target, per branch of the sources (linear).

    Token-dependent classical sources pick each sequence's table column through a one-hot
    matrix product (gathering and, in the backward pass, scattering in one call each).
    """

    changes_state = True

    def __init__(self, arrangement: int, layout: _Layout, runtime: tuple[_Bit, ...]) -> None:
        self.arrangement, self.layout, self.runtime = arrangement, layout, runtime

    def flops(self) -> tuple[float, float]:
        return 3, 9

    def _onehot(self, run: _Run) -> torch.Tensor | None:
        if not self.runtime:
            return None
        return run.onehot(self.runtime, run.tables.params.dtype)

    def _tables(self, run: _Run, onehot) -> tuple[torch.Tensor, torch.Tensor]:
        cs = run.tables.get(self.arrangement)
        if onehot is not None:
            cs = cs @ onehot
        return cs.view(2, *self.layout.table_shape, cs.shape[1]).unbind(0)

    def forward(self, psi: torch.Tensor, run: _Run) -> torch.Tensor:
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

    def backward(self, psi_in, psi_out, grad: torch.Tensor, run: _Run) -> torch.Tensor:
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
            self.layout.reduce(_dot(g, x), self.layout.full_dims, table_grad[0])
            self.layout.reduce(_dot(g1, x0) - _dot(g0, x1), self.layout.half_dims, table_grad[1])
        run.tables.add_grad(self.arrangement, table_grad.view(-1, columns), onehot)
        out = torch.empty_like(g)
        o0, o1 = out.unbind(self.layout.tdim)
        torch.mul(g0, c, out=o0).addcmul_(g1, s)
        torch.mul(g1, c, out=o1).addcmul_(g0, s, value=-1)
        return out.view(grad.shape)


class _Flip:
    """``X`` on a quantum qubit, for every sequence or (an input write) where a token bit is 1."""

    changes_state = True

    def __init__(self, position: int, n_quantum: int, bit: WordBit | None = None) -> None:
        self.shape = (2**position, 2, 2 ** (n_quantum - position - 1))
        self.bit = _Bit(0, (bit,)) if bit is not None else None

    def flops(self) -> tuple[float, float]:
        return 1, 1

    def forward(self, psi: torch.Tensor, run: _Run) -> torch.Tensor:
        x = psi.view(*self.shape, psi.shape[-1])
        flipped = x.flip(1)
        if self.bit is not None:
            flipped = torch.where(run.index((self.bit,)).bool(), flipped, x)
        return flipped.view(psi.shape)

    def backward(self, psi_in, psi_out, grad: torch.Tensor, run: _Run) -> torch.Tensor:
        return self.forward(grad, run)


class _Promote:
    """A classical qubit becomes quantum: a new state axis holding its value's basis state."""

    changes_state = True

    def __init__(self, position: int, n_quantum: int, value: _Bit) -> None:
        self.shape = (2**position, 1, 2 ** (n_quantum - position))
        self.value = value

    def flops(self) -> tuple[float, float]:
        return 2, 2

    def _onehot(self, run: _Run, like: torch.Tensor) -> torch.Tensor:
        dtype = like.real.dtype if like.is_complex() else like.dtype
        if self.value.static:
            onehot = torch.zeros(2, 1, dtype=dtype, device=like.device)
            onehot[self.value.const] = 1
        else:
            bit = run.index((self.value,)).to(dtype)
            onehot = torch.stack((1 - bit, bit))
        return onehot.view(1, 2, 1, -1)

    def forward(self, psi: torch.Tensor, run: _Run) -> torch.Tensor:
        x = psi.view(*self.shape, psi.shape[-1])
        return (x * self._onehot(run, psi)).view(-1, psi.shape[-1])

    def backward(self, psi_in, psi_out, grad: torch.Tensor, run: _Run) -> torch.Tensor:
        g = grad.view(self.shape[0], 2, self.shape[2], grad.shape[-1])
        return (g * self._onehot(run, grad)).sum(1).view(psi_in.shape)


class _Words:
    """Views of the state separating the quantum qubits of a word (in its bit order)."""

    def __init__(self, quantum: tuple[int, ...], qubits: tuple[int, ...]) -> None:
        runs = _runs(["R" if q in qubits else "N" for q in quantum])
        self.k = sum(q in quantum for q in qubits)
        self.shape = tuple(size for _, size in runs)
        self.word_shape = tuple(size if role == "R" else 1 for role, size in runs)
        self.word_dims = [i for i, (role, _) in enumerate(runs) if role == "R"]
        self.other_dims = [i for i, (role, _) in enumerate(runs) if role == "N"]
        order = [q for q in qubits if q in quantum]
        self.perm = tuple(sorted(range(self.k), key=lambda i: order[i]))
        self.inverse = tuple(sorted(range(self.k), key=lambda i: self.perm[i]))

    def marginal(self, psi: torch.Tensor) -> torch.Tensor:
        """``[B, 2^k]`` unnormalised probabilities of the quantum part of the word."""
        batch = psi.shape[-1]
        x = _abs2(psi.view(*self.shape, batch))
        if self.other_dims:
            x = x.sum(self.other_dims)
        x = x.reshape((2,) * self.k + (batch,)).permute(*self.inverse, self.k)
        return x.reshape(2**self.k, batch).T

    def expand(self, values: torch.Tensor) -> torch.Tensor:
        """``[B, 2^k]`` per-word values, broadcasting against the state view."""
        batch = values.shape[0]
        x = values.T.reshape((2,) * self.k + (batch,)).permute(*self.perm, self.k)
        return x.reshape(*self.word_shape, batch)


def _spread(width: int, shifts: list[int]) -> list[int]:
    """For each ``width``-bit integer, its bits (first most significant) moved to ``shifts``."""
    return [
        sum(((w >> (width - 1 - i)) & 1) << shift for i, shift in enumerate(shifts))
        for w in range(2**width)
    ]


class _Readout:
    """Record ``p_t`` (normalised by the norm it reads); sample the next token if asked.

    Classical qubits of the word contribute their bit: the quantum marginal is placed at the
    full words those bits select, per sequence.
    """

    changes_state = False

    def __init__(self, quantum: tuple[int, ...], qubits: tuple[int, ...], step: int, values):
        self.view, self.step, self.k = _Words(quantum, qubits), step, len(qubits)
        shifts = [self.k - 1 - j for j, q in enumerate(qubits) if q in quantum]
        self.positions = _spread(len(shifts), shifts)
        self.classical = tuple(
            (values[q], self.k - 1 - j) for j, q in enumerate(qubits) if q not in quantum
        )

    def flops(self) -> tuple[float, float]:
        return 2, 3

    def _columns(self, run: _Run, like: torch.Tensor) -> torch.Tensor | None:
        """``[B, 2^kq]`` full-word index of each quantum word, or ``None`` if all quantum."""
        if not self.classical:
            return None
        base = torch.zeros(run.batch, dtype=torch.int64, device=like.device)
        for value, shift in self.classical:
            base = base + (run.index((value,)) << shift)
        positions = torch.tensor(self.positions, device=like.device)
        return base[:, None] + positions[None, :]

    def forward(self, psi: torch.Tensor, run: _Run) -> torch.Tensor:
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

    def backward(self, psi_in, psi_out, grad: torch.Tensor, run: _Run) -> torch.Tensor:
        m = self.view.marginal(psi_in)
        z = m.sum(1, keepdim=True)
        g = run.grad_probs[:, self.step]
        columns = self._columns(run, psi_in)
        if columns is not None:
            g = g.gather(1, columns)
        coef = 2 * (g - (g * m).sum(1, keepdim=True) / z) / z
        x = psi_in.view(*self.view.shape, psi_in.shape[-1])
        return grad + (x * self.view.expand(coef)).view(grad.shape)


class _Project:
    """Keep the amplitudes whose word on ``qubits`` is ``word``; those qubits become classical.

    ``word`` gives each qubit's target bit; quantum qubits leave the state (summed out after
    masking), classical ones multiply the state by ``[value == target bit]``.
    """

    changes_state = True

    def __init__(self, quantum: tuple[int, ...], qubits: tuple[int, ...], word, values) -> None:
        self.view = _Words(quantum, qubits)
        self.quantum_word = tuple(word[j] for j, q in enumerate(qubits) if q in quantum)
        self.checks = tuple((values[q], word[j]) for j, q in enumerate(qubits) if q not in quantum)

    def flops(self) -> tuple[float, float]:
        return 2, 1

    def _mask(self, run: _Run, like: torch.Tensor) -> torch.Tensor:
        dtype = like.real.dtype if like.is_complex() else like.dtype
        if all(bit.static for bit in self.quantum_word):
            onehot = torch.zeros(1, 2**self.view.k, dtype=dtype, device=like.device)
            onehot[:, _static_index(self.quantum_word)] = 1
        else:
            onehot = torch.zeros(run.batch, 2**self.view.k, dtype=dtype, device=like.device)
            onehot.scatter_(1, run.index(self.quantum_word)[:, None], 1.0)
        for value, target in self.checks:
            same = run.index((value,)) == run.index((target,))
            onehot = onehot * same[:, None].to(dtype)
        return self.view.expand(onehot)

    def forward(self, psi: torch.Tensor, run: _Run) -> torch.Tensor:
        x = psi.view(*self.view.shape, psi.shape[-1])
        out = x * self._mask(run, psi)
        if self.view.word_dims:
            out = out.sum(self.view.word_dims)
        return out.reshape(-1, psi.shape[-1])

    def backward(self, psi_in, psi_out, grad: torch.Tensor, run: _Run) -> torch.Tensor:
        shape = tuple(1 if i in self.view.word_dims else s for i, s in enumerate(self.view.shape))
        g = grad.view(*shape, grad.shape[-1])
        return (g * self._mask(run, grad)).reshape(psi_in.shape)


class _Block:
    """A run of rotations and flips on a small state, applied as one matrix per value of the
    classical bits it reads: ``ψ_b ← M[v_b] ψ_b``, sequences grouped by ``v``.

    ``M`` is built once per run by the block's own kernels acting on the identity (one column
    per basis state and bit value); blocks equal up to which tokens they read share it.
    """

    changes_state = True

    def __init__(self, key: int, kernels: list, build: tuple[_Bit, ...], variables, size: int):
        self.key, self.kernels, self.build, self.size = key, kernels, build, size
        self.variables: tuple[_Bit, ...] = variables

    def flops(self) -> tuple[float, float]:
        return 2 * 2**self.size, 4 * 2**self.size

    @property
    def columns(self) -> int:
        """Columns of the construction: one per basis state and value of the bits."""
        return 2 ** (self.size + len(self.build))

    def build_flops(self) -> tuple[float, float]:
        """Element operations of building the matrices, and of their backward pass."""
        f = sum(k.flops()[0] for k in self.kernels) * 2**self.size * self.columns
        b = sum(k.flops()[1] for k in self.kernels) * 2**self.size * self.columns
        return f, f + b

    def _apply(self, run: _Run, psi: torch.Tensor, transpose: bool, grads=None) -> torch.Tensor:
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
                if grads is not None:
                    grads[0][v].addmm_(x[:, part], other[:, part].T)
                start += n
        return torch.empty_like(out).index_copy_(1, perm, out)

    def forward(self, psi: torch.Tensor, run: _Run) -> torch.Tensor:
        return self._apply(run, psi, transpose=False)

    def backward(self, psi_in, psi_out, grad: torch.Tensor, run: _Run) -> torch.Tensor:
        accumulator = run.blocks.gradient(self)
        return self._apply(run, grad, transpose=True, grads=(accumulator, psi_in))


class _Blocks:
    """The block operators of one run: built on first use; their gradients, summed over every
    use, flow back through the blocks' kernels once, at the end of the backward pass."""

    def __init__(self) -> None:
        self._operators: dict[int, torch.Tensor] = {}
        self._grads: dict[int, tuple[_Block, torch.Tensor]] = {}

    def operator(self, block: _Block, run: _Run) -> torch.Tensor:
        """``[2^r, 2^q, 2^q]``: the block's matrix for each value of its bits."""
        if block.key not in self._operators:
            columns = _construct(block, run, keep=False)[0][-1]
            q, r = block.size, len(block.variables)
            operator = columns.view(2**q, 2**r, 2**q).transpose(0, 1).contiguous()
            self._operators[block.key] = operator
        return self._operators[block.key]

    def gradient(self, block: _Block) -> torch.Tensor:
        if block.key not in self._grads:
            operator = self._operators[block.key]
            self._grads[block.key] = (block, torch.zeros_like(operator))
        return self._grads[block.key][1]

    def finish(self, run: _Run) -> None:
        """Send each operator's gradient through its kernels (into the run's tables)."""
        for block, grad in self._grads.values():
            states, sub = _construct(block, run)
            q, r = block.size, len(block.variables)
            g = grad.transpose(0, 1).reshape(2**q, 2 ** (q + r))
            for i in range(len(block.kernels) - 1, -1, -1):
                g = block.kernels[i].backward(states[i], states[i + 1], g, sub)
        self._grads.clear()


def _construct(block: _Block, run: _Run, keep: bool = True) -> tuple[list[torch.Tensor], _Run]:
    """The block's kernels applied to every basis state under every value of its bits.

    Column ``v·2^q + j`` starts as basis state ``j`` with the bits set to ``v``; the states
    after each kernel (only the last unless ``keep``) are returned with the run that assigns
    the bits.
    """
    q, r = block.size, len(block.build)
    dtype, device = run.tables.params.dtype, run.tables.params.device
    column = torch.arange(2 ** (q + r), device=device)
    assignment = {v: (column >> (q + r - 1 - i)) & 1 for i, v in enumerate(block.build)}
    words = torch.zeros(2 ** (q + r), 0, dtype=torch.int64, device=device)
    sub = _Run(words, "replay", None, run.tables, 0, run.io, assignment)
    states = [torch.eye(2**q, dtype=dtype, device=device).repeat(1, 2**r)]
    for kernel in block.kernels:
        state = kernel.forward(states[-1], sub)
        if keep:
            states.append(state)
        else:
            states[-1] = state
    return states, sub


class _Normalise:
    """``ψ / ‖ψ‖``, adding ``log ‖ψ‖²`` to the run's ``log_norm``."""

    changes_state = True

    def flops(self) -> tuple[float, float]:
        return 3, 6

    def forward(self, psi: torch.Tensor, run: _Run) -> torch.Tensor:
        r = _abs2(psi).sum(0)
        if run.mode != "replay":
            run.log_norms.append(r.log())
        return psi * r.rsqrt()

    def backward(self, psi_in, psi_out, grad: torch.Tensor, run: _Run) -> torch.Tensor:
        r = _abs2(psi_in).sum(0)
        k = _dot(psi_out, grad).sum(0) - 2 * run.grad_log_norm
        return (grad - psi_out * k) * r.rsqrt()


# ----------------------------------------------------------------------------- compiling


class _Compiler:
    """One pass over the program: kernels, tables, and which qubits are quantum where."""

    def __init__(self, program: Program, limit_bits: int) -> None:
        self.io, self.limit = program.io, limit_bits
        self.quantum: tuple[int, ...] = ()
        self.values = {q: _Bit() for q in range(program.dag.n_qubits)}
        self.kernels: list = []
        self.sizes: list[int] = []
        self.providers: list = []
        self.arrangements: list[_Arrangement] = []
        self._index: dict[Any, int] = {}
        self.decay = 0
        handlers = {
            "neuron": self._neuron,
            "gate": self._gate,
            "wordx": self._wordx,
            "project": self._project,
            "postselect": self._postselect,
            "readout": self._readout,
        }
        for op in program.ops:
            if op.kind not in handlers:
                raise BackendError(f"statevector cannot simulate operation {op!r}")
            handlers[op.kind](op)
        if self.decay:
            self._emit(_Normalise())

    def _emit(self, kernel) -> None:
        self.kernels.append(kernel)
        self.sizes.append(len(self.quantum))

    def _dedup(self, key: Any, items: list, make) -> int:
        if key not in self._index:
            self._index[key] = len(items)
            items.append(make())
        return self._index[key]

    def _neuron(self, op: Neuron) -> None:
        p = self._dedup(op, self.providers, lambda: _NeuronTable(op))
        bits = self.providers[p].decay_bits
        if self.decay + bits > self.limit:
            self._emit(_Normalise())
            self.decay = 0
        self.decay += bits
        self._rotation(p, op.target, op.sources)

    def _gate(self, op) -> None:
        if op.name == "x":
            self._flip(op.qubits[0], None)
            return
        if op.name not in ("ry", "mcry"):
            raise BackendError(f"statevector cannot simulate gate {op.name!r}")
        controls = op.qubits[:-1]
        if any(self._constant(q) == 0 for q in controls):
            return
        key = (op.angle, op.qubits)
        p = self._dedup(key, self.providers, lambda: _RotationTable(op.angle, op.qubits))
        self._rotation(p, op.qubits[-1], controls)

    def _constant(self, qubit: int) -> int | None:
        """The value of a classical qubit with a constant value, else ``None``."""
        value = self.values[qubit]
        return value.const if qubit not in self.quantum and value.static else None

    def _rotation(self, provider: int, target: int, sources: tuple[int, ...]) -> None:
        if target not in self.quantum:
            self._promote(target)
        kinds: dict[str, list[int]] = {"runtime": [], "static": [], "quantum": []}
        for i, q in enumerate(sources):
            if q in self.quantum:
                kinds["quantum"].append(i)
            else:
                kinds["static" if self._constant(q) is not None else "runtime"].append(i)
        quantum = sorted(kinds["quantum"], key=lambda i: sources[i])
        static = tuple(self.values[sources[i]] for i in kinds["static"])
        arrangement = _Arrangement(
            provider=provider,
            m=len(sources),
            perm=tuple(kinds["runtime"] + kinds["static"] + quantum),
            n_runtime=len(kinds["runtime"]),
            n_static=len(static),
            static_index=_static_index(static),
        )
        a = self._dedup(arrangement, self.arrangements, lambda: arrangement)
        layout = _Layout.of(self.quantum, target, {sources[i] for i in quantum})
        runtime = tuple(self.values[sources[i]] for i in kinds["runtime"])
        self._emit(_Rotate(a, layout, runtime))

    def _wordx(self, op) -> None:
        self._flip(op.qubit, op.bit)

    def _flip(self, qubit: int, bit: WordBit | None) -> None:
        if qubit in self.quantum:
            self._emit(_Flip(self.quantum.index(qubit), len(self.quantum), bit))
        else:
            self.values[qubit] = self.values[qubit].flip(bit)

    def _promote(self, qubit: int) -> None:
        position = sum(q < qubit for q in self.quantum)
        kernel = _Promote(position, len(self.quantum), self.values[qubit])
        self.quantum = tuple(sorted((*self.quantum, qubit)))
        self._emit(kernel)

    def _project(self, op) -> None:
        k = len(op.qubits)
        word = tuple(_Bit(0, (WordBit(op.token, j + self.io - k),)) for j in range(k))
        self._collapse(op.qubits, word)

    def _postselect(self, op) -> None:
        self._collapse(op.qubits, (_Bit(),))

    def _collapse(self, qubits: tuple[int, ...], word: tuple[_Bit, ...]) -> None:
        kernel = _Project(self.quantum, qubits, word, self.values)
        self.quantum = tuple(q for q in self.quantum if q not in qubits)
        self.values.update(zip(qubits, word, strict=True))
        self._emit(kernel)
        self._emit(_Normalise())
        self.decay = 0

    def _readout(self, op) -> None:
        self._emit(_Readout(self.quantum, op.qubits, op.step, self.values))


def _check_program(program: Program) -> None:
    n = program.dag.n_qubits
    if n > MAX_QUBITS:
        raise BackendError(
            f"statevector: {n} qubits need 2^{n} amplitudes per sequence; at most {MAX_QUBITS} "
            "qubits are supported (use a tensor-network backend for wide cells)"
        )
    steps = sorted(op.step for op in program.ops if op.kind == "readout")
    if steps != list(range(program.steps)):
        raise BackendError(
            f"statevector: the program's readouts are at steps {steps[:8]}…; expected exactly "
            f"one per step 0 … {program.steps - 1}"
        )


def _sampleable(program: Program) -> bool:
    """Whether every op that reads token ``t + 1`` comes after the readout of step ``t``."""
    read = 0
    for op in program.ops:
        if op.kind == "readout":
            read = max(read, op.step + 1)
        token = op.bit.token if op.kind == "wordx" else op.token if op.kind == "project" else 0
        if token > read:
            return False
    return True


def _segments(kernels: list, length: int) -> list[tuple[int, int]]:
    """Kernel ranges, each with at most ``length`` state-changing kernels."""
    bounds, count = [0], 0
    for i, kernel in enumerate(kernels):
        if kernel.changes_state:
            if count == length:
                bounds.append(i)
                count = 0
            count += 1
    bounds.append(len(kernels))
    return list(zip(bounds[:-1], bounds[1:], strict=True))


#: Time model of a forward+backward run (:attr:`Cost.seconds`): seconds per kernel of the
#: program and per counted flop (its passes are memory-bound); fitted to the local r = 1
#: points of ``python -m benchmarks.contraction_scaling --threads 1`` (8–22 qubits, 1–3
#: steps: about 120 µs per kernel, 0.6–1.2 ns per flop once the state is large).
RUN_KERNEL_SECONDS = 120e-6
RUN_FLOP_SECONDS = 0.9e-9

#: Fusion decision constants: time of one elementwise kernel (forward, replay and backward:
#: per kernel and per amplitude) and of one matrix flop, and the largest block matrices.
_KERNEL_SECONDS, _AMPLITUDE_SECONDS, _FLOP_SECONDS = 80e-6, 3.5e-9, 0.04e-9
_MAX_BLOCK_BYTES = 64 * 2**20


def _variables(kernels: list) -> tuple[_Bit, ...]:
    """The distinct classical bits the kernels read, in order of first use."""
    seen: dict[_Bit, None] = {}
    for kernel in kernels:
        bits = kernel.runtime if isinstance(kernel, _Rotate) else (kernel.bit,)
        seen.update((bit, None) for bit in bits if bit is not None)
    return tuple(seen)


def _signature(kernels: list, variables: tuple[_Bit, ...]) -> tuple:
    """What a block computes, with its bits replaced by their positions in ``variables``."""
    place = {bit: i for i, bit in enumerate(variables)}
    out = []
    for k in kernels:
        if isinstance(k, _Rotate):
            out.append((k.arrangement, k.layout, tuple(place[b] for b in k.runtime)))
        else:
            out.append((k.shape, None if k.bit is None else place[k.bit]))
    return tuple(out)


def _worthwhile(size: int, n_bits: int, n_kernels: int, uses: int, batch: int, item: int) -> bool:
    """Whether matrices beat the kernels, by the model of :data:`_KERNEL_SECONDS` & co."""
    columns = 2 ** (size + n_bits)
    if 2**size * columns * item > _MAX_BLOCK_BYTES:
        return False
    kernels = n_kernels * (_KERNEL_SECONDS + _AMPLITUDE_SECONDS * 2**size * batch)
    per_use = 3 * (4 + 3 * 2**n_bits) * 2e-6 + 8 * 4**size * batch * _FLOP_SECONDS * item / 4
    build = 2 * n_kernels * (_KERNEL_SECONDS + _AMPLITUDE_SECONDS * 2**size * columns)
    return uses * per_use + build < uses * kernels


def _linear_runs(kernels: list) -> list[tuple[int, int]]:
    """Maximal ranges of two or more consecutive rotations and flips."""
    runs, start = [], 0
    for i, kernel in enumerate([*kernels, None]):
        if not isinstance(kernel, (_Rotate, _Flip)):
            if i - start >= 2:
                runs.append((start, i))
            start = i + 1
    return runs


def _fuse(
    kernels: list, sizes: list[int], batch: int, item: int, force: bool | None
) -> tuple[list, list]:
    """Replace runs of rotations and flips by :class:`_Block` s where that pays (or ``force``).

    Runs that compute the same thing up to which token bits they read share one block key;
    the first run's kernels build its matrices.
    """
    groups: dict[tuple, list[tuple[int, int, tuple[_Bit, ...]]]] = {}
    for start, stop in _linear_runs(kernels):
        variables = _variables(kernels[start:stop])
        signature = (sizes[start], _signature(kernels[start:stop], variables))
        groups.setdefault(signature, []).append((start, stop, variables))
    blocks: dict[int, tuple[int, _Block]] = {}
    for key, uses in enumerate(groups.values()):
        first, stop, build = uses[0]
        size, n_kernels = sizes[first], stop - first
        if force is None:
            fuse = _worthwhile(size, len(build), n_kernels, len(uses), batch, item)
        else:
            fuse = force and 4**size * 2 ** len(build) * item <= _MAX_BLOCK_BYTES
        for start, end, variables in uses if fuse else ():
            blocks[start] = (end, _Block(key, kernels[first:stop], build, variables, size))
    return _splice(kernels, sizes, blocks)


def _splice(kernels: list, sizes: list[int], blocks: dict) -> tuple[list, list]:
    """The kernel list with each ``blocks[start] = (end, block)`` replacing its range."""
    out_kernels, out_sizes, i = [], [], 0
    while i < len(kernels):
        if i in blocks:
            i, block = blocks[i]
            out_kernels.append(block)
            out_sizes.append(block.size)
        else:
            out_kernels.append(kernels[i])
            out_sizes.append(sizes[i])
            i += 1
    return out_kernels, out_sizes


# ----------------------------------------------------------------------------- the plan


class _Adjoint(torch.autograd.Function):
    """Forward keeping one checkpoint per segment; backward replays segments in reverse."""

    @staticmethod
    def forward(ctx, params, plan, words, mode, generator):
        run = plan._new_run(params, words, mode, generator)
        checkpoints: list[torch.Tensor] = []
        plan._forward(run, checkpoints)
        ctx.save_for_backward(params)
        ctx.plan, ctx.run, ctx.checkpoints = plan, run, checkpoints
        probs, log_norm = run.outputs()
        ctx.mark_non_differentiable(run.words)
        return probs, log_norm, run.words

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_probs, grad_log_norm, grad_words):
        (params,) = ctx.saved_tensors
        run = ctx.run
        run.tables.start_backward(params)
        run.grad_probs, run.grad_log_norm = grad_probs, grad_log_norm
        return ctx.plan._backward(run, ctx.checkpoints), None, None, None, None


class StatevectorPlan:
    """A :class:`Program` prepared for exact batched statevector simulation.

    ``run(params, words)`` returns per-step distributions ``[batch, steps, 2^io]``; see the
    module docstring for the algorithm and :class:`StatevectorOptions` for the options.
    """

    def __init__(self, program: Program, options: BackendOptions) -> None:
        _check_program(program)
        self.program, self.options = program, options
        self.real_dtype = real_dtype(options.dtype)
        own = options.of(StatevectorOptions)
        self.gradient = own.gradient
        compiled = _Compiler(program, _DECAY_LIMIT_BITS[self.real_dtype])
        self._kernels, self._sizes = compiled.kernels, compiled.sizes
        self._providers, self._arrangements = compiled.providers, compiled.arrangements
        fuse = own.fuse
        if self.gradient == "recompute" and not options.dtype.is_complex and fuse is not False:
            item = self.real_dtype.itemsize
            self._kernels, self._sizes = _fuse(
                self._kernels, self._sizes, options.batch_size, item, fuse
            )
        changing = sum(k.changes_state for k in self._kernels)
        segment = own.segment or math.ceil(math.sqrt(changing))
        self._segments = _segments(self._kernels, segment)
        self._segment = segment
        self._cache_option = own.cache_tables
        self._sampleable = _sampleable(program)

    # -- cost ---------------------------------------------------------------------------

    @property
    def cost(self) -> Cost:
        """Predicted cost for ``options.batch_size`` sequences (no tensor work)."""
        return self.cost_for(self.options.batch_size)

    def _state_bytes(self, qubits: int, batch: int) -> int:
        return 2**qubits * batch * self.options.dtype.itemsize

    def _table_bytes(self) -> int:
        return sum(a.nbytes(self.real_dtype.itemsize) for a in self._arrangements)

    def _cache_tables(self) -> bool:
        if self._cache_option is not None:
            return bool(self._cache_option)
        return 2 * self._table_bytes() <= max(_TABLE_CACHE_BYTES, self.options.budget() // 4)

    def cost_for(self, batch: int) -> Cost:
        """Predicted peak bytes (forward; forward + backward) and flops for ``batch`` sequences.

        Bytes of live tensors; the process may hold more: glibc keeps freed blocks of a few MB
        resident (measured up to about twice the prediction; within 10 % with
        ``MALLOC_MMAP_THRESHOLD_=131072``).
        """
        sizes = [self._state_bytes(q, batch) for q in self._sizes]
        largest = max(sizes, default=self._state_bytes(0, batch))
        cached = self._cache_tables()
        real = self.real_dtype.itemsize
        table = max((a.nbytes(real) for a in self._arrangements), default=0)
        tables = self._table_bytes() if cached else 4 * table
        steps, words = self.program.steps, 2**self.program.io
        outputs = batch * steps * words * real + 8 * batch * (steps + 1)
        blocks = [2**b.size * b.columns * real for b in self._blocks()]
        block_building = max(
            (m * (len(b.kernels) + 1) for m, b in zip(blocks, self._blocks(), strict=True)),
            default=0,
        )
        # held by the providers for the plan's lifetime, and while one table is built
        # (its provider's temporaries, then arranging it: a permuted copy and the stack)
        constants = sum(p.constant_bytes(real) for p in self._providers)
        building = max((p.workspace_bytes(real) for p in self._providers), default=0)
        building += 3 * table
        # the state, a kernel's output, its two products (c·ψ₀, s·ψ₁) and their views'
        # copies at the widest: up to 5 states measured (test_memory_guard.py), 6 allowed
        forward = 6 * largest + tables + outputs + 3 * sum(blocks) + constants + building
        # the backward builds and differentiates tables while the forward's are held
        differentiating = constants + 3 * building
        if self.gradient == "autograd":
            backward = 3 * sum(sizes) + 4 * largest + 2 * tables + 2 * outputs
            backward += differentiating
        else:
            starts = [sizes[start - 1] if start else sizes[0] for start, _ in self._segments]
            replay = max(sum(sizes[start:stop]) for start, stop in self._segments)
            backward = sum(starts) + replay + 9 * largest + 2 * tables + 2 * outputs
            backward += 2 * sum(blocks) + max(building, block_building)
            backward += differentiating
        flops = self._flops(batch, cached)
        return Cost(
            backend="statevector",
            width=math.log2(largest / self.options.dtype.itemsize),
            flops=float(sum(flops)),
            seconds=len(self._kernels) * RUN_KERNEL_SECONDS + sum(flops) * RUN_FLOP_SECONDS,
            peak_bytes_forward=int(forward),
            peak_bytes_backward=int(backward),
            details=StatevectorCostDetails(
                qubits=self.program.dag.n_qubits,
                largest_state=max(self._sizes, default=0),
                batch=batch,
                steps=steps,
                dtype=str(self.options.dtype).removeprefix("torch."),
                kernels=len(self._kernels),
                fused_blocks=len(self._blocks()),
                gradient=self.gradient,
                checkpoint_every=self._segment if self.gradient == "recompute" else None,
                checkpoints=len(self._segments) if self.gradient == "recompute" else None,
                tables_cached=cached,
                table_bytes=int(tables),
                forward_flops=flops[0],
            ),
        )

    def _flops(self, batch: int, cached: bool) -> tuple[float, float]:
        scale = 2 if self.options.dtype.is_complex else 1
        forward = backward = 0.0
        previous = 0
        for kernel, size in zip(self._kernels, self._sizes, strict=True):
            f, b = kernel.flops()
            elements = 2 ** max(size, previous) * batch * scale
            forward += f * elements
            backward += (f + b) * elements
            previous = size
            if isinstance(kernel, _Rotate) and not cached:
                table = self._providers[self._arrangements[kernel.arrangement].provider].flops()
                forward += table
                backward += 3 * table
        if cached:
            tables = sum(p.flops() for p in self._providers)
            forward += tables
            backward += 2 * tables
        for block in self._blocks():
            build, build_backward = block.build_flops()
            forward += build
            backward += build + build_backward
        return forward, backward

    def _blocks(self) -> list[_Block]:
        """One block per distinct matrix."""
        return list({k.key: k for k in self._kernels if isinstance(k, _Block)}.values())

    # -- running ------------------------------------------------------------------------

    def run(
        self,
        params: torch.Tensor,
        words: torch.Tensor,
        *,
        mode: str = "teacher",
        generator: torch.Generator | None = None,
    ) -> RunResult:
        """Simulate ``words [batch, steps + 1]`` (``[batch, 1]`` prompts in ``"sample"`` mode).

        Raises :class:`BackendError` before allocating when the predicted peak memory exceeds
        ``options.budget()``, and for malformed parameters or words.
        """
        params = self._check_params(params)
        words = self._check_words(words, mode)
        grad = torch.is_grad_enabled() and params.requires_grad
        self._check_budget(words.shape[0], grad)
        if grad and self.gradient == "recompute":
            probs, log_norm, words = _Adjoint.apply(params, self, words, mode, generator)
        else:
            run = self._new_run(params, words, mode, generator)
            with torch.set_grad_enabled(grad):
                self._forward(run, None)
            probs, log_norm = run.outputs()
            words = run.words
        target = target_probs(self.program, probs, words)
        return RunResult(probs=probs, target_prob=target, log_norm=log_norm, words=words)

    def _check_params(self, params: torch.Tensor) -> torch.Tensor:
        params = check_params(self.program, params, "statevector")
        return params.to(device=self.options.device, dtype=self.real_dtype)

    def _check_words(self, words: torch.Tensor, mode: str) -> torch.Tensor:
        words = check_words(self.program, words, mode, "statevector")
        if mode == "sample" and not self._sampleable:
            raise BackendError(
                "statevector: this program uses a token before the readout that samples it"
            )
        return words.to(device=self.options.device)

    def _check_budget(self, batch: int, grad: bool) -> None:
        cost = self.cost_for(batch)
        need = cost.peak_bytes_backward if grad else cost.peak_bytes_forward
        budget = self.options.budget()
        if need > budget:
            raise BackendError(
                f"statevector: this run needs about {format_bytes(need)} "
                f"({'forward + backward' if grad else 'forward'}; "
                f"{self.program.dag.n_qubits} qubits, batch {batch}, {self.program.steps} "
                f"steps, {self.options.dtype}) but the memory budget is "
                f"{format_bytes(budget)}; use a "
                "smaller batch, fewer steps, float32, or a larger BackendOptions.memory_budget"
            )

    def _new_run(self, params, words, mode, generator) -> _Run:
        cached = self._cache_tables()
        tables = _Tables(self._providers, self._arrangements, params, cached)
        return _Run(words, mode, generator, tables, self.program.steps, self.program.io)

    def _forward(self, run: _Run, checkpoints: list | None) -> None:
        dtype, device = self.options.dtype, self.options.device
        psi = torch.ones(1, run.batch, dtype=dtype, device=device)
        for start, stop in self._segments:
            if checkpoints is not None:
                checkpoints.append(psi)
            for kernel in self._kernels[start:stop]:
                psi = kernel.forward(psi, run)

    def _backward(self, run: _Run, checkpoints: list[torch.Tensor]) -> torch.Tensor:
        mode, run.mode = run.mode, "replay"
        grad = None
        pairs = zip(reversed(self._segments), reversed(checkpoints), strict=True)
        for (start, stop), psi in pairs:
            kernels = self._kernels[start:stop]
            states = [psi]
            for kernel in kernels:
                states.append(kernel.forward(states[-1], run))
            if grad is None:
                grad = torch.zeros_like(states[-1])
            for i in range(len(kernels) - 1, -1, -1):
                grad = kernels[i].backward(states[i], states[i + 1], grad, run)
            del states
        run.mode = mode
        run.blocks.finish(run)
        return run.tables.finish()


def prepare(program: Program, options: BackendOptions) -> StatevectorPlan:
    """Prepare ``program`` for the statevector backend (cheap: no tensor work)."""
    return StatevectorPlan(program, options)


register_backend("statevector", prepare, options=StatevectorOptions)

"""The intermediate representation: operations, symbolic angles and the gate DAG.

A :class:`GateDAG` is an ordered tuple of operations (a valid time order) plus the networkx
graph whose nodes are operation indices and whose edges follow each wire in time order.
Parameters are symbolic: an :class:`Angle` is a constant plus a linear combination of named
slots (indices into the canonical slot table, QRNN.md §5). Input writes and projections refer
to bits of sequence tokens through :class:`WordBit`; qubit 0 / bit 0 is the most significant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import ClassVar, Literal

import networkx as nx
import numpy as np

from compiler.errors import Error
from compiler.gates import GATES

__all__ = [
    "CompileError",
    "Slot",
    "Angle",
    "WordBit",
    "Gate",
    "WordX",
    "Neuron",
    "Postselect",
    "Readout",
    "Project",
    "Operation",
    "GateDAG",
]


class CompileError(Error, ValueError):
    """An IR construction or compiler pass was given something it cannot handle."""


@dataclass(frozen=True)
class Slot:
    """One trainable parameter: canonical index, name (``in.h3.[0,5]``) and kind.

    ``kind`` is ``"bias"`` (θ_∅), ``"weight"`` (θ_S, S ≠ ∅) or ``"rotation"`` (φ), which
    selects its initialisation (QRNN.md §5).
    """

    index: int
    name: str
    kind: str


@dataclass(frozen=True)
class Angle:
    """``const + Σ coef · params[slot]``: a rotation angle, linear in the parameters."""

    const: float = 0.0
    terms: tuple[tuple[int, float], ...] = ()

    @classmethod
    def of(cls, slot: int, coef: float = 1.0, const: float = 0.0) -> Angle:
        """Return ``const + coef · params[slot]``: one slot's term."""
        return cls(const=const, terms=((slot, coef),))

    def __add__(self, other: Angle) -> Angle:
        """Return the sum, merging the coefficients of a shared slot and dropping zeros."""
        coefs: dict[int, float] = {}
        for slot, coef in self.terms + other.terms:
            coefs[slot] = coefs.get(slot, 0.0) + coef
        terms = tuple(sorted((s, c) for s, c in coefs.items() if c != 0.0))
        return Angle(self.const + other.const, terms)

    def __neg__(self) -> Angle:
        """Return the negated angle."""
        return Angle(-self.const, tuple((s, -c) for s, c in self.terms))

    @property
    def is_zero(self) -> bool:
        """Whether the angle is identically zero (no constant, no terms)."""
        return self.const == 0.0 and not self.terms

    def evaluate(self, params: Sequence[float] | np.ndarray) -> float:
        """Return the numeric angle for a flat parameter vector in canonical order."""
        return float(self.const + sum(c * float(params[s]) for s, c in self.terms))


@dataclass(frozen=True)
class WordBit:
    """Bit ``bit`` (0 = most significant) of sequence token ``token``.

    In a one-step cell, token 0 is the step's input and token 1 its target; unrolling shifts
    them to absolute positions in the sequence.
    """

    token: int
    bit: int


@dataclass(frozen=True)
class Gate:
    """A primitive unitary from :data:`compiler.gates.GATES` on ``qubits``."""

    name: str
    qubits: tuple[int, ...]
    angle: Angle | None = None

    def __post_init__(self) -> None:
        """Check the gate name, the qubit count and the presence of an angle."""
        info = GATES.get(self.name)
        if info is None:
            raise CompileError(f"unknown gate {self.name!r}; known gates: {', '.join(GATES)}")
        n = len(self.qubits)
        if n < info.min_qubits or (info.max_qubits is not None and n > info.max_qubits):
            raise CompileError(f"gate {self.name!r} cannot act on {n} qubits {self.qubits}")
        if len(set(self.qubits)) != n:
            raise CompileError(f"gate {self.name!r} repeats a qubit in {self.qubits}")
        if info.has_angle != (self.angle is not None):
            raise CompileError(
                f"gate {self.name!r} {'needs' if info.has_angle else 'takes no'} angle"
            )

    kind: ClassVar[Literal["gate"]] = "gate"
    unitary: ClassVar[bool] = True

    def inverse(self) -> Gate:
        """Return the inverse gate (itself when self-inverse, else the negated angle)."""
        if GATES[self.name].self_inverse:
            return self
        if self.angle is None:
            raise CompileError(f"gate {self.name!r} is not self-inverse and has no angle to negate")
        return replace(self, angle=-self.angle)


@dataclass(frozen=True)
class WordX:
    """``X`` on ``qubit`` when bit ``bit`` of a sequence token is 1 (input write or reset)."""

    qubit: int
    bit: WordBit

    kind: ClassVar[Literal["wordx"]] = "wordx"
    unitary: ClassVar[bool] = True

    @property
    def qubits(self) -> tuple[int, ...]:
        """The one qubit written."""
        return (self.qubit,)


@dataclass(frozen=True)
class Neuron:
    """A postselected quantum neuron (QRNN.md §2) on ``target``.

    ``subsets`` lists the monomials (tuples of source lanes, ``()`` first) in canonical order;
    ``slots`` gives the parameter slot of each. The map on the state is
    ``Σ_x |x⟩⟨x| ⊗ M(x)`` followed by renormalisation, with
    ``η(x) = (offset + Σ θ_S Π_{i∈S} x_i) / 2``.
    """

    target: int
    sources: tuple[int, ...]
    subsets: tuple[tuple[int, ...], ...]
    slots: tuple[int, ...]
    order: int
    offset: float
    label: str = ""

    kind: ClassVar[Literal["neuron"]] = "neuron"
    unitary: ClassVar[bool] = False

    @property
    def qubits(self) -> tuple[int, ...]:
        """The target first, then the sources."""
        return (self.target, *self.sources)

    def monomials(self) -> np.ndarray:
        """0/1 matrix ``[2^m, len(subsets)]``: ``Π_{i∈S} x_i`` on each source branch ``x``.

        Branch index ``x`` runs over the sources in the order of :attr:`sources`, the first
        source being the most significant bit.
        """
        m = len(self.sources)
        position = {q: i for i, q in enumerate(self.sources)}
        branches = (np.arange(2**m)[:, None] >> (m - 1 - np.arange(m))[None, :]) & 1
        out = np.ones((2**m, len(self.subsets)))
        for j, subset in enumerate(self.subsets):
            for q in subset:
                out[:, j] *= branches[:, position[q]]
        return out


@dataclass(frozen=True)
class Postselect:
    """Project ``qubit`` (an ancilla) on ``|0⟩`` and renormalise."""

    qubit: int

    kind: ClassVar[Literal["postselect"]] = "postselect"
    unitary: ClassVar[bool] = False

    @property
    def qubits(self) -> tuple[int, ...]:
        """The one qubit projected."""
        return (self.qubit,)


@dataclass(frozen=True)
class Readout:
    """Record the distribution over words on ``qubits`` (the i/o lanes) at ``step``."""

    qubits: tuple[int, ...]
    step: int

    kind: ClassVar[Literal["readout"]] = "readout"
    unitary: ClassVar[bool] = True


@dataclass(frozen=True)
class Project:
    """Project ``qubits`` on the word of token ``token`` and renormalise (collapse)."""

    qubits: tuple[int, ...]
    token: int

    kind: ClassVar[Literal["project"]] = "project"
    unitary: ClassVar[bool] = False


Operation = Gate | WordX | Neuron | Postselect | Readout | Project


@dataclass(frozen=True)
class GateDAG:
    """Operations in time order on ``n_qubits`` wires (lanes first, then ancillas)."""

    ops: tuple[Operation, ...]
    n_lanes: int
    n_qubits: int
    io: int
    slots: tuple[Slot, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        """Check that every operation acts on a qubit of the DAG."""
        for op in self.ops:
            for q in op.qubits:
                if not 0 <= q < self.n_qubits:
                    raise CompileError(f"{op} acts on qubit {q}; the DAG has {self.n_qubits}")

    @cached_property
    def graph(self) -> nx.DiGraph:
        """Nodes: operation indices (attribute ``op``); edges: wires (attribute ``wires``)."""
        g = nx.DiGraph()
        last: dict[int, int] = {}
        for i, op in enumerate(self.ops):
            g.add_node(i, op=op)
            for q in op.qubits:
                if q in last:
                    if g.has_edge(last[q], i):
                        g.edges[last[q], i]["wires"].append(q)
                    else:
                        g.add_edge(last[q], i, wires=[q])
                last[q] = i
        return g

    def with_ops(self, ops: Iterable[Operation]) -> GateDAG:
        """Return a DAG with the same registers and slots and the given operations."""
        return replace(self, ops=tuple(ops))

    @property
    def n_ancillas(self) -> int:
        """Qubits beyond the lanes: the neurons' ancillas."""
        return self.n_qubits - self.n_lanes

    def counts(self) -> Counter:
        """Operations by kind, gates by name (``gate:mcry``)."""
        return Counter(f"gate:{op.name}" if op.kind == "gate" else op.kind for op in self.ops)

    def depth(self) -> int:
        """Length of the longest chain of operations along the wires."""
        if not self.ops:
            return 0
        return nx.dag_longest_path_length(self.graph) + 1

    def multi_qubit_count(self) -> int:
        """Operations that act on two or more qubits (readouts excepted)."""
        return sum(1 for op in self.ops if len(op.qubits) > 1 and op.kind != "readout")

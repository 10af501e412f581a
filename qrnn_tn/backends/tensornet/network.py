"""The structure of a program's readout networks: which tensors, which indices (no values).

For each readout step ``t`` the network is ``⟨ψ̃_t| Π_w |ψ̃_t⟩`` over all words ``w`` at once:
the ket of every operation before readout ``t`` (earlier collapses included), the same ket
again as the bra (amplitudes are real), glued on every lane at the end, with the i/o lanes'
final indices left open (a hyperedge shared by ket and bra: the diagonal ``p(w)`` unnormalised).
A batch of sequences is one more open index ``b`` carried by the word-dependent tensors only.

Structure never depends on parameter values or words, so one contraction tree serves every
training step and every batch of the same size.

Tensors (:class:`Leaf`) and their index order:

- ``neuron``   ``(target_in, target_out, *sources)``: ``M(x)[out, in]``, diagonal in its sources
  (the source indices are hyperedges: the wires go on with the same index).
- ``gate``     ``(*controls, in, out)`` for ``ry``/``mcry`` (controls are hyperedges); ``x`` too.
- ``start``    ``(b?, out)``: the basis vector a wire starts in, ``|c ⊕ bits of words⟩``.
- ``close``    ``(b?, in)``: ``⟨c ⊕ bits|``, closing a wire at a projection or postselection.
- ``wordx``    ``(b, in, out)``: an input write in the middle of a wire, ``X`` when the bit is 1.
- ``ones``     ``(b,)``: carries the batch index when no word-dependent tensor does.

Projections are rank one per lane, so they cut the wire into a ``close`` and a ``start``.
Neurons can be replaced by their literal ancilla circuit (QRNN.md §2) when that is smaller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from compiler.ir import (
    Angle,
    Gate,
    Neuron,
    Operation,
    Postselect,
    Project,
    Readout,
    WordBit,
    WordX,
)
from compiler.lower import literal_neuron
from compiler.unroll import Program

__all__ = [
    "Leaf",
    "StepNetwork",
    "NetworkSet",
    "build_networks",
    "iter_networks",
    "NEURON_FORMS",
]

#: How neurons become tensors: one diagonal hyperedge tensor, the ancilla circuit, or the
#: smaller of the two per neuron.
NEURON_FORMS = ("auto", "hyper", "literal")
#: Index id of the batch index in every network.
BATCH = 0


@dataclass(frozen=True)
class Leaf:
    """One input tensor: its kind, what fills it, and its index ids.

    ``ref`` is the op position (``neuron``), an :class:`Angle` (``ry``/``mcry`` gates), or
    ``(const, bits)`` with ``bits`` a tuple of :class:`WordBit` XORed into ``const``
    (``start``/``close``/``wordx``). ``name`` is the gate name for ``gate`` leaves; ``lane``
    the lane it acts on (an ancilla counts as its neuron's target), for ordering.
    """

    kind: str
    inds: tuple[int, ...]
    ref: int | Angle | tuple[int, tuple[WordBit, ...]] | None = None
    name: str = ""
    batched: bool = False
    lane: int = 0

    @property
    def position(self) -> int:
        """The op position of a ``neuron`` leaf."""
        if not isinstance(self.ref, int):
            raise TypeError(f"a {self.kind!r} leaf has no op position")
        return self.ref

    @property
    def angle(self) -> Angle:
        """The angle of a rotation ``gate`` leaf."""
        if not isinstance(self.ref, Angle):
            raise TypeError(f"a {self.kind!r} leaf {self.name!r} has no angle")
        return self.ref

    @property
    def word(self) -> tuple[int, tuple[WordBit, ...]]:
        """``(const, bits)`` of a ``start``, ``close`` or ``wordx`` leaf."""
        if not isinstance(self.ref, tuple):
            raise TypeError(f"a {self.kind!r} leaf has no word bits")
        return self.ref


@dataclass(frozen=True)
class StepNetwork:
    """The network of readout ``step``: leaves, output indices and index sizes."""

    step: int
    leaves: tuple[Leaf, ...]
    output: tuple[int, ...]
    size_dict: dict[int, int] = field(compare=False)

    @property
    def inputs(self) -> list[tuple[int, ...]]:
        """The indices of every leaf, in leaf order."""
        return [leaf.inds for leaf in self.leaves]

    def key(self) -> str:
        """Hash of the structure (indices, output, sizes): the path-cache key."""
        text = repr((self.inputs, self.output, sorted(self.size_dict.items())))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class NetworkSet:
    """All readout networks of a program for a batch size, plus the neurons they use."""

    networks: tuple[StepNetwork, ...]
    neurons: tuple[int, ...]
    batch: int


class _Builder:
    """Walks the ops in time order, tracking the current index of every wire."""

    def __init__(self, program: Program, batch: int, form: str):
        self.program = program
        self.batch = batch
        self.form = form
        self.next_ind = BATCH + 1
        self.leaves: list[Leaf] = []
        self.current: dict[int, int] = {}
        self.pending: dict[int, tuple[int, tuple[WordBit, ...]]] = {}
        self.touched: set[int] = set()
        self.neurons: list[int] = []
        self.n_wires = program.dag.n_qubits
        self.ancilla_lane = 0

    def lane(self, q: int) -> int:
        """Return the lane a wire belongs to (an ancilla: the target of the neuron using it)."""
        return q if q < self.program.n_lanes else self.ancilla_lane

    def fresh(self) -> int:
        self.next_ind += 1
        return self.next_ind - 1

    def start(self, wire: int, const: int = 0, bits: tuple[WordBit, ...] = ()) -> None:
        """Open ``wire`` in a basis state; its tensor is emitted when first used."""
        self.pending[wire] = (const, bits)
        self.current.pop(wire, None)

    def wire(self, q: int) -> int:
        """Return the current index of wire ``q``, emitting its pending start vector first."""
        if q in self.pending:
            const, bits = self.pending.pop(q)
            ind = self.fresh()
            self._vector("start", q, ind, const, bits)
            self.current[q] = ind
        self.touched.add(q)
        return self.current[q]

    def _vector(self, kind: str, q: int, ind: int, const: int, bits: tuple[WordBit, ...]) -> None:
        batched = bool(bits)
        inds = (BATCH, ind) if batched else (ind,)
        leaf = Leaf(kind, inds, ref=(const, bits), batched=batched, lane=self.lane(q))
        self.leaves.append(leaf)

    def advance(self, q: int) -> tuple[int, int]:
        """``(in, out)`` indices of an operation acting non-diagonally on wire ``q``."""
        ind_in = self.wire(q)
        ind_out = self.fresh()
        self.current[q] = ind_out
        return ind_in, ind_out

    def close(self, q: int, const: int, bits: tuple[WordBit, ...]) -> None:
        """Project wire ``q`` on ``|const ⊕ bits⟩`` and reopen it in that state."""
        if q in self.pending:
            pconst, pbits = self.pending[q]
            self.pending[q] = (const, bits)
            if (pconst, pbits) == (const, bits):
                return
            ind = self.fresh()
            self._vector("start", q, ind, pconst, pbits)
        else:
            ind = self.current[q]
        self._vector("close", q, ind, const, bits)
        self.start(q, const, bits)

    def wordx(self, q: int, bit: WordBit) -> None:
        if q in self.pending:
            const, bits = self.pending[q]
            self.pending[q] = (const, (*bits, bit))
            return
        ind_in, ind_out = self.advance(q)
        self.leaves.append(
            Leaf("wordx", (BATCH, ind_in, ind_out), ref=(0, (bit,)), batched=True, lane=q)
        )

    def gate(self, op: Gate) -> None:
        lanes = [q for q in op.qubits if q < self.program.n_lanes]
        if lanes and op.qubits[-1] >= self.program.n_lanes:
            self.ancilla_lane = lanes[0]
        controls = tuple(self.wire(c) for c in op.qubits[:-1])
        ind_in, ind_out = self.advance(op.qubits[-1])
        inds = (*controls, ind_in, ind_out)
        lane = self.lane(op.qubits[-1])
        self.leaves.append(Leaf("gate", inds, ref=op.angle, name=op.name, lane=lane))

    def neuron(self, position: int, op: Neuron) -> None:
        if self._literal(op):
            self.ancilla_lane = op.target
            base = self.n_wires
            ancillas = tuple(range(base, base + op.order))
            for a in ancillas:
                self.start(a)
            for sub in literal_neuron(op, ancillas):
                self.apply(-1, sub)
            for a in ancillas:
                self.pending.pop(a, None)
                self.current.pop(a, None)
            return
        sources = tuple(self.wire(s) for s in op.sources)
        ind_in, ind_out = self.advance(op.target)
        inds = (ind_in, ind_out, *sources)
        self.leaves.append(Leaf("neuron", inds, ref=position, lane=op.target))
        self.neurons.append(position)

    def _literal(self, op: Neuron) -> bool:
        if self.form != "auto":
            return self.form == "literal"
        hyper = 2 ** (len(op.sources) + 2)
        per_level = sum(2 ** (len(s) + 2) for s in op.subsets)
        literal = per_level * (2 ** (op.order + 1))
        return literal < hyper

    def apply(self, position: int, op: Operation) -> None:
        match op:
            case Gate():
                self.gate(op)
            case WordX(qubit=qubit, bit=bit):
                self.wordx(qubit, bit)
            case Neuron():
                self.neuron(position, op)
            case Postselect(qubit=qubit):
                self.close(qubit, 0, ())
            case Project(qubits=qubits, token=token):
                for j, q in enumerate(qubits):
                    self.close(q, 0, (WordBit(token, j),))
            case _:
                raise AssertionError(f"unexpected operation {op}")

    def snapshot(self, step: int, io_lanes: tuple[int, ...]) -> StepNetwork:
        """Ket, bra (indices renamed) and the glue: the network of readout ``step``."""
        for q in io_lanes:
            self.wire(q)
        final = {q: self.current[q] for q in self.touched if q in self.current}
        shared = {BATCH, *final.values()}
        offset = self.next_ind
        bra = [
            Leaf(
                leaf.kind,
                tuple(i if i in shared else i + offset for i in leaf.inds),
                leaf.ref,
                leaf.name,
                leaf.batched,
                leaf.lane,
            )
            for leaf in self.leaves
        ]
        leaves = (*self.leaves, *bra)
        if not any(leaf.batched for leaf in leaves):
            leaves = (*leaves, Leaf("ones", (BATCH,), batched=True))
        output = (BATCH, *(final[q] for q in io_lanes))
        size_dict = {i: 2 for leaf in leaves for i in leaf.inds}
        size_dict[BATCH] = self.batch
        return StepNetwork(step=step, leaves=leaves, output=output, size_dict=size_dict)


def _start(program: Program, batch: int, neuron_form: str) -> _Builder:
    if neuron_form not in NEURON_FORMS:
        raise ValueError(f"neuron_form {neuron_form!r}; accepted: {', '.join(NEURON_FORMS)}")
    builder = _Builder(program, batch, neuron_form)
    for q in range(program.dag.n_qubits):
        builder.start(q)
    return builder


def _snapshots(builder: _Builder, program: Program) -> Iterator[StepNetwork]:
    io_lanes = tuple(range(program.io))
    for position, op in enumerate(program.ops):
        if isinstance(op, Readout):
            yield builder.snapshot(op.step, io_lanes)
        else:
            builder.apply(position, op)


def build_networks(program: Program, batch: int = 1, neuron_form: str = "auto") -> NetworkSet:
    """Return the readout networks of every step of ``program`` for ``batch`` sequences.

    Raises
    ------
    ValueError
        If ``neuron_form`` is not one of :data:`NEURON_FORMS`.
    """
    builder = _start(program, batch, neuron_form)
    networks = tuple(_snapshots(builder, program))
    return NetworkSet(networks=networks, neurons=tuple(builder.neurons), batch=batch)


def iter_networks(
    program: Program, batch: int = 1, neuron_form: str = "auto"
) -> Iterator[StepNetwork]:
    """Yield the readout networks one step at a time, built as they are asked for.

    Each holds every earlier step, so building all of a long sequence costs time quadratic
    in its length; a caller that stops at the first step too large to contract pays only
    for the steps up to it.
    """
    return _snapshots(_start(program, batch, neuron_form), program)

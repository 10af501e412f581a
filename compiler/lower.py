"""Lowering: a :class:`CellSpec` to one time step as a :class:`GateDAG` (QRNN.md §2–§5).

:func:`lower_cell` keeps each neuron as one :class:`Neuron` operation (what simulators use);
:func:`decompose_neurons` expands neurons into the literal repeat-until-success circuit with
ancillas, multi-controlled RY rotations, controlled ``-iY`` and ancilla postselection.
"""

from __future__ import annotations

import math
from itertools import combinations

from compiler.ir import (
    Angle,
    Gate,
    GateDAG,
    Neuron,
    Operation,
    Postselect,
    Project,
    Readout,
    Slot,
    WordBit,
    WordX,
)
from compiler.spec import CellSpec

__all__ = ["lower_cell", "build_slots", "decompose_neurons", "neuron_subsets", "literal_neuron"]

#: Token offsets of a one-step cell: the input it reads and the target it is projected on.
INPUT_TOKEN, TARGET_TOKEN = 0, 1


def neuron_subsets(sources: tuple[int, ...], degree: int) -> tuple[tuple[int, ...], ...]:
    """Subsets of ``sources`` of size ≤ ``degree``: ``()`` first, then by size, then lexically."""
    return tuple(s for k in range(min(degree, len(sources)) + 1) for s in combinations(sources, k))


def _subset_name(subset: tuple[int, ...]) -> str:
    return "[" + ",".join(str(q) for q in subset) + "]"


class _SlotTable:
    """Hands out canonical slot indices in the order operations are lowered."""

    def __init__(self) -> None:
        self.slots: list[Slot] = []

    def add(self, name: str, kind: str) -> int:
        self.slots.append(Slot(index=len(self.slots), name=name, kind=kind))
        return len(self.slots) - 1


def _neuron(spec: CellSpec, table: _SlotTable, prefix: str, target: int) -> Neuron:
    sources = spec.sources_of(target)
    subsets = neuron_subsets(sources, spec.neuron.degree)
    label = f"{prefix}.{spec.lane_name(target)}"
    slots = tuple(
        table.add(f"{label}.{_subset_name(s)}", "weight" if s else "bias") for s in subsets
    )
    return Neuron(
        target=target,
        sources=sources,
        subsets=subsets,
        slots=slots,
        order=spec.neuron.order,
        offset=spec.neuron.offset,
        label=label,
    )


def lower_cell(spec: CellSpec) -> GateDAG:
    """One step of the cell (QRNN.md §3) with neurons as single operations.

    Tokens are relative: ``WordBit(0, b)`` is bit ``b`` of the step's input, ``WordBit(1, b)``
    of its target. The slot table of the result is the canonical parameter order (§5).
    """
    io_lanes = tuple(range(spec.io))
    work_lanes = tuple(range(spec.io, spec.n_lanes))
    table = _SlotTable()
    ops: list[Operation] = [WordX(q, WordBit(INPUT_TOKEN, q)) for q in io_lanes]
    ops += [_neuron(spec, table, "in", g) for g in work_lanes]
    for stage in range(1, spec.stages + 1):
        for g in work_lanes:
            slot = table.add(f"s{stage}.ry.{spec.lane_name(g)}", "rotation")
            ops.append(Gate("ry", (g,), Angle.of(slot)))
        ops += [_neuron(spec, table, f"s{stage}", g) for g in work_lanes]
    ops += [WordX(q, WordBit(INPUT_TOKEN, q)) for q in io_lanes]
    ops += [_neuron(spec, table, "out", g) for g in io_lanes]
    ops.append(Readout(io_lanes, step=0))
    ops.append(Project(io_lanes, token=TARGET_TOKEN))
    ops += [WordX(q, WordBit(TARGET_TOKEN, q)) for q in io_lanes]
    return GateDAG(
        ops=tuple(ops),
        n_lanes=spec.n_lanes,
        n_qubits=spec.n_lanes,
        io=spec.io,
        slots=tuple(table.slots),
    )


def build_slots(spec: CellSpec) -> tuple[Slot, ...]:
    """Return the canonical parameter slots of ``spec`` (QRNN.md §5)."""
    return lower_cell(spec).slots


def _rotations(neuron: Neuron, ancilla: int) -> list[Gate]:
    """``R(x)``: RY(β + θ_∅) on the ancilla, then one |S|-controlled RY(θ_S) per S ≠ ∅."""
    if not neuron.subsets or neuron.subsets[0]:
        raise ValueError(f"neuron {neuron.label} has no bias subset ()")
    out = []
    for subset, slot in zip(neuron.subsets, neuron.slots, strict=True):
        if subset:
            out.append(Gate("mcry", (*subset, ancilla), Angle.of(slot)))
        else:
            out.append(Gate("ry", (ancilla,), Angle.of(slot, const=neuron.offset)))
    return out


def literal_neuron(
    neuron: Neuron,
    ancillas: tuple[int, ...],
    target: int | None = None,
    level: int | None = None,
    dagger: bool = False,
) -> list[Operation]:
    """Return the order-``k`` repeat-until-success circuit of ``neuron`` (Cao et al.; QRNN.md §2).

    Level 1: ``R(x)`` on ancilla ``a0``, controlled ``-iY`` from ``a0`` onto the target,
    ``R(x)†``, postselect ``a0``. Level ``j`` replaces ``R`` by the level ``j-1`` circuit
    writing onto ``a_{j-1}`` and uncomputes it by its inverse, which is the same circuit with
    its top controlled ``-iY`` inverted. ``dagger`` builds that inverse.
    """
    target = neuron.target if target is None else target
    level = neuron.order if level is None else level
    ancilla = ancillas[level - 1]
    sign = -1.0 if dagger else 1.0
    controlled = Gate("mcry", (ancilla, target), Angle(const=sign * math.pi))
    if level == 1:
        rotations = _rotations(neuron, ancilla)
        inverse = [g.inverse() for g in reversed(rotations)]
        return [*rotations, controlled, *inverse, Postselect(ancilla)]
    inner = literal_neuron(neuron, ancillas, target=ancilla, level=level - 1)
    inner_inverse = literal_neuron(neuron, ancillas, target=ancilla, level=level - 1, dagger=True)
    return [*inner, controlled, *inner_inverse, Postselect(ancilla)]


def decompose_neurons(dag: GateDAG) -> GateDAG:
    """Replace every :class:`Neuron` by its literal circuit; ancillas follow the lanes."""
    orders = [op.order for op in dag.ops if op.kind == "neuron"]
    n_anc = max(orders, default=0)
    ancillas = tuple(range(dag.n_qubits, dag.n_qubits + n_anc))
    ops: list[Operation] = []
    for op in dag.ops:
        ops.extend(literal_neuron(op, ancillas) if op.kind == "neuron" else [op])
    return GateDAG(
        ops=tuple(ops),
        n_lanes=dag.n_lanes,
        n_qubits=dag.n_qubits + n_anc,
        io=dag.io,
        slots=dag.slots,
    )

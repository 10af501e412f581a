"""Optimisation passes ``GateDAG → GateDAG``, one job each, each preserving semantics.

Semantics here means every readout distribution of the program, for every parameter vector
and every sequence. Operations that change the norm (neurons, postselections, projections)
are never moved or removed before a readout: with postselection even an operation outside a
readout's light cone reweights its branches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from compiler.ir import Gate, GateDAG, Operation

__all__ = [
    "cancel_inverse_pairs",
    "merge_rotations",
    "drop_unread",
    "PassChange",
    "PassReport",
    "optimise",
    "DEFAULT_PASSES",
]

_ROTATIONS = ("ry", "mcry")


def _inverse(op: Operation) -> Operation | None:
    if op.kind == "wordx":
        return op
    if op.kind == "gate":
        return op.inverse()
    return None


def _scan(
    dag: GateDAG, combine: Callable[[Operation, Operation], list[Operation] | None]
) -> GateDAG:
    """Fuse each op with the op directly before it on all its wires, when ``combine`` allows.

    ``combine(earlier, later)`` returns the replacement (zero or one op) or ``None`` to keep
    both. Wire stacks hold the live ops, so a cancellation can expose a further pair.
    """
    ops: list[Operation | None] = []
    stacks: dict[int, list[int]] = {q: [] for q in range(dag.n_qubits)}
    for op in dag.ops:
        wires = op.qubits
        tops = {stacks[q][-1] if stacks[q] else None for q in wires}
        if len(tops) == 1 and (i := tops.pop()) is not None:
            earlier = ops[i]  # a stack holds live ops only, never a removed (None) one
            if earlier is not None and set(earlier.qubits) == set(wires):
                fused = combine(earlier, op)
                if fused is not None:
                    if fused:
                        ops[i] = fused[0]
                    else:
                        ops[i] = None
                        for q in wires:
                            stacks[q].pop()
                    continue
        ops.append(op)
        for q in wires:
            stacks[q].append(len(ops) - 1)
    return dag.with_ops(op for op in ops if op is not None)


def cancel_inverse_pairs(dag: GateDAG) -> GateDAG:
    """Remove an op followed directly by its inverse (e.g. a reset ``X`` and the next write)."""

    def combine(earlier: Operation, later: Operation) -> list[Operation] | None:
        return [] if _inverse(earlier) == later else None

    return _scan(dag, combine)


def merge_rotations(dag: GateDAG) -> GateDAG:
    """Sum the angles of adjacent rotations with the same controls and target; drop zeros."""

    def combine(earlier: Operation, later: Operation) -> list[Operation] | None:
        if not (isinstance(earlier, Gate) and isinstance(later, Gate)):
            return None
        if earlier.name != later.name or earlier.name not in _ROTATIONS:
            return None
        if earlier.qubits[-1] != later.qubits[-1]:
            return None
        if earlier.angle is None or later.angle is None:  # rotations always carry an angle
            return None
        angle = earlier.angle + later.angle
        return [] if angle.is_zero else [Gate(earlier.name, earlier.qubits, angle)]

    return _scan(dag, combine)


def drop_unread(dag: GateDAG) -> GateDAG:
    """Drop operations that no readout depends on.

    An operation goes if it comes after the last readout, or if it is unitary and every
    operation after it on its wires goes too (then it cancels in every readout).
    """
    last_readout = max((i for i, op in enumerate(dag.ops) if op.kind == "readout"), default=-1)
    graph = dag.graph
    dropped: set[int] = set()
    for i in range(len(dag.ops) - 1, -1, -1):
        op = dag.ops[i]
        if op.kind == "readout":
            continue
        if i > last_readout or (op.unitary and all(j in dropped for j in graph.successors(i))):
            dropped.add(i)
    return dag.with_ops(op for i, op in enumerate(dag.ops) if i not in dropped)


DEFAULT_PASSES: tuple[Callable[[GateDAG], GateDAG], ...] = (
    cancel_inverse_pairs,
    merge_rotations,
    drop_unread,
)


@dataclass(frozen=True)
class PassChange:
    """What one pass did in one round: operation counts before and after."""

    name: str
    round: int
    before: int
    after: int


@dataclass(frozen=True)
class PassReport:
    """The optimised DAG and the log of every pass that changed it."""

    dag: GateDAG
    changes: tuple[PassChange, ...]

    def describe(self) -> str:
        """Return one line per pass that changed the DAG, or a single no-change line."""
        if not self.changes:
            return "passes: no change"
        return "\n".join(
            f"pass {c.name} (round {c.round}): {c.before} -> {c.after} operations"
            for c in self.changes
        )


def optimise(
    dag: GateDAG,
    passes: Sequence[Callable[[GateDAG], GateDAG]] = DEFAULT_PASSES,
    max_rounds: int = 10,
) -> PassReport:
    """Run ``passes`` in order, repeatedly, until none changes the DAG."""
    changes: list[PassChange] = []
    for round_ in range(1, max_rounds + 1):
        changed = False
        for run_pass in passes:
            new = run_pass(dag)
            if new.ops != dag.ops:
                changes.append(PassChange(run_pass.__name__, round_, len(dag.ops), len(new.ops)))
                dag, changed = new, True
        if not changed:
            break
    return PassReport(dag=replace(dag), changes=tuple(changes))

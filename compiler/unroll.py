"""Unrolling a one-step cell over a sequence: the :class:`Program` backends run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compiler.ir import CompileError, GateDAG, Operation, Slot, WordBit
from compiler.lower import INPUT_TOKEN, decompose_neurons, literal_neuron, lower_cell
from compiler.passes import optimise as run_passes
from compiler.spec import CellSpec, load_spec

__all__ = ["Program", "unroll", "compile_program", "MAX_STEPS"]

#: Longest sequence a program may be unrolled to.
MAX_STEPS = 100_000


@dataclass(frozen=True)
class Program:
    """A cell unrolled over ``steps`` steps, read by every backend.

    Step ``t`` (0-based) reads token ``t`` and is projected on token ``t + 1``; a sequence
    for the program therefore has ``steps + 1`` tokens of ``io`` bits. With
    ``separate_targets`` the projection targets are a stream of their own (the original
    code's long-range memory task feeds random bases but collapses onto the remembered one):
    step ``t`` is projected on token ``steps + 1 + t``, so the program reads ``2 steps + 1``
    tokens, the inputs then the targets. ``dag`` holds all operations in time order;
    ``Readout(step=t)`` marks the distribution read at step ``t``.
    """

    spec: CellSpec
    dag: GateDAG
    steps: int
    separate_targets: bool = False

    @property
    def io(self) -> int:
        """Bits per word (the i/o lanes of the cell)."""
        return self.dag.io

    @property
    def n_lanes(self) -> int:
        """Lanes of the cell (ancillas excluded)."""
        return self.dag.n_lanes

    @property
    def ops(self) -> tuple[Operation, ...]:
        """The unrolled operations in time order."""
        return self.dag.ops

    @property
    def slots(self) -> tuple[Slot, ...]:
        """The parameter slots, shared by every step."""
        return self.dag.slots

    @property
    def n_params(self) -> int:
        """The number of trainable parameters."""
        return len(self.dag.slots)

    @property
    def n_tokens(self) -> int:
        """Tokens the program reads: the sequence, plus the separate targets if any."""
        return self.steps + 1 + (self.steps if self.separate_targets else 0)

    @property
    def target_tokens(self) -> list[int]:
        """The token each step is projected on (and scored against), in step order."""
        first = self.steps + 1 if self.separate_targets else 1
        return list(range(first, first + self.steps))

    def segments(self) -> list[tuple[int, int]]:
        """``(start, stop)`` op ranges, one per step, each ending just after its readout.

        The ops after the last readout (if any) are appended to the last segment, so the
        segments cover every operation exactly once.
        """
        ends = [i + 1 for i, op in enumerate(self.ops) if op.kind == "readout"]
        if len(ends) != self.steps:
            raise CompileError(f"program has {len(ends)} readouts for {self.steps} steps")
        starts = [0, *ends[:-1]]
        ends[-1] = len(self.ops)
        return list(zip(starts, ends, strict=True))

    def stats(self) -> dict[str, Any]:
        """Qubits, parameters, operations by kind, depth and multi-qubit counts."""
        literal = literal_counts(self)
        return {
            "name": self.spec.name,
            "steps": self.steps,
            "io": self.io,
            "workspace": self.n_lanes - self.io,
            "logical_qubits": self.n_lanes,
            "ancillas": max((op.order for op in self.ops if op.kind == "neuron"), default=0)
            if self.dag.n_ancillas == 0
            else self.dag.n_ancillas,
            "parameters": self.n_params,
            "operations": dict(sorted(self.dag.counts().items())),
            "depth": self.dag.depth(),
            "multi_qubit_ops": self.dag.multi_qubit_count(),
            "literal_operations": literal["operations"],
            "literal_multi_qubit_gates": literal["multi_qubit"],
        }


def literal_counts(program: Program) -> dict[str, Any]:
    """Operation counts of the literal circuit, computed per neuron shape (no full expansion)."""
    per_shape: dict[tuple, Counter] = {}
    total: Counter = Counter()
    multi = 0
    for op in program.ops:
        if op.kind != "neuron":
            total[f"gate:{op.name}" if op.kind == "gate" else op.kind] += 1
            multi += len(op.qubits) > 1 and op.kind == "gate"
            continue
        shape = (tuple(len(s) for s in op.subsets), op.order)
        if shape not in per_shape:
            ancillas = tuple(range(program.n_lanes, program.n_lanes + op.order))
            gates = literal_neuron(op, ancillas)
            c = Counter(f"gate:{g.name}" if g.kind == "gate" else g.kind for g in gates)
            c["_multi"] = sum(1 for g in gates if g.kind == "gate" and len(g.qubits) > 1)
            per_shape[shape] = c
        shape_counts = per_shape[shape]
        multi += shape_counts["_multi"]
        total.update({k: v for k, v in shape_counts.items() if k != "_multi"})
    return {"operations": dict(sorted(total.items())), "multi_qubit": multi}


def _shift(op: Operation, step: int, target_token: int) -> Operation:
    """``op`` of a one-step cell moved to step ``step`` (absolute tokens and readout step).

    The cell's input token becomes ``step``; its target token becomes ``target_token``.
    """
    if op.kind == "wordx":
        token = step if op.bit.token == INPUT_TOKEN else target_token
        return replace(op, bit=WordBit(token, op.bit.bit))
    if op.kind == "project":
        return replace(op, token=target_token)
    if op.kind == "readout":
        return replace(op, step=op.step + step)
    return op


def unroll(cell: GateDAG, steps: int, spec: CellSpec, *, separate_targets: bool = False) -> Program:
    """Repeat the one-step ``cell`` ``steps`` times with absolute token indices."""
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise CompileError(f"steps must be an integer in 1 … {MAX_STEPS}; got {steps!r}")
    first_target = steps + 1 if separate_targets else 1
    ops = tuple(_shift(op, t, first_target + t) for t in range(steps) for op in cell.ops)
    return Program(
        spec=spec, dag=cell.with_ops(ops), steps=steps, separate_targets=separate_targets
    )


def compile_program(
    spec: CellSpec | Mapping[str, Any] | str | Path,
    steps: int = 1,
    *,
    optimise: bool = True,
    literal: bool = False,
    separate_targets: bool = False,
) -> Program:
    """Spec → lowered cell → unrolled program → optimisation passes.

    Parameters
    ----------
    spec
        Anything :func:`compiler.spec.load_spec` accepts.
    steps
        Number of steps (a sequence of ``steps + 1`` tokens).
    optimise
        Run :func:`compiler.passes.optimise` on the unrolled program.
    literal
        Expand neurons into the ancilla circuit (for export; simulators use neurons).
    separate_targets
        Project on a target stream of its own instead of the next input (:class:`Program`).
    """
    spec = load_spec(spec)
    program = unroll(lower_cell(spec), steps, spec, separate_targets=separate_targets)
    if literal:
        program = replace(program, dag=decompose_neurons(program.dag))
    if optimise:
        program = replace(program, dag=run_passes(program.dag).dag)
    return program

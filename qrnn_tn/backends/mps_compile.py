"""Program → MPS instruction list: window layouts, swaps and coefficient tables, no torch work.

Each :class:`compiler.ir.Operation` becomes one or more small tuples the runner executes in
order. A neuron acts on the window spanning its target and sources; when that window is
wider than ``max_window`` sites, adjacent swaps first gather the sources next to each other
(and are undone afterwards), so every topology runs. Neurons and rotations that repeat from
step to step share one entry of a coefficient table, computed once per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.ir import Angle, Neuron
from compiler.unroll import Program

__all__ = ["NeuronTable", "Compiled", "compile_mps"]


@dataclass(frozen=True)
class NeuronTable:
    """What a run needs to build ``c(x)``, ``s(x)`` over one window layout ``[L, R]``."""

    slots: np.ndarray  # [n_subsets] parameter slots
    monomials: np.ndarray  # [2^m, n_subsets] 0/1 products over source branches
    offset: float
    order: int
    branch: np.ndarray  # [L·R] source-branch index of each window state without the target
    shape: tuple[int, int]


@dataclass(frozen=True)
class Compiled:
    """Instructions per step segment plus the coefficient tables they index."""

    steps: list[list[tuple]]
    neurons: list[NeuronTable]
    rotations: list[Angle]
    windows: list[int]  # width of every neuron window (for the cost model)
    swaps: int


def _branch_index(op: Neuron, lane_at: list[int], a: int, b: int) -> NeuronTable:
    width = b - a + 1
    t = lane_at.index(op.target)
    others = [p for p in range(a, b + 1) if p != t]
    states = np.arange(2 ** (width - 1))
    bits = (states[:, None] >> (width - 2 - np.arange(width - 1))[None, :]) & 1
    lane_bit = {lane_at[p]: bits[:, i] for i, p in enumerate(others)}
    m = len(op.sources)
    branch = np.zeros(len(states), dtype=np.int64)
    for j, q in enumerate(op.sources):
        branch |= lane_bit[q] << (m - 1 - j)
    return NeuronTable(
        slots=np.asarray(op.slots, dtype=np.int64),
        monomials=op.monomials(),
        offset=op.offset,
        order=op.order,
        branch=branch,
        shape=(2 ** (t - a), 2 ** (b - t)),
    )


def _gather_swaps(positions: list[int]) -> tuple[list[int], int]:
    """Adjacent swaps that move sorted ``positions`` into one run starting at the first."""
    swaps = []
    current = list(positions)
    for j in range(1, len(current)):
        while current[j] > current[0] + j:
            swaps.append(current[j] - 1)
            current[j] -= 1
    return swaps, current[0]


#: Widest neuron window: ``2^30`` amplitudes per sequence (8 GiB in float64) and a branch
#: table of ``2^29`` entries; wider windows are refused before their table is built.
MAX_WINDOW_LANES = 30


def compile_mps(program: Program, max_window: int) -> Compiled:
    """Translate ``program`` into per-step instruction lists for :class:`BlockMPS`.

    Instructions: ``("x", pos, token, bit)``, ``("ry", pos, rotation)``,
    ``("neuron", a, b, target_pos, table)``, ``("swap", pos)``, ``("readout", step)``,
    ``("project", token)``. A neuron is applied to a dense window of its lanes, ``2^width``
    amplitudes per sequence with a table of ``2^(width - 1)`` entries; a neuron whose window
    would be wider than :data:`MAX_WINDOW_LANES` is a ``ValueError`` before any table is
    built (narrower ones are costed, and refused by the memory budget where they do not fit).
    """
    io = program.io
    lane_at = list(range(program.n_lanes))
    tables: dict[tuple, int] = {}
    neurons: list[NeuronTable] = []
    rotations: dict[tuple, int] = {}
    windows: list[int] = []
    n_swaps = 0
    steps: list[list[tuple]] = []
    for start, stop in program.segments():
        out: list[tuple] = []
        for op in program.ops[start:stop]:
            if op.kind == "wordx":
                out.append(("x", op.qubit, op.bit.token, op.bit.bit))
            elif op.kind == "gate":
                if op.name != "ry":
                    raise ValueError(f"the MPS backend runs neurons and RY only, not {op.name}")
                key = (op.angle.const, op.angle.terms)
                out.append(("ry", op.qubits[0], rotations.setdefault(key, len(rotations))))
            elif op.kind == "neuron":
                lanes = sorted(op.qubits)
                swaps: list[int] = []
                if lanes[-1] - lanes[0] + 1 > max(max_window, len(lanes)):
                    swaps, first = _gather_swaps(lanes)
                    a, b = first, first + len(lanes) - 1
                else:
                    a, b = lanes[0], lanes[-1]
                if b - a + 1 > MAX_WINDOW_LANES:
                    raise ValueError(
                        f"mps: the neuron on lane {op.target} reads {len(op.sources)} sources, "
                        f"so its window of {b - a + 1} lanes holds 2^{b - a + 1} amplitudes per "
                        f"sequence (at most {MAX_WINDOW_LANES} lanes are run); use a local "
                        "topology or fewer sources per neuron, or another backend"
                    )
                for pos in swaps:
                    lane_at[pos], lane_at[pos + 1] = lane_at[pos + 1], lane_at[pos]
                key = (op, a, b, tuple(lane_at[a : b + 1]))
                if key not in tables:
                    tables[key] = len(neurons)
                    neurons.append(_branch_index(op, lane_at, a, b))
                out += [("swap", pos) for pos in swaps]
                out.append(("neuron", a, b, lane_at.index(op.target), tables[key]))
                out += [("swap", pos) for pos in reversed(swaps)]
                for pos in reversed(swaps):
                    lane_at[pos], lane_at[pos + 1] = lane_at[pos + 1], lane_at[pos]
                windows.append(b - a + 1)
                n_swaps += 2 * len(swaps)
            elif op.kind == "readout":
                if tuple(op.qubits) != tuple(range(io)):
                    raise ValueError(f"readout on {op.qubits}; the MPS backend reads lanes 0…io-1")
                out.append(("readout", op.step))
            elif op.kind == "project":
                if tuple(op.qubits) != tuple(range(io)):
                    raise ValueError(f"projection on {op.qubits}; expected lanes 0…io-1")
                out.append(("project", op.token))
            else:
                raise ValueError(f"the MPS backend cannot run {op.kind} operations")
        steps.append(out)
    return Compiled(
        steps=steps,
        neurons=neurons,
        rotations=[Angle(const, terms) for const, terms in rotations],
        windows=windows,
        swaps=n_swaps,
    )

"""Program → MPS instructions: window layouts, swaps and coefficient tables, no torch work.

Each :class:`compiler.ir.Operation` becomes one or more typed instructions that
:class:`~qrnn_tn.backends.mps.plan.MPSPlan` executes in order. A neuron acts on the window
spanning its target and sources; when that window is wider than ``max_window`` sites,
adjacent swaps first gather the sources next to each other (and are undone afterwards), so
every topology runs. Neurons and rotations that repeat from step to step share one entry of
a coefficient table, computed once per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.ir import Angle, Gate, Neuron, Operation, Project, Readout, WordX
from compiler.unroll import Program

__all__ = [
    "ApplyNeuron",
    "FlipOnBit",
    "Instruction",
    "Lowered",
    "MAX_WINDOW_LANES",
    "NeuronTable",
    "ProjectToken",
    "ReadOut",
    "Rotate",
    "Swap",
    "lower_mps",
]

#: Widest neuron window: ``2^30`` amplitudes per sequence (8 GiB in float64) and a branch
#: table of ``2^29`` entries; wider windows are refused before their table is built.
MAX_WINDOW_LANES = 30


@dataclass(frozen=True)
class FlipOnBit:
    """``X`` on site ``pos`` for the sequences whose token ``token`` has bit ``bit`` set."""

    pos: int
    token: int
    bit: int


@dataclass(frozen=True)
class Rotate:
    """``RY`` on site ``pos`` by entry ``rotation`` of the rotation table."""

    pos: int
    rotation: int


@dataclass(frozen=True)
class ApplyNeuron:
    """A neuron on window ``a … b`` with its target on site ``target``.

    ``table`` indexes :attr:`Lowered.neurons`.
    """

    a: int
    b: int
    target: int
    table: int


@dataclass(frozen=True)
class Swap:
    """Exchange the lanes on sites ``pos`` and ``pos + 1``."""

    pos: int


@dataclass(frozen=True)
class ReadOut:
    """Record the distribution of the i/o sites at ``step``."""

    step: int


@dataclass(frozen=True)
class ProjectToken:
    """Project the i/o sites on the word of token ``token``."""

    token: int


Instruction = FlipOnBit | Rotate | ApplyNeuron | Swap | ReadOut | ProjectToken


@dataclass(frozen=True)
class NeuronTable:
    """What a run needs to build ``c(x)``, ``s(x)`` over one window layout ``[L, R]``.

    ``slots`` are the parameter slots of the monomials, ``monomials [2^m, n_subsets]`` their
    0/1 products over the source branches, ``branch [L·R]`` the source branch of each window
    state without the target.
    """

    slots: np.ndarray
    monomials: np.ndarray
    offset: float
    order: int
    branch: np.ndarray
    shape: tuple[int, int]


@dataclass(frozen=True)
class Lowered:
    """Instructions per step segment plus the coefficient tables they index.

    ``windows`` holds the width of every neuron window and ``swaps`` the number of swaps,
    for the cost model.
    """

    steps: list[list[Instruction]]
    neurons: list[NeuronTable]
    rotations: list[Angle]
    windows: list[int]
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


class _Lowering:
    """State of one lowering: the lane on each site and the tables built so far."""

    def __init__(self, program: Program, max_window: int) -> None:
        self.io = program.io
        self.max_window = max_window
        self.lane_at = list(range(program.n_lanes))
        self.tables: dict[tuple, int] = {}
        self.neurons: list[NeuronTable] = []
        self.rotations: dict[tuple, int] = {}
        self.windows: list[int] = []
        self.swaps = 0

    def operation(self, op: Operation) -> list[Instruction]:
        match op:
            case WordX(qubit=qubit, bit=bit):
                return [FlipOnBit(qubit, bit.token, bit.bit)]
            case Gate(name="ry", qubits=(qubit,), angle=Angle() as angle):
                key = (angle.const, angle.terms)
                return [Rotate(qubit, self.rotations.setdefault(key, len(self.rotations)))]
            case Gate(name=name):
                raise ValueError(f"the MPS backend runs neurons and RY only, not {name}")
            case Neuron():
                return self.neuron(op)
            case Readout(qubits=qubits, step=step):
                self._check_io(qubits, "readout")
                return [ReadOut(step)]
            case Project(qubits=qubits, token=token):
                self._check_io(qubits, "projection")
                return [ProjectToken(token)]
        raise ValueError(f"the MPS backend cannot run {op.kind} operations")

    def _check_io(self, qubits: tuple[int, ...], what: str) -> None:
        if tuple(qubits) != tuple(range(self.io)):
            raise ValueError(f"{what} on {qubits}; the MPS backend reads lanes 0…io-1")

    def neuron(self, op: Neuron) -> list[Instruction]:
        lanes = sorted(op.qubits)
        swaps: list[int] = []
        if lanes[-1] - lanes[0] + 1 > max(self.max_window, len(lanes)):
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
        lane_at = self.lane_at
        for pos in swaps:
            lane_at[pos], lane_at[pos + 1] = lane_at[pos + 1], lane_at[pos]
        key = (op, a, b, tuple(lane_at[a : b + 1]))
        if key not in self.tables:
            self.tables[key] = len(self.neurons)
            self.neurons.append(_branch_index(op, lane_at, a, b))
        out: list[Instruction] = [Swap(pos) for pos in swaps]
        out.append(ApplyNeuron(a, b, lane_at.index(op.target), self.tables[key]))
        out += [Swap(pos) for pos in reversed(swaps)]
        for pos in reversed(swaps):
            lane_at[pos], lane_at[pos + 1] = lane_at[pos + 1], lane_at[pos]
        self.windows.append(b - a + 1)
        self.swaps += 2 * len(swaps)
        return out


def lower_mps(program: Program, max_window: int) -> Lowered:
    """Translate ``program`` into per-step instruction lists for the MPS runner.

    A neuron is applied to a dense window of its lanes, ``2^width`` amplitudes per sequence
    with a table of ``2^(width - 1)`` entries; a neuron whose window would be wider than
    :data:`MAX_WINDOW_LANES` is a ``ValueError`` before any table is built (narrower ones
    are costed, and refused by the memory budget where they do not fit). Gates other than
    ``RY``, postselections and readouts of other lanes than the i/o register are
    ``ValueError`` too.
    """
    lowering = _Lowering(program, max_window)
    steps = [
        [ins for op in program.ops[start:stop] for ins in lowering.operation(op)]
        for start, stop in program.segments()
    ]
    return Lowered(
        steps=steps,
        neurons=lowering.neurons,
        rotations=[Angle(const, terms) for const, terms in lowering.rotations],
        windows=lowering.windows,
        swaps=lowering.swaps,
    )

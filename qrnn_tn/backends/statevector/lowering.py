"""Lowering: one pass over a :class:`~compiler.unroll.Program` into kernels and tables.

The pass tracks which qubits are quantum (in the state) and the value of every classical one.
A rotation of a classical qubit promotes it (the state doubles); a projection or
postselection makes its qubits classical again, with the token bits (or 0) as their value;
``x`` gates and input writes on classical qubits change only their value. Normalisations are
placed at every projection and postselection, before any neuron that could take the norm²
more than ``2^-limit`` below its last renormalisation, and once at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

import torch

from compiler import ir
from compiler.ir import Gate, Neuron, Postselect, WordBit, WordX
from compiler.unroll import Program
from qrnn_tn.backends.base import BackendError
from qrnn_tn.backends.statevector.bits import Bit, static_index
from qrnn_tn.backends.statevector.kernels import (
    Flip,
    Kernel,
    Normalise,
    Project,
    Promote,
    Readout,
    Rotate,
)
from qrnn_tn.backends.statevector.layout import Arrangement, Layout
from qrnn_tn.backends.statevector.tables import NeuronTable, RotationTable, TableProvider

__all__ = ["DECAY_LIMIT_BITS", "MAX_QUBITS", "Lowering", "check_program", "sampleable"]

#: Widest register this backend accepts (2^40 amplitudes is already terabytes).
MAX_QUBITS = 40
#: Largest norm² decay (in bits) allowed between two renormalisations, per real dtype.
DECAY_LIMIT_BITS = {torch.float32: 80, torch.float64: 600}

_T = TypeVar("_T")


class Lowering:
    """One pass over the program: kernels, tables, and which qubits are quantum where.

    ``kernels[i]`` works on a state of ``sizes[i]`` quantum qubits; ``providers`` build the
    distinct tables, ``arrangements`` lay them out for the kernels that read them.
    """

    def __init__(self, program: Program, limit_bits: int) -> None:
        self.io, self.limit = program.io, limit_bits
        self.quantum: tuple[int, ...] = ()
        self.values = {q: Bit() for q in range(program.dag.n_qubits)}
        self.kernels: list[Kernel] = []
        self.sizes: list[int] = []
        self.providers: list[TableProvider] = []
        self.arrangements: list[Arrangement] = []
        self._index: dict[Hashable, int] = {}
        self.decay = 0
        for op in program.ops:
            match op:
                case ir.Neuron():
                    self._neuron(op)
                case ir.Gate():
                    self._gate(op)
                case WordX():
                    self._wordx(op)
                case ir.Project():
                    self._project(op)
                case ir.Postselect():
                    self._postselect(op)
                case ir.Readout():
                    self._readout(op)
                case _:
                    raise BackendError(f"statevector cannot simulate operation {op!r}")
        if self.decay:
            self._emit(Normalise())

    def _emit(self, kernel: Kernel) -> None:
        self.kernels.append(kernel)
        self.sizes.append(len(self.quantum))

    def _dedup(self, key: Hashable, items: list[_T], make: Callable[[], _T]) -> int:
        if key not in self._index:
            self._index[key] = len(items)
            items.append(make())
        return self._index[key]

    def _neuron(self, op: Neuron) -> None:
        p = self._dedup(op, self.providers, lambda: NeuronTable(op))
        bits = self.providers[p].decay_bits
        if self.decay + bits > self.limit:
            self._emit(Normalise())
            self.decay = 0
        self.decay += bits
        self._rotation(p, op.target, op.sources)

    def _gate(self, op: Gate) -> None:
        if op.name == "x":
            self._flip(op.qubits[0], None)
            return
        if op.name not in ("ry", "mcry"):
            raise BackendError(f"statevector cannot simulate gate {op.name!r}")
        controls = op.qubits[:-1]
        if any(self._constant(q) == 0 for q in controls):
            return
        angle = op.angle
        if angle is None:
            raise BackendError(f"statevector: gate {op.name!r} has no angle")
        p = self._dedup((angle, op.qubits), self.providers, lambda: RotationTable(angle, op.qubits))
        self._rotation(p, op.qubits[-1], controls)

    def _constant(self, qubit: int) -> int | None:
        """Return the value of a classical qubit with a constant value, else ``None``."""
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
        arrangement = Arrangement(
            provider=provider,
            m=len(sources),
            perm=tuple(kinds["runtime"] + kinds["static"] + quantum),
            n_runtime=len(kinds["runtime"]),
            n_static=len(static),
            static_index=static_index(static),
        )
        a = self._dedup(arrangement, self.arrangements, lambda: arrangement)
        layout = Layout.of(self.quantum, target, {sources[i] for i in quantum})
        runtime = tuple(self.values[sources[i]] for i in kinds["runtime"])
        self._emit(Rotate(a, layout, runtime))

    def _wordx(self, op: WordX) -> None:
        self._flip(op.qubit, op.bit)

    def _flip(self, qubit: int, bit: WordBit | None) -> None:
        if qubit in self.quantum:
            self._emit(Flip(self.quantum.index(qubit), len(self.quantum), bit))
        else:
            self.values[qubit] = self.values[qubit].flip(bit)

    def _promote(self, qubit: int) -> None:
        position = sum(q < qubit for q in self.quantum)
        kernel = Promote(position, len(self.quantum), self.values[qubit])
        self.quantum = tuple(sorted((*self.quantum, qubit)))
        self._emit(kernel)

    def _project(self, op: ir.Project) -> None:
        k = len(op.qubits)
        word = tuple(Bit(0, (WordBit(op.token, j + self.io - k),)) for j in range(k))
        self._collapse(op.qubits, word)

    def _postselect(self, op: Postselect) -> None:
        self._collapse(op.qubits, (Bit(),))

    def _collapse(self, qubits: tuple[int, ...], word: tuple[Bit, ...]) -> None:
        kernel = Project(self.quantum, qubits, word, self.values)
        self.quantum = tuple(q for q in self.quantum if q not in qubits)
        self.values.update(zip(qubits, word, strict=True))
        self._emit(kernel)
        self._emit(Normalise())
        self.decay = 0

    def _readout(self, op: ir.Readout) -> None:
        self._emit(Readout(self.quantum, op.qubits, op.step, self.values))


def check_program(program: Program) -> None:
    """Raise :class:`BackendError` for a program too wide, or without one readout per step."""
    n = program.dag.n_qubits
    if n > MAX_QUBITS:
        raise BackendError(
            f"statevector: {n} qubits need 2^{n} amplitudes per sequence; at most {MAX_QUBITS} "
            "qubits are supported (use a tensor-network backend for wide cells)"
        )
    steps = sorted(op.step for op in program.ops if isinstance(op, ir.Readout))
    if steps != list(range(program.steps)):
        raise BackendError(
            f"statevector: the program's readouts are at steps {steps[:8]}…; expected exactly "
            f"one per step 0 … {program.steps - 1}"
        )


def sampleable(program: Program) -> bool:
    """Whether every op that reads token ``t + 1`` comes after the readout of step ``t``."""
    read = 0
    for op in program.ops:
        if isinstance(op, ir.Readout):
            read = max(read, op.step + 1)
        token = (
            op.bit.token if isinstance(op, WordX) else op.token if isinstance(op, ir.Project) else 0
        )
        if token > read:
            return False
    return True

"""What the readouts can see: which token bits can change which readout distributions.

A structural dependency analysis of a :class:`~compiler.unroll.Program`, linear in its size.
It is *sound*: a token bit it reports as never reaching a readout leaves every readout exactly
unchanged when flipped, for every parameter vector. (It may report a dependency that some
special parameters cancel.)

A bit enters the state in two ways, reported separately:

- **read**: the bit is written onto an i/o lane (``WordX``) and a neuron takes that lane as a
  source while it holds the bit (QRNN.md §3, input and work stages);
- **collapse**: a step's i/o lanes are projected on the token (teacher forcing, §3.7), which
  conditions the lanes entangled with them.

Why not a plain light cone. Neurons, postselections and projections are renormalised maps
(§2): renormalising after one reweights the branches of its sources, which changes every lane
*correlated* with those sources, however far apart. So influence travels along correlations,
not only along gates. The analysis tracks the state as a product of independent parts:

- a lane is **classical** while it holds a computational basis state (lanes start in ``|0⟩``;
  an i/o lane holds its written bits as a classical word; a projected lane holds the word it
  was projected on). A classical lane records which token bits its value depends on (XOR:
  writing a bit twice undoes it). Taking it as a source or control does not change it.
- the other lanes are **quantum** and belong to components (union-find): an operation merges
  the components of the quantum lanes it acts on; a projection or postselection splits its
  lane off as classical. Each component records which token bits its state depends on.

Every operation keeps "the state is the product of its components and classical lanes, and a
part whose record is empty does not depend on any token bit" true; a readout depends on the
bits recorded by the parts holding its lanes. Qubit 0 / bit 0 is the most significant.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from compiler.ir import Operation
from compiler.spec import CellSpec
from compiler.unroll import Program, compile_program

__all__ = ["BitReach", "Reach", "reach", "token_reach", "cell_warnings", "WARNING_STEPS"]

#: Steps unrolled by :func:`cell_warnings`: step 0 starts from ``|0…0⟩``, step 1 from a state
#: shaped by one step, and from step 2 on every step sees the same structure; a bit read at
#: step 2 reaches a readout by step 3 or never.
WARNING_STEPS = 4

READ, COLLAPSE = "read", "collapse"

#: A record's key, made from ``(channel, token, bit)``.
K = TypeVar("K", bound=Hashable)
#: The ``(token, bit)`` pairs a classical lane's value is the XOR of.
_Bits = frozenset[tuple[int, int]]


@dataclass(frozen=True)
class BitReach:
    """Where bit ``bit`` of the tokens (written onto lane ``bit``) can reach a readout.

    A read lag counts steps from the step that reads the token (token ``t`` is read at step
    ``t``); a collapse lag from the step whose i/o lanes are projected on it (token ``t + 1``
    at step ``t``, or step ``t``'s separate target), so it is at least 1. ``None``: never.

    Attributes
    ----------
    bit
        Bit position, 0 = most significant; it is written onto i/o lane ``bit``.
    read_lag
        Smallest lag at which the bit, read by a neuron, can change a readout.
    collapse_lag
        Smallest lag at which projecting on the bit (teacher forcing) can change a readout.
    readers
        Lanes whose neuron (or gate) takes the bit's lane as a source while it holds the bit.
    """

    bit: int
    read_lag: int | None
    collapse_lag: int | None
    readers: tuple[int, ...]

    @property
    def read(self) -> bool:
        """Whether the bit, as an input, can change any readout."""
        return self.read_lag is not None


@dataclass(frozen=True)
class Reach:
    """What the readouts of a program can see, per token bit position (see :func:`reach`)."""

    spec: CellSpec
    steps: int
    bits: tuple[BitReach, ...]

    @property
    def unread(self) -> tuple[int, ...]:
        """Bit positions that no readout can see as an input (at any step)."""
        return tuple(b.bit for b in self.bits if not b.read)

    def rows(self) -> list[tuple[str, str]]:
        """``(label, text)`` per bit, as the compile summary prints them."""
        return [(_bit_label(self.spec, b.bit), _bit_text(self.spec, b)) for b in self.bits]

    def __str__(self) -> str:
        """Return the table of :meth:`rows`, labels padded to one width."""
        rows = self.rows()
        width = max(len(label) for label, _ in rows) + 2
        steps = f"{self.steps} step{'s' if self.steps > 1 else ''}"
        head = f'What the readouts can see ({steps}; "never" is certain):'
        return "\n".join([head, *(f"  {label + ':':<{width}}{text}" for label, text in rows)])


def _name(spec: CellSpec, qubit: int) -> str:
    """``o<i>``, ``h<j>``, or ``a<k>`` for the ancillas of a literal program."""
    return spec.lane_name(qubit) if qubit < spec.n_lanes else f"a{qubit - spec.n_lanes}"


def _bit_label(spec: CellSpec, bit: int) -> str:
    """``Input bit 0 (o0, most significant)``."""
    note = ", most significant" if bit == 0 and spec.io > 1 else ""
    return f"Input bit {bit} ({spec.lane_name(bit)}{note})"


def _lag_text(lag: int) -> str:
    return "the same step" if lag == 0 else f"{lag} step{'s' if lag > 1 else ''} later"


def _bit_text(spec: CellSpec, b: BitReach) -> str:
    names = ", ".join(_name(spec, q) for q in b.readers)
    if b.read_lag is not None:
        text = f"read by {names}, changes readouts from {_lag_text(b.read_lag)}"
    elif b.readers:
        text = f"read by {names}, but changes no readout"
    else:
        text = "never read"
    if b.collapse_lag is not None:
        text += f"; collapsing onto it changes readouts from {_lag_text(b.collapse_lag)}"
    return text


def _origin_step(program: Program, channel: str, token: int) -> int:
    """Return the step a token bit enters at: the step reading ``token``, or projecting on it."""
    if channel == READ and token <= program.steps:
        return token
    return token - program.steps - 1 if program.separate_targets else token - 1


class _Parts(Generic[K]):
    """Classical lanes and quantum components, each with a record ``key -> step``.

    A record maps a key (made by ``key(channel, token, bit)``) to the latest step of a token
    behind it; merging keeps the latest. Readouts are passed to ``seen(step, record)``.
    """

    def __init__(self, program: Program, key: Callable[[str, int, int], K]) -> None:
        self.program = program
        self.key = key
        n = program.dag.n_qubits
        self.bits: list[_Bits | None] = [frozenset()] * n
        self.comp: list[int] = [-1] * n
        self.parent: list[int] = []
        self.records: list[dict[K, int]] = []
        self.readers: dict[int, set[int]] = {b: set() for b in range(program.io)}

    def _find(self, c: int) -> int:
        while self.parent[c] != c:
            self.parent[c] = self.parent[self.parent[c]]
            c = self.parent[c]
        return c

    def _add(self, record: dict[K, int], channel: str, token: int, bit: int) -> None:
        key, step = self.key(channel, token, bit), _origin_step(self.program, channel, token)
        if record.get(key, -1) < step:
            record[key] = step

    def _read(self, record: dict[K, int], bits: _Bits, reader: int | None) -> None:
        for token, bit in bits:
            self._add(record, READ, token, bit)
            if reader is not None:
                self.readers[bit].add(reader)

    def _root(self, lane: int) -> int:
        """Return the component of ``lane``, making a classical lane quantum (its bits are read)."""
        bits = self.bits[lane]
        if bits is None:
            return self._find(self.comp[lane])
        self.parent.append(len(self.parent))
        self.records.append({})
        self._read(self.records[-1], bits, lane)
        self.bits[lane], self.comp[lane] = None, len(self.parent) - 1
        return self.comp[lane]

    def _merge(self, roots: set[int]) -> int:
        biggest = max(roots, key=lambda r: len(self.records[r]))
        for r in roots - {biggest}:
            self.parent[r] = biggest
            for key, step in self.records[r].items():
                if self.records[biggest].get(key, -1) < step:
                    self.records[biggest][key] = step
            self.records[r] = {}
        return biggest

    def controlled(self, controls: tuple[int, ...], targets: tuple[int, ...]) -> None:
        """Apply an operation diagonal on ``controls`` (neuron sources) acting on ``targets``."""
        root = self._merge(
            {self._root(q) for q in targets}
            | {self._find(self.comp[q]) for q in controls if self.bits[q] is None}
        )
        for q in controls:
            bits = self.bits[q]
            if bits is not None:
                for target in targets:
                    self._read(self.records[root], bits, target)

    def flip(self, lane: int, token: int, bit: int) -> None:
        """``X`` on ``lane`` when bit ``bit`` of ``token`` is 1."""
        bits = self.bits[lane]
        if bits is not None:
            self.bits[lane] = bits ^ {(token, bit)}
        else:
            self._add(self.records[self._find(self.comp[lane])], READ, token, bit)
            self.readers[bit].add(lane)

    def collapse(self, lane: int, token: int | None, bit: int) -> None:
        """Project ``lane`` on bit ``bit`` of ``token`` (on ``|0⟩`` when ``token`` is None)."""
        if self.bits[lane] is None and token is not None:
            self._add(self.records[self._find(self.comp[lane])], COLLAPSE, token, bit)
        self.bits[lane] = frozenset() if token is None else frozenset({(token, bit)})

    def readout(self, lanes: tuple[int, ...]) -> dict[K, int]:
        """Return the merged record of the parts holding ``lanes``."""
        out: dict[K, int] = {}
        for root in {self._find(self.comp[q]) for q in lanes if self.bits[q] is None}:
            for key, step in self.records[root].items():
                out[key] = max(out.get(key, -1), step)
        for q in lanes:
            bits = self.bits[q]
            if bits is not None:
                self._read(out, bits, None)
        return out

    def apply(self, op: Operation) -> None:
        if op.kind == "neuron":
            self.controlled(op.sources, (op.target,))
        elif op.kind == "gate" and op.name == "mcry":
            self.controlled(op.qubits[:-1], op.qubits[-1:])
        elif op.kind == "gate" and op.name == "x":
            return
        elif op.kind == "gate":
            self.controlled((), op.qubits)
        elif op.kind == "wordx":
            self.flip(op.qubit, op.bit.token, op.bit.bit)
        elif op.kind == "project":
            shift = self.program.io - len(op.qubits)
            for j, q in enumerate(op.qubits):
                self.collapse(q, op.token, j + shift)
        elif op.kind == "postselect":
            for q in op.qubits:
                self.collapse(q, None, 0)


def _propagate(
    program: Program,
    key: Callable[[str, int, int], K],
    seen: Callable[[int, dict[K, int]], None],
) -> dict[int, set[int]]:
    parts = _Parts(program, key)
    for op in program.ops:
        if op.kind == "readout":
            seen(op.step, parts.readout(op.qubits))
        else:
            parts.apply(op)
    return parts.readers


def reach(program: Program) -> Reach:
    """Which token bit positions can change which readouts, and from how many steps back.

    Linear in the program's size (times ``io``). See the module docstring for the model;
    the result is structural and sound.
    """
    lags: dict[tuple[str, int], int] = {}

    def seen(step: int, record: dict[tuple[str, int], int]) -> None:
        for key, latest in record.items():
            lags[key] = min(lags.get(key, step - latest), step - latest)

    readers = _propagate(program, lambda channel, token, bit: (channel, bit), seen)
    bits = tuple(
        BitReach(
            bit=b,
            read_lag=lags.get((READ, b)),
            collapse_lag=lags.get((COLLAPSE, b)),
            readers=tuple(sorted(readers[b])),
        )
        for b in range(program.io)
    )
    return Reach(spec=program.spec, steps=program.steps, bits=bits)


def token_reach(program: Program) -> dict[tuple[int, int], frozenset[int]]:
    """``(token, bit) -> readout steps it can change`` (either channel), for every token bit.

    Exact per token, and so quadratic in the number of steps: for tests and short programs.
    """
    steps: dict[tuple[int, int], set[int]] = {
        (t, b): set() for t in range(program.n_tokens) for b in range(program.io)
    }

    def seen(step: int, record: dict[tuple[int, int], int]) -> None:
        for token, bit in record:
            steps[token, bit].add(step)

    _propagate(program, lambda channel, token, bit: (token, bit), seen)
    return {key: frozenset(value) for key, value in steps.items()}


def cell_warnings(spec: CellSpec) -> tuple[str, ...]:
    """One line per input bit that no readout of ``spec``'s cell can ever see, saying why.

    Decided on a program of :data:`WARNING_STEPS` steps, which shows every step's structure.
    """
    result = reach(compile_program(spec, WARNING_STEPS))
    return tuple(_warning(spec, result.bits[b]) for b in result.unread)


def _warning(spec: CellSpec, b: BitReach) -> str:
    lane = spec.lane_name(b.bit)
    what = _bit_label(spec, b.bit).lower() + " of the tokens"
    topology = spec.neuron.topology
    if b.readers:
        names = ", ".join(_name(spec, q) for q in b.readers)
        return (
            f"{what} is read by the neurons on {names}, but no readout depends on it: nothing "
            "links those lanes to an i/o lane; give an i/o lane's neuron a source among them"
        )
    seen_by = [spec.lane_name(g) for g in range(spec.n_lanes) if b.bit in spec.sources_of(g)]
    by = (
        f"only the output neuron{'s' if len(seen_by) > 1 else ''} on {', '.join(seen_by)} "
        f"take{'' if len(seen_by) > 1 else 's'} {lane} as a source, and output neurons run "
        "after the input is unwritten"
        if seen_by
        else f"no neuron takes {lane} as a source"
    )
    if topology.kind == "local":
        fix = (
            f'use topology = {{ local = {topology.radius}, io = "site" }}, which makes every '
            "i/o lane a source of the first workspace neurons"
        )
    else:
        fix = f"add lane {b.bit} to the sources of a workspace lane's neuron"
    return f"{what} is never read, so no readout depends on it as an input: with topology " + (
        f"{topology.describe()} {by}; {fix}"
    )

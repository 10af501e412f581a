"""The OpenQASM 3 statements the exporter writes, as small frozen dataclasses.

Only what a program's literal circuit needs: declarations, gate calls with control modifiers,
barriers, annotated measurements, single-gate ``if`` statements, comments and real-valued
expressions. :mod:`compiler.export.qasm3.printer` turns them into text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "Identifier",
    "IndexedIdentifier",
    "FloatLiteral",
    "Negation",
    "BinaryOperator",
    "BinaryExpression",
    "Expression",
    "FloatType",
    "BitArrayType",
    "ClassicalType",
    "Comment",
    "Include",
    "InputDeclaration",
    "ClassicalDeclaration",
    "QubitDeclaration",
    "ControlModifier",
    "GateCall",
    "Barrier",
    "Annotation",
    "MeasureAssignment",
    "IfStatement",
    "Statement",
    "Program",
]

# ------------------------------------------------------------------------------ expressions


@dataclass(frozen=True)
class Identifier:
    """A name: ``theta_3``."""

    name: str


@dataclass(frozen=True)
class IndexedIdentifier:
    """One element of a register: ``q[3]``, ``w0[1]``."""

    name: str
    index: int


@dataclass(frozen=True)
class FloatLiteral:
    """A real number, written at ``repr`` precision."""

    value: float


@dataclass(frozen=True)
class Negation:
    """``-operand``."""

    operand: Expression


class BinaryOperator(enum.Enum):
    """The arithmetic operators of an angle expression."""

    ADD = "+"
    SUB = "-"
    MUL = "*"


@dataclass(frozen=True)
class BinaryExpression:
    """``left op right``."""

    op: BinaryOperator
    left: Expression
    right: Expression


Expression = Identifier | IndexedIdentifier | FloatLiteral | Negation | BinaryExpression

# ------------------------------------------------------------------------------------ types


@dataclass(frozen=True)
class FloatType:
    """``float[size]``."""

    size: int


@dataclass(frozen=True)
class BitArrayType:
    """``bit[size]``."""

    size: int


ClassicalType = FloatType | BitArrayType

# ------------------------------------------------------------------------------- statements


@dataclass(frozen=True)
class Comment:
    """A line comment, ``// text``."""

    text: str


@dataclass(frozen=True)
class Include:
    """``include "filename";``."""

    filename: str


@dataclass(frozen=True)
class InputDeclaration:
    """``input type name;``, with an optional comment on the same line."""

    type: ClassicalType
    name: str
    comment: str = ""


@dataclass(frozen=True)
class ClassicalDeclaration:
    """``type name;``, with an optional comment on the same line."""

    type: ClassicalType
    name: str
    comment: str = ""


@dataclass(frozen=True)
class QubitDeclaration:
    """``qubit[size] name;``."""

    name: str
    size: int


@dataclass(frozen=True)
class ControlModifier:
    """``ctrl(controls) @``: the gate acts when its first ``controls`` qubits are all 1."""

    controls: int


@dataclass(frozen=True)
class GateCall:
    """``[modifiers] name[(parameters)] qubits;``."""

    name: str
    qubits: tuple[IndexedIdentifier, ...]
    parameters: tuple[Expression, ...] = ()
    modifiers: tuple[ControlModifier, ...] = ()


@dataclass(frozen=True)
class Barrier:
    """``barrier qubits;``."""

    qubits: tuple[IndexedIdentifier, ...]


@dataclass(frozen=True)
class Annotation:
    """``@keyword payload`` on the line before the statement it annotates."""

    keyword: str
    payload: str


@dataclass(frozen=True)
class MeasureAssignment:
    """``target = measure qubit;``, after its annotations."""

    target: IndexedIdentifier
    qubit: IndexedIdentifier
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True)
class IfStatement:
    """``if (condition) body`` with a single gate as the body."""

    condition: Expression
    body: GateCall


Statement = (
    Comment
    | Include
    | InputDeclaration
    | ClassicalDeclaration
    | QubitDeclaration
    | GateCall
    | Barrier
    | MeasureAssignment
    | IfStatement
)


@dataclass(frozen=True)
class Program:
    """A whole OpenQASM 3 program: ``OPENQASM version;``, then its statements."""

    version: str
    statements: tuple[Statement, ...]

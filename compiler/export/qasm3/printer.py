"""OpenQASM 3 text of the statements in :mod:`compiler.export.qasm3.ast`.

One statement a line (annotations on lines of their own before it), no indentation, and
expressions with only the parentheses their precedence needs.
"""

from __future__ import annotations

import math

from compiler.export.qasm3.ast import (
    Barrier,
    BinaryExpression,
    BinaryOperator,
    ClassicalDeclaration,
    ClassicalType,
    Comment,
    Expression,
    FloatLiteral,
    FloatType,
    GateCall,
    Identifier,
    IfStatement,
    Include,
    IndexedIdentifier,
    InputDeclaration,
    MeasureAssignment,
    Negation,
    Program,
    QubitDeclaration,
    Statement,
)

__all__ = ["print_expression", "print_statement", "print_program"]

# How tightly each kind of expression binds: a sum, a product, a negation, an atom.
_SUM, _PRODUCT, _NEGATION, _ATOM = range(4)
_BINDING = {BinaryOperator.ADD: _SUM, BinaryOperator.SUB: _SUM, BinaryOperator.MUL: _PRODUCT}


def _binding(expr: Expression) -> int:
    if isinstance(expr, BinaryExpression):
        return _BINDING[expr.op]
    if isinstance(expr, Negation) or (
        isinstance(expr, FloatLiteral) and math.copysign(1.0, expr.value) < 0
    ):
        return _NEGATION
    return _ATOM


def _operand(expr: Expression, parenthesise: bool) -> str:
    text = print_expression(expr)
    return f"({text})" if parenthesise else text


def print_expression(expr: Expression) -> str:
    """Print an expression; binary operators associate to the left."""
    if isinstance(expr, Identifier):
        return expr.name
    if isinstance(expr, IndexedIdentifier):
        return f"{expr.name}[{expr.index}]"
    if isinstance(expr, FloatLiteral):
        return repr(float(expr.value))
    if isinstance(expr, Negation):
        return "-" + _operand(expr.operand, _binding(expr.operand) <= _NEGATION)
    if not isinstance(expr, BinaryExpression):
        raise TypeError(f"not an OpenQASM 3 expression: {expr!r}")
    level = _BINDING[expr.op]
    left = _operand(expr.left, _binding(expr.left) < level)
    right = _operand(expr.right, _binding(expr.right) <= level)
    return f"{left} {expr.op.value} {right}"


def _type(kind: ClassicalType) -> str:
    return f"{'float' if isinstance(kind, FloatType) else 'bit'}[{kind.size}]"


def _trailing(comment: str) -> str:
    return f"  // {comment}" if comment else ""


def _qubits(qubits: tuple[IndexedIdentifier, ...]) -> str:
    return ", ".join(map(print_expression, qubits))


def _gate_call(call: GateCall) -> str:
    modifiers = "".join(f"ctrl({m.controls}) @ " for m in call.modifiers)
    parameters = ", ".join(map(print_expression, call.parameters))
    arguments = f"({parameters})" if call.parameters else ""
    return f"{modifiers}{call.name}{arguments} {_qubits(call.qubits)};"


def print_statement(statement: Statement) -> list[str]:
    """Print a statement's lines: one, or more for an annotated measurement."""
    if isinstance(statement, Comment):
        return [f"// {statement.text}"]
    if isinstance(statement, Include):
        return [f'include "{statement.filename}";']
    if isinstance(statement, InputDeclaration):
        line = f"input {_type(statement.type)} {statement.name};"
        return [line + _trailing(statement.comment)]
    if isinstance(statement, ClassicalDeclaration):
        return [f"{_type(statement.type)} {statement.name};" + _trailing(statement.comment)]
    if isinstance(statement, QubitDeclaration):
        return [f"qubit[{statement.size}] {statement.name};"]
    if isinstance(statement, GateCall):
        return [_gate_call(statement)]
    if isinstance(statement, Barrier):
        return [f"barrier {_qubits(statement.qubits)};"]
    if isinstance(statement, MeasureAssignment):
        target, qubit = print_expression(statement.target), print_expression(statement.qubit)
        notes = [f"@{a.keyword} {a.payload}" for a in statement.annotations]
        return [*notes, f"{target} = measure {qubit};"]
    if isinstance(statement, IfStatement):
        return [f"if ({print_expression(statement.condition)}) {_gate_call(statement.body)}"]
    raise TypeError(f"not an OpenQASM 3 statement: {statement!r}")


def print_program(program: Program) -> str:
    """Print a program: the version line, then each statement; ends with a newline."""
    lines = [f"OPENQASM {program.version};"]
    for statement in program.statements:
        lines += print_statement(statement)
    return "\n".join(lines) + "\n"

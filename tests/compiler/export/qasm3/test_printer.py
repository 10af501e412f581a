"""The OpenQASM 3 printer on hand-built statements, against text written by hand; printed
expressions against their value, computed directly and through qiskit's importer."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qiskit import qasm3

from compiler.export.qasm3.ast import (
    Annotation,
    Barrier,
    BinaryExpression,
    BinaryOperator,
    BitArrayType,
    ClassicalDeclaration,
    Comment,
    ControlModifier,
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
)
from compiler.export.qasm3.printer import print_expression, print_program, print_statement

ADD, SUB, MUL = BinaryOperator.ADD, BinaryOperator.SUB, BinaryOperator.MUL
A, B, C = Identifier("a"), Identifier("b"), Identifier("c")


def q(*indices):
    return tuple(IndexedIdentifier("q", i) for i in indices)


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        (A, "a"),
        (IndexedIdentifier("w3", 1), "w3[1]"),
        (FloatLiteral(0.1 + 0.2), "0.30000000000000004"),
        (FloatLiteral(-1.5), "-1.5"),
        (BinaryExpression(ADD, BinaryExpression(SUB, A, B), C), "a - b + c"),
        (BinaryExpression(SUB, A, BinaryExpression(ADD, B, C)), "a - (b + c)"),
        (BinaryExpression(SUB, A, BinaryExpression(SUB, B, C)), "a - (b - c)"),
        (BinaryExpression(MUL, BinaryExpression(ADD, A, B), C), "(a + b) * c"),
        (BinaryExpression(ADD, A, BinaryExpression(MUL, B, C)), "a + b * c"),
        (BinaryExpression(MUL, BinaryExpression(MUL, A, B), C), "a * b * c"),
        (BinaryExpression(MUL, A, BinaryExpression(MUL, B, C)), "a * (b * c)"),
        (BinaryExpression(MUL, FloatLiteral(-2.0), A), "-2.0 * a"),
        (BinaryExpression(ADD, FloatLiteral(-1.5), A), "-1.5 + a"),
        (BinaryExpression(SUB, A, FloatLiteral(-2.0)), "a - -2.0"),
        (BinaryExpression(SUB, A, Negation(B)), "a - -b"),
        (Negation(A), "-a"),
        (Negation(Negation(A)), "-(-a)"),
        (Negation(FloatLiteral(-1.5)), "-(-1.5)"),
        (Negation(FloatLiteral(-0.0)), "-(-0.0)"),
        (Negation(BinaryExpression(MUL, A, B)), "-(a * b)"),
        (Negation(BinaryExpression(ADD, A, B)), "-(a + b)"),
    ],
)
def test_expressions(expr, text):
    assert print_expression(expr) == text


@pytest.mark.parametrize(
    ("statement", "lines"),
    [
        (Comment("step 0: reads token 0"), ["// step 0: reads token 0"]),
        (Include("stdgates.inc"), ['include "stdgates.inc";']),
        (InputDeclaration(FloatType(64), "theta_2"), ["input float[64] theta_2;"]),
        (
            InputDeclaration(FloatType(64), "theta_2", "in.h0.[1]"),
            ["input float[64] theta_2;  // in.h0.[1]"],
        ),
        (ClassicalDeclaration(BitArrayType(3), "w0"), ["bit[3] w0;"]),
        (ClassicalDeclaration(BitArrayType(2), "m1", "outcomes"), ["bit[2] m1;  // outcomes"]),
        (QubitDeclaration("q", 7), ["qubit[7] q;"]),
        (GateCall("x", q(4)), ["x q[4];"]),
        (GateCall("cry", q(0, 2), (A,)), ["cry(a) q[0], q[2];"]),
        (GateCall("u", q(1), (A, FloatLiteral(0.5), B)), ["u(a, 0.5, b) q[1];"]),
        (
            GateCall("ry", q(0, 1, 2), (Negation(A),), (ControlModifier(2),)),
            ["ctrl(2) @ ry(-a) q[0], q[1], q[2];"],
        ),
        (
            GateCall("x", q(0, 1, 2), (), (ControlModifier(1), ControlModifier(1))),
            ["ctrl(1) @ ctrl(1) @ x q[0], q[1], q[2];"],
        ),
        (Barrier(q(0, 1)), ["barrier q[0], q[1];"]),
        (MeasureAssignment(IndexedIdentifier("c", 0), q(3)[0]), ["c[0] = measure q[3];"]),
        (
            MeasureAssignment(
                IndexedIdentifier("m2", 1),
                q(1)[0],
                (Annotation("qrnn.postselect", "w2[1]"), Annotation("note", "two words")),
            ),
            ["@qrnn.postselect w2[1]", "@note two words", "m2[1] = measure q[1];"],
        ),
        (
            IfStatement(IndexedIdentifier("w0", 1), GateCall("x", q(2))),
            ["if (w0[1]) x q[2];"],
        ),
    ],
)
def test_statements(statement, lines):
    assert print_statement(statement) == lines


def test_a_program_is_its_version_line_then_its_statements():
    program = Program(
        "3.0",
        (
            Include("stdgates.inc"),
            Comment("two qubits"),
            InputDeclaration(FloatType(64), "theta_0", "bias"),
            ClassicalDeclaration(BitArrayType(1), "w0"),
            QubitDeclaration("q", 2),
            ClassicalDeclaration(BitArrayType(1), "anc"),
            IfStatement(IndexedIdentifier("w0", 0), GateCall("x", q(0))),
            GateCall(
                "cry", q(0, 1), (BinaryExpression(ADD, FloatLiteral(0.5), Identifier("theta_0")),)
            ),
            Barrier(q(0)),
            MeasureAssignment(
                IndexedIdentifier("anc", 0), q(1)[0], (Annotation("qrnn.postselect", "0"),)
            ),
        ),
    )
    text = (
        "OPENQASM 3.0;\n"
        'include "stdgates.inc";\n'
        "// two qubits\n"
        "input float[64] theta_0;  // bias\n"
        "bit[1] w0;\n"
        "qubit[2] q;\n"
        "bit[1] anc;\n"
        "if (w0[0]) x q[0];\n"
        "cry(0.5 + theta_0) q[0], q[1];\n"
        "barrier q[0];\n"
        "@qrnn.postselect 0\n"
        "anc[0] = measure q[1];\n"
    )
    assert print_program(program) == text
    circuit = qasm3.loads(text)  # qiskit reads it back
    assert [inst.operation.name for inst in circuit.data] == [
        "if_else",
        "cry",
        "barrier",
        "measure",
    ]
    assert print_program(Program("3.0", ())) == "OPENQASM 3.0;\n"


def test_not_a_statement_or_expression_is_a_type_error():
    with pytest.raises(TypeError, match="not an OpenQASM 3 statement"):
        print_statement(A)
    with pytest.raises(TypeError, match="not an OpenQASM 3 expression"):
        print_expression(Comment("x"))


VALUES = {"a": 0.7, "b": -1.3, "c": 2.1}


def _value(expr):
    if isinstance(expr, Identifier):
        return VALUES[expr.name]
    if isinstance(expr, FloatLiteral):
        return expr.value
    if isinstance(expr, Negation):
        return -_value(expr.operand)
    left, right = _value(expr.left), _value(expr.right)
    return {ADD: left + right, SUB: left - right, MUL: left * right}[expr.op]


expressions = st.recursive(
    st.sampled_from([A, B, C])
    | st.floats(-4, 4, allow_nan=False).map(lambda v: FloatLiteral(round(v, 3))),
    lambda inner: (
        st.builds(Negation, inner)
        | st.builds(BinaryExpression, st.sampled_from([ADD, SUB, MUL]), inner, inner)
    ),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None)
@given(expressions)
def test_printed_expressions_keep_their_value(expr):
    """Parentheses are where precedence needs them: qiskit's importer reads the text back to
    the value of the tree."""
    text = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
        + "".join(f"input float[64] {name};\n" for name in VALUES)
        + f"qubit[1] q;\nry({print_expression(expr)}) q[0];\n"
    )
    angle = qasm3.loads(text).data[0].operation.params[0]
    if not isinstance(angle, float):
        bound = {p: VALUES[p.name] for p in angle.parameters}
        angle = float(angle.bind(bound)) if bound else float(angle)
    assert math.isclose(angle, _value(expr), rel_tol=1e-9, abs_tol=1e-9)

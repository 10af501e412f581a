"""The OpenQASM 3 export checked against independent computations: qiskit's OpenQASM 3
importer and dense matrices, the dense reference simulator, token bits written out by hand,
and angle expressions built by hand."""

import math
import re

import numpy as np
import pytest
from qiskit import QuantumCircuit, qasm3
from qiskit.quantum_info import Operator

from compiler.export import to_qasm3
from compiler.export.qasm3 import build_program
from compiler.export.qasm3.ast import (
    BinaryExpression,
    BinaryOperator,
    FloatLiteral,
    Identifier,
    IfStatement,
    IndexedIdentifier,
    MeasureAssignment,
    Negation,
)
from compiler.export.qasm3.exporter import angle_expression
from compiler.gates import gate_matrix
from compiler.ir import Angle, CompileError
from compiler.unroll import compile_program
from tests.reference import apply_matrix, dense_run

# qiskit's importer builds `ctrl(k) @ ry` through a Gate.control() call it has deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:.*annotated.*:DeprecationWarning")

SMALL = {"cell": {"io": 1, "workspace": 1}, "neuron": {"degree": 1, "order": 1}}

CELLS = [
    ({"cell": {"io": 1, "workspace": 1}, "neuron": {"degree": 1, "order": 1}}, 1, [1, 0]),
    ({"cell": {"io": 2, "workspace": 1}, "neuron": {"degree": 2, "order": 2}}, 1, [2, 3]),
    (
        {"cell": {"io": 1, "workspace": 2, "stages": 0}, "neuron": {"degree": 1, "order": 2}},
        2,
        [1, 1, 0],
    ),
    (
        {
            "cell": {"io": 2, "workspace": 2},
            "neuron": {"degree": 2, "order": 1, "topology": {"local": 1}},
        },
        2,
        [3, 1, 2],
    ),
]


def _full(matrix, qubits, n):
    """Dense matrix on ``n`` qubits (qubit 0 most significant), built column by column."""
    eye = np.eye(2**n)
    return np.stack([apply_matrix(eye[:, j], matrix, qubits, n) for j in range(2**n)], axis=1)


def _our_segments(dag, params, words):
    """Unitaries between measurements and the measured qubit after each, from our ops."""
    n, unitary, out = dag.n_qubits, np.eye(2**dag.n_qubits), []
    for op in dag.ops:
        if op.kind == "gate":
            angle = None if op.angle is None else op.angle.evaluate(params)
            unitary = _full(gate_matrix(op.name, len(op.qubits), angle), op.qubits, n) @ unitary
        elif op.kind == "wordx" and (words[op.bit.token] >> (dag.io - 1 - op.bit.bit)) & 1:
            unitary = _full(gate_matrix("x", 1), op.qubits, n) @ unitary
        elif op.kind in ("postselect", "project"):
            for q in op.qubits:
                out.append((unitary, q))
                unitary = np.eye(2**n)
    return [*out, (unitary, None)]


def _qiskit_segments(circuit):
    """The same from a loaded circuit: measurements split it, barriers are skipped."""
    n = circuit.num_qubits
    segment, out = QuantumCircuit(n), []
    for inst in circuit.data:
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if inst.operation.name == "measure":
            out.append((Operator(segment).reverse_qargs().data, qubits[0]))
            segment = QuantumCircuit(n)
        elif inst.operation.name != "barrier":
            segment.append(inst.operation, qubits)
    return [*out, (Operator(segment).reverse_qargs().data, None)]


def _assert_same_segments(ours, theirs):
    assert [q for _, q in ours] == [q for _, q in theirs]
    for (a, _), (b, _) in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-12)


@pytest.mark.parametrize(("spec", "steps", "words"), CELLS)
def test_qasm3_unitaries_match_dense_gates(spec, steps, words):
    program = compile_program(spec, steps=steps, literal=True)
    params = np.random.default_rng(3).normal(0, 0.8, program.n_params)
    circuit = qasm3.loads(to_qasm3(program, params, words))
    assert circuit.num_qubits == program.dag.n_qubits
    names = [inst.operation.name for inst in circuit.data]
    n_post = sum(op.kind == "postselect" for op in program.ops)
    n_proj = sum(op.kind == "project" for op in program.ops)
    assert names.count("measure") == n_post + program.io * n_proj
    assert names.count("barrier") == steps  # one per readout
    _assert_same_segments(_our_segments(program.dag, params, words), _qiskit_segments(circuit))


@pytest.mark.parametrize(("spec", "steps", "words"), CELLS[1:3])
def test_qasm3_symbolic_angles_bind_to_the_same_circuit(spec, steps, words):
    program = compile_program(spec, steps=steps, literal=True)
    params = np.random.default_rng(4).normal(0, 0.8, program.n_params)
    text = to_qasm3(program, words=words)
    circuit = qasm3.loads(text)
    bound = circuit.assign_parameters({p: params[int(p.name[6:])] for p in circuit.parameters})
    _assert_same_segments(_our_segments(program.dag, params, words), _qiskit_segments(bound))
    for slot in program.slots:  # slot names are kept beside their declarations
        if f"theta_{slot.index};" in text:
            assert f"input float[64] theta_{slot.index};  // {slot.name}" in text


@pytest.mark.parametrize(("spec", "steps", "words"), CELLS)
def test_qasm3_with_postselect_annotations_reproduces_the_model(spec, steps, words):
    """Simulate the loaded circuit, forcing each measurement to its annotated outcome and
    reading the i/o lanes at each barrier; compare with the dense reference on neurons."""
    program = compile_program(spec, steps=steps)  # neurons: decomposed by the export
    params = np.random.default_rng(5).normal(0, 0.8, program.n_params)
    text = to_qasm3(program, params, words)
    outcomes = iter(int(v) for v in re.findall(r"^@qrnn\.postselect (\d)$", text, re.M))
    circuit = qasm3.loads(text)
    n, io = circuit.num_qubits, program.io
    state = np.zeros(2**n)
    state[0] = 1.0
    index, probs = np.arange(2**n), []
    for inst in circuit.data:
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        if inst.operation.name == "measure":
            state = np.where((index >> (n - 1 - qubits[0])) & 1 == next(outcomes), state, 0.0)
            state /= np.linalg.norm(state)
        elif inst.operation.name == "barrier":
            p = np.bincount(index >> (n - io), weights=np.abs(state) ** 2, minlength=2**io)
            probs.append(p)
        else:
            matrix = Operator(inst.operation).reverse_qargs().data
            state = apply_matrix(state.astype(complex), matrix, qubits, n)
    assert next(outcomes, None) is None
    np.testing.assert_allclose(np.array(probs), dense_run(program.dag, params, words), atol=1e-10)


def test_qasm3_without_words_uses_conditional_x():
    program = compile_program(CELLS[1][0], steps=2)
    circuit = qasm3.loads(
        to_qasm3(program, np.random.default_rng(0).normal(0, 0.5, program.n_params))
    )
    n_wordx = sum(op.kind == "wordx" for op in program.ops)
    assert [inst.operation.name for inst in circuit.data].count("if_else") == n_wordx
    assert {reg.name for reg in circuit.cregs} >= {"w0", "w1", "m1", "anc"}


def test_qasm3_validates_params_and_words():
    program = compile_program(SMALL, steps=2)
    with pytest.raises(CompileError, match=f"expected {program.n_params} values"):
        to_qasm3(program, params=[0.0])
    with pytest.raises(CompileError, match="expected the program's 3 tokens"):
        to_qasm3(program, words=[0, 1])
    with pytest.raises(CompileError, match="token 2 outside 0 … 1"):
        to_qasm3(program, words=[0, 1, 2])


ADD, SUB, MUL = BinaryOperator.ADD, BinaryOperator.SUB, BinaryOperator.MUL
T1, T2, T4 = Identifier("t1"), Identifier("t2"), Identifier("t4")


@pytest.mark.parametrize(
    ("angle", "expr"),
    [
        (Angle(0.0, ()), FloatLiteral(0.0)),
        (Angle(-1.5, ()), FloatLiteral(-1.5)),
        (Angle(0.0, ((1, 1.0),)), T1),
        (Angle(0.0, ((1, -1.0),)), Negation(T1)),
        (Angle(0.0, ((1, -2.0),)), BinaryExpression(MUL, FloatLiteral(-2.0), T1)),
        (Angle(0.0, ((1, 1.0), (2, -1.0))), BinaryExpression(SUB, T1, T2)),
        (
            Angle(0.25, ((1, 1.0), (2, -1.0), (4, -3.0))),
            BinaryExpression(
                SUB,
                BinaryExpression(SUB, BinaryExpression(ADD, FloatLiteral(0.25), T1), T2),
                BinaryExpression(MUL, FloatLiteral(3.0), T4),
            ),
        ),
    ],
)
def test_angle_expressions_are_sums_left_to_right(angle, expr):
    assert angle_expression(angle, lambda slot: f"t{slot}") == expr


def test_angle_expression_refuses_a_value_that_is_not_finite():
    with pytest.raises(CompileError, match="angle inf is not finite"):
        angle_expression(Angle(math.inf, ()), str)
    with pytest.raises(CompileError, match="angle nan is not finite"):
        angle_expression(Angle(0.0, ((0, 1.0), (1, math.nan))), str)


def test_statements_carry_the_token_bits_most_significant_first():
    program = compile_program(CELLS[1][0], steps=3)  # io 2
    words = [2, 3, 1, 2]
    known = build_program(program, words=words).statements
    projections = [s for s in known if isinstance(s, MeasureAssignment) and s.target.name != "anc"]
    tokens = [op.token for op in program.ops if op.kind == "project"]
    assert tokens  # the bits of 3 = 0b11, 1 = 0b01, ...
    assert [s.annotations[0].payload for s in projections] == [
        bit for t in tokens for bit in format(words[t], "02b")
    ]
    assert [s.target for s in projections][:2] == [
        IndexedIdentifier(f"m{tokens[0]}", 0),
        IndexedIdentifier(f"m{tokens[0]}", 1),
    ]
    assert not any(isinstance(s, IfStatement) for s in known)
    unknown = build_program(program).statements
    writes = [s.condition for s in unknown if isinstance(s, IfStatement)]
    wordx = [op.bit for op in program.ops if op.kind == "wordx"]
    assert writes == [IndexedIdentifier(f"w{b.token}", b.bit) for b in wordx]

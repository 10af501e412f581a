"""Exports checked against independent computations: qiskit's OpenQASM 3 importer and dense
matrices, the dense reference simulator, the DAG's own node and edge sets, and QRNN.md §5."""

import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qiskit import QuantumCircuit, qasm3
from qiskit.quantum_info import Operator

from compiler.export import from_json, summary, to_dot, to_json, to_qasm3
from compiler.gates import gate_matrix
from compiler.ir import CompileError
from compiler.unroll import compile_program
from tests.reference import apply_matrix, dense_run

# qiskit's importer builds `ctrl(k) @ ry` through a Gate.control() call it has deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:.*annotated.*:DeprecationWarning")


@st.composite
def programs(draw):
    io, workspace = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    topology = draw(st.sampled_from(["all", {"local": 1}]))
    max_sources = io + workspace - 1 if topology == "all" else min(2, io + workspace - 1)
    spec = {
        "name": draw(st.text(max_size=8)),
        "cell": {"io": io, "workspace": workspace, "stages": draw(st.integers(0, 2))},
        "neuron": {
            "degree": draw(st.integers(1, max_sources)),
            "order": draw(st.integers(1, 2)),
            "topology": topology,
            "offset": draw(st.floats(-10, 10, allow_nan=False)),
        },
        "init": {"bias_std": draw(st.floats(0, 1))},
    }
    return compile_program(
        spec,
        steps=draw(st.integers(1, 3)),
        optimise=draw(st.booleans()),
        literal=draw(st.booleans()),
        separate_targets=draw(st.booleans()),
    )


@settings(max_examples=15)
@given(programs())
def test_json_round_trip_is_exact(program):
    text = to_json(program)
    back = from_json(text)
    assert back == program
    assert back.spec == program.spec and back.steps == program.steps
    assert back.separate_targets == program.separate_targets
    assert back.slots == program.slots
    assert back.dag.n_qubits == program.dag.n_qubits
    assert to_json(back) == text


def test_json_round_trip_custom_topology_and_exact_angles():
    spec = {
        "cell": {"io": 1, "workspace": 2},
        "neuron": {"topology": {"custom": {"0": [2], "1": [0, 2], "2": []}}, "offset": 0.1 + 0.2},
    }
    program = compile_program(spec, steps=2, literal=True)
    back = from_json(to_json(program))
    assert back == program and back.slots == program.slots
    consts = [op.angle.const for op in back.ops if op.kind == "gate" and op.name == "ry"]
    assert 0.1 + 0.2 in consts  # 0.30000000000000004, not 0.3


SMALL = {"cell": {"io": 1, "workspace": 1}, "neuron": {"degree": 1, "order": 1}}


def _mutated(mutate):
    data = json.loads(to_json(compile_program(SMALL, steps=2)))
    mutate(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="qiskit"), "'qiskit'; expected 'qrnn-tn.program'"),
        (lambda d: d.update(version=2), '"version" is 2'),
        (lambda d: d["ops"][0].update(kind="swap"), "unknown op kind 'swap'"),
        (lambda d: d["ops"][0].pop("qubit"), "ops[0] (wordx): missing field 'qubit'"),
        (lambda d: d["ops"][2].update(qubits="0"), "ops[2] (gate).qubits"),
        (lambda d: d["ops"][1].update(slots=[0, 99]), "ops[1] (neuron): refers to a slot"),
        (lambda d: d.pop("steps"), "missing field 'steps'"),
        (lambda d: d["slots"].pop(), "expected a list of"),
        (lambda d: d.update(extra=1), "unknown fields ['extra']"),
        (lambda d: d["spec"]["cell"].update(io=0), "spec: cell.io"),
        (lambda d: d.update(separate_targets="yes"), "separate_targets: got 'yes'"),
        (
            lambda d: next(op for op in d["ops"] if op["kind"] == "project").update(token=3),
            "token 3 outside 0 … 2",
        ),
    ],
)
def test_from_json_rejects_malformed_input(mutate, message):
    with pytest.raises(CompileError) as err:
        from_json(_mutated(mutate))
    assert message in str(err.value)


def test_from_json_rejects_non_json():
    with pytest.raises(CompileError, match="not valid JSON"):
        from_json("{format: 1")


# --- OpenQASM 3 --------------------------------------------------------------------------

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


# --- DOT, summary, parameters -----------------------------------------------------------


@pytest.mark.parametrize("literal", [False, True])
def test_dot_has_one_node_per_op_and_one_edge_per_dag_edge(literal):
    program = compile_program(CELLS[3][0], steps=2, literal=literal)
    text = to_dot(program)
    nodes = re.findall(r"^  n(\d+) \[label=\"((?:[^\"\\]|\\.)*)\"\];$", text, re.M)
    edges = re.findall(r"^  n(\d+) -> n(\d+) \[label=\"([^\"]*)\"\];$", text, re.M)
    graph = program.dag.graph
    assert text.startswith("digraph qrnn {") and text.rstrip().endswith("}")
    assert [int(i) for i, _ in nodes] == list(range(graph.number_of_nodes()))
    assert {(int(u), int(v)) for u, v, _ in edges} == set(graph.edges)
    assert len(edges) == graph.number_of_edges()
    assert to_dot(program.dag) == text
    if not literal:
        assert 'label="N in.h0 (o1,h1)"' in text  # local radius 1 around lane 2


class _Cost:
    def describe(self):
        return "backend: fake (exact)"


def test_summary_of_the_paper_memorisation_cell():
    spec = {
        "name": "memorisation",
        "cell": {"io": 3, "workspace": 5, "stages": 2},
        "neuron": {"degree": 3, "order": 2},
    }
    program = compile_program(spec, steps=1)
    text = summary(program, _Cost())
    n_src = 7
    per_neuron = sum(math.comb(n_src, i) for i in range(4))
    assert (5 + 2 * 5 + 3) * per_neuron + 2 * 5 == 1162
    assert re.search(r"Parameters:\s+1162 \(", text)
    assert re.search(r"neuron:\s+18$", text, re.M)  # (H + S·H + I) neurons per step
    assert re.search(r"Logical qubits:\s+8 \(3 i/o \+ 5 workspace\)", text)
    assert re.search(r"Ancillas \(literal\):\s+2$", text, re.M)
    assert text.rstrip().endswith("backend: fake (exact)")


def test_json_round_trip_and_summary_of_a_local_chain_with_the_io_site():
    spec = {"cell": {"io": 2, "workspace": 3}, "neuron": {"topology": {"local": 1, "io": "site"}}}
    program = compile_program(spec, steps=2)
    again = from_json(to_json(program))
    assert again == program and again.spec.neuron.topology.io == "site"
    text = summary(program)
    assert "topology local 1, i/o lanes one site" in text
    assert re.search(r"Input bit 0 \(o0, most significant\):\s+read by h0, changes", text)

"""Passes: each preserves every readout (and the dense operator of unitary DAGs)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from compiler.ir import Angle, Gate, GateDAG, Neuron, Project, Readout, WordBit, WordX
from compiler.lower import lower_cell, neuron_subsets
from compiler.passes import (
    DEFAULT_PASSES,
    cancel_inverse_pairs,
    merge_rotations,
    optimise,
)
from compiler.spec import load_spec
from compiler.unroll import compile_program, unroll
from tests.reference import dense_run, literal_operator

N_QUBITS = 3
N_SLOTS = 4


@st.composite
def unitary_ops(draw, with_words: bool):
    """Gates that make cancellations and merges likely: few qubits, repeated angles."""
    kind = draw(
        st.sampled_from(["x", "ry", "mcry", "wordx"] if with_words else ["x", "ry", "mcry"])
    )
    if kind == "wordx":
        return WordX(
            draw(st.integers(0, 1)), WordBit(draw(st.integers(0, 1)), draw(st.integers(0, 1)))
        )
    qubits = draw(st.permutations(range(N_QUBITS)))
    slot = draw(st.integers(0, N_SLOTS - 1))
    sign = draw(st.sampled_from([1.0, -1.0]))
    angle = Angle(const=draw(st.sampled_from([0.0, 0.5])), terms=((slot, sign),))
    if kind == "x":
        return Gate("x", (qubits[0],))
    if kind == "ry":
        return Gate("ry", (qubits[0],), angle)
    return Gate("mcry", tuple(qubits[: draw(st.integers(2, 3))]), angle)


def mirrored(ops):
    """ops followed by some of their inverses in reverse, so that passes find work."""
    return ops + [op.inverse() if op.kind == "gate" else op for op in reversed(ops)]


@given(ops=st.lists(unitary_ops(with_words=False), max_size=6), mirror=st.booleans(),
       params=st.lists(st.floats(-3, 3), min_size=N_SLOTS, max_size=N_SLOTS))  # fmt: skip
def test_passes_keep_dense_operator(ops, mirror, params):
    ops = mirrored(ops) if mirror else ops
    dag = GateDAG(ops=tuple(ops), n_lanes=N_QUBITS, n_qubits=N_QUBITS, io=1)
    expected = literal_operator(dag.ops, params, N_QUBITS)
    for run_pass in (cancel_inverse_pairs, merge_rotations):
        out = run_pass(dag)
        np.testing.assert_allclose(
            literal_operator(out.ops, params, N_QUBITS), expected, atol=1e-12
        )
    out = optimise(dag, passes=(cancel_inverse_pairs, merge_rotations)).dag
    np.testing.assert_allclose(literal_operator(out.ops, params, N_QUBITS), expected, atol=1e-12)
    if mirror:
        assert len(out.ops) == 0


@st.composite
def programs(draw):
    """Random small DAGs with neurons, words, readouts and projections."""
    ops = []
    n_readouts = 0
    for _ in range(draw(st.integers(1, 8))):
        choice = draw(st.sampled_from(["unitary", "neuron", "readout", "project"]))
        if choice == "unitary":
            ops.append(draw(unitary_ops(with_words=True)))
        elif choice == "neuron":
            target = draw(st.integers(0, N_QUBITS - 1))
            sources = tuple(q for q in range(N_QUBITS) if q != target)
            subsets = neuron_subsets(sources, 1)
            slots = tuple(draw(st.integers(0, N_SLOTS - 1)) for _ in subsets)
            ops.append(Neuron(target, sources, subsets, slots, draw(st.integers(1, 2)), 0.7))
        elif choice == "readout":
            ops.append(Readout((0, 1), step=n_readouts))
            n_readouts += 1
        else:
            ops.append(Project((0, 1), token=draw(st.integers(0, 1))))
    ops.append(Readout((0, 1), step=n_readouts))
    return GateDAG(ops=tuple(ops), n_lanes=N_QUBITS, n_qubits=N_QUBITS, io=2)


@given(dag=programs(), params=st.lists(st.floats(-3, 3), min_size=N_SLOTS, max_size=N_SLOTS),
       words=st.lists(st.integers(0, 3), min_size=2, max_size=2))  # fmt: skip
def test_passes_keep_readouts(dag, params, words):
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = dense_run(dag, params, words)
    if not np.all(np.isfinite(expected)):
        return  # a projection on a word of probability 0: nothing to compare
    for run_pass in (*DEFAULT_PASSES, lambda d: optimise(d).dag):
        np.testing.assert_allclose(dense_run(run_pass(dag), params, words), expected, atol=1e-10)


def test_reset_cancels_against_next_write():
    spec = load_spec({"cell": {"io": 2, "workspace": 2}, "neuron": {"degree": 1}})
    raw = unroll(lower_cell(spec), 3, spec)
    report = optimise(raw.dag)
    counts = report.dag.counts()
    # Per step: 2 writes + 2 unwrites + 2 resets. Resets of steps 0, 1 cancel the next writes,
    # and the last step's projection and resets come after the last readout.
    assert raw.dag.counts()["wordx"] == 18
    assert counts["wordx"] == 18 - 2 * 4 - 2
    assert counts["project"] == 2
    assert counts["readout"] == 3
    assert "cancel_inverse_pairs" in report.describe()
    assert "drop_unread" in report.describe()


def test_compiled_program_agrees_with_raw_unrolled_program():
    spec = load_spec({"cell": {"io": 2, "workspace": 2, "stages": 1}, "neuron": {"degree": 2}})
    raw = unroll(lower_cell(spec), 3, spec)
    program = compile_program(spec, steps=3)
    rng = np.random.default_rng(0)
    params = rng.normal(0, 0.5, program.n_params)
    words = [1, 3, 0, 2]
    np.testing.assert_allclose(
        dense_run(program.dag, params, words), dense_run(raw.dag, params, words), atol=1e-12
    )

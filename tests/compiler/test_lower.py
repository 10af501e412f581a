"""Lowering: parameter counts, canonical slots, and the literal circuit against M(x)."""

import math
from itertools import product

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler.ir import GateDAG, Neuron
from compiler.lower import decompose_neurons, literal_neuron, lower_cell, neuron_subsets
from compiler.spec import load_spec
from tests.reference import literal_operator

PAPER_CELLS = [  # (H, I, S, d) -> parameters, QRNN.md §5
    ((5, 3, 2, 3), 1162),
    ((8, 2, 2, 2), 1212),
    ((6, 2, 2, 3), 1292),
    ((5, 3, 1, 3), 837),
    ((7, 3, 2, 3), 3134),
]


@pytest.mark.parametrize(("cell", "count"), PAPER_CELLS)
def test_paper_parameter_counts(cell, count):
    h, i, s, d = cell
    spec = load_spec({"cell": {"io": i, "workspace": h, "stages": s}, "neuron": {"degree": d}})
    n_src = h + i - 1
    formula = (h + s * h + i) * sum(math.comb(n_src, k) for k in range(d + 1)) + s * h
    assert formula == count
    assert spec.n_parameters() == count
    assert len(lower_cell(spec).slots) == count


def test_canonical_slot_order_and_names():
    spec = load_spec({"cell": {"io": 2, "workspace": 2, "stages": 1}, "neuron": {"degree": 2}})
    names = [s.name for s in lower_cell(spec).slots]
    # Neuron on h0 = lane 2 with sources 0, 1, 3: (), singles, pairs lexicographically.
    assert names[:7] == [
        "in.h0.[]",
        "in.h0.[0]",
        "in.h0.[1]",
        "in.h0.[3]",
        "in.h0.[0,1]",
        "in.h0.[0,3]",
        "in.h0.[1,3]",
    ]
    assert names[7] == "in.h1.[]"
    assert names[14:16] == ["s1.ry.h0", "s1.ry.h1"]
    assert names[16] == "s1.h0.[]"
    assert names[30] == "out.o0.[]"
    assert names[-1] == "out.o1.[2,3]"
    kinds = {s.name: s.kind for s in lower_cell(spec).slots}
    assert (kinds["in.h0.[]"], kinds["in.h0.[0,1]"], kinds["s1.ry.h1"]) == (
        "bias",
        "weight",
        "rotation",
    )


def test_cell_stage_order():
    spec = load_spec({"cell": {"io": 1, "workspace": 2, "stages": 1}, "neuron": {"degree": 1}})
    kinds = [
        (op.kind, getattr(op, "target", None) or getattr(op, "qubits", None))
        for op in lower_cell(spec).ops
    ]
    assert [k for k, _ in kinds] == [
        "wordx", "neuron", "neuron", "gate", "gate", "neuron", "neuron",
        "wordx", "neuron", "readout", "project", "wordx",
    ]  # fmt: skip


def expected_neuron_operator(neuron: Neuron, params, n_lanes: int) -> np.ndarray:
    """``Σ_x |x⟩⟨x| ⊗ M(x)`` straight from QRNN.md §2, on the lanes only."""
    dim = 2**n_lanes
    out = np.zeros((dim, dim))
    for z, bits in enumerate(product((0, 1), repeat=n_lanes)):
        eta = neuron.offset
        for subset, slot in zip(neuron.subsets, neuron.slots, strict=True):
            if all(bits[q] for q in subset):
                eta += params[slot]
        c = math.cos(eta / 2) ** (2**neuron.order)
        s = math.sin(eta / 2) ** (2**neuron.order)
        flipped = z ^ (1 << (n_lanes - 1 - neuron.target))
        out[z, z] = c
        out[flipped, z] = -s if bits[neuron.target] else s
    return out


@given(
    n_lanes=st.integers(2, 4),
    order=st.integers(1, 3),
    degree=st.integers(1, 3),
    data=st.data(),
)
def test_literal_circuit_is_the_neuron(n_lanes, order, degree, data):
    target = data.draw(st.integers(0, n_lanes - 1))
    others = [q for q in range(n_lanes) if q != target]
    sources = tuple(sorted(data.draw(st.lists(st.sampled_from(others), unique=True, max_size=3))))
    subsets = neuron_subsets(sources, degree)
    neuron = Neuron(target, sources, subsets, tuple(range(len(subsets))), order, offset=1.3)
    params = np.array(
        data.draw(st.lists(st.floats(-3, 3), min_size=len(subsets), max_size=len(subsets)))
    )
    n = n_lanes + order
    ops = literal_neuron(neuron, tuple(range(n_lanes, n)))
    full = literal_operator(ops, params, n)
    # Ancillas are the least significant bits: their |0…0⟩ block is every 2^order-th index.
    block = full[:: 2**order, :: 2**order]
    np.testing.assert_allclose(block, expected_neuron_operator(neuron, params, n_lanes), atol=1e-12)
    # The ancillas come back to |0⟩ after postselection: nothing leaks to other blocks.
    leak = full[:, :: 2**order].copy()
    leak[:: 2**order] = 0
    assert np.abs(leak).max() < 1e-12


def test_decompose_neurons_registers():
    spec = load_spec({"cell": {"io": 1, "workspace": 2}, "neuron": {"order": 3, "degree": 1}})
    cell = lower_cell(spec)
    literal = decompose_neurons(cell)
    assert isinstance(literal, GateDAG)
    assert (literal.n_lanes, literal.n_qubits, literal.n_ancillas) == (3, 6, 3)
    assert literal.counts()["neuron"] == 0
    n_neurons = cell.counts()["neuron"]
    # Order k nests 2^(k-1) level-1 circuits, each with one postselection, plus k-1 outer ones.
    assert literal.counts()["postselect"] == n_neurons * (2**3 - 1)
    assert literal.slots == cell.slots

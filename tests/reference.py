"""Independent dense numpy simulation of a GateDAG, used by tests as the ground truth.

Every operation is applied from its definition in QRNN.md: gates as dense matrices on the
full register, neurons as ``Σ_x |x⟩⟨x| ⊗ M(x)`` built branch by branch from η(x), ancilla
postselection and projections by zeroing amplitudes. Qubit 0 is the most significant bit.
"""

from __future__ import annotations

import numpy as np

from compiler.gates import gate_matrix
from compiler.ir import GateDAG


def apply_matrix(state: np.ndarray, matrix: np.ndarray, qubits, n: int) -> np.ndarray:
    """Apply ``matrix`` (first qubit most significant) to ``qubits`` of an n-qubit state."""
    k = len(qubits)
    psi = state.reshape([2] * n)
    op = matrix.reshape([2] * (2 * k))
    psi = np.tensordot(op, psi, axes=(list(range(k, 2 * k)), list(qubits)))
    psi = np.moveaxis(psi, list(range(k)), list(qubits))
    return psi.reshape(-1)


def bit_of(index: np.ndarray, qubit: int, n: int) -> np.ndarray:
    return (index >> (n - 1 - qubit)) & 1


def neuron_operator(op, params, n: int) -> np.ndarray:
    """Dense ``Σ_x |x⟩⟨x| ⊗ M(x)`` on the full register, from the formula of QRNN.md §2."""
    dim = 2**n
    idx = np.arange(dim)
    out = np.zeros((dim, dim))
    for z in range(dim):
        eta = op.offset
        for subset, slot in zip(op.subsets, op.slots, strict=True):
            eta += params[slot] * np.prod([bit_of(z, q, n) for q in subset])
        eta /= 2
        c, s = np.cos(eta) ** (2**op.order), np.sin(eta) ** (2**op.order)
        g = bit_of(z, op.target, n)
        partner = z ^ (1 << (n - 1 - op.target))
        # column z: |z⟩ maps to c|z⟩ + s|z with target flipped⟩ (or -s when the target is 1)
        out[z, z] = c
        out[partner, z] = s if g == 0 else -s
    del idx
    return out


def dense_run(dag: GateDAG, params, words, *, return_state: bool = False):
    """Per-step readout distributions ``[steps, 2^io]`` of ``dag`` for token sequence ``words``."""
    state = np.zeros(2**dag.n_qubits)
    state[0] = 1.0
    probs, state = _apply(dag, params, words, state)
    out = np.array(probs)
    return (out, state) if return_state else out


def dense_cell_sequence(cell: GateDAG, params, inputs, targets) -> np.ndarray:
    """Distributions ``[steps, 2^io]`` of a one-step ``cell`` (tokens 0: input, 1: target)
    run step by step on its own, step ``t`` reading ``inputs[t]`` and projected on
    ``targets[t]``; no unrolled program is involved."""
    state = np.zeros(2**cell.n_qubits)
    state[0] = 1.0
    probs = []
    for word, target in zip(inputs, targets, strict=False):
        step_probs, state = _apply(cell, params, [word, target], state)
        probs += step_probs
    return np.array(probs)


def _apply(dag: GateDAG, params, words, state: np.ndarray) -> tuple[list, np.ndarray]:
    n = dag.n_qubits
    idx = np.arange(2**n)
    probs = []
    for op in dag.ops:
        if op.kind == "gate":
            angle = None if op.angle is None else op.angle.evaluate(params)
            state = apply_matrix(state, gate_matrix(op.name, len(op.qubits), angle), op.qubits, n)
        elif op.kind == "wordx":
            if (words[op.bit.token] >> (dag.io - 1 - op.bit.bit)) & 1:
                state = apply_matrix(state, gate_matrix("x", 1), [op.qubit], n)
        elif op.kind == "neuron":
            state = neuron_operator(op, params, n) @ state
            state /= np.linalg.norm(state)
        elif op.kind == "postselect":
            state = np.where(bit_of(idx, op.qubit, n) == 0, state, 0.0)
            state /= np.linalg.norm(state)
        elif op.kind == "readout":
            word = np.zeros(2**n, dtype=int)
            for q in op.qubits:
                word = 2 * word + bit_of(idx, q, n)
            p = np.bincount(word, weights=np.abs(state) ** 2, minlength=2 ** len(op.qubits))
            probs.append(p / p.sum())
        elif op.kind == "project":
            word = np.zeros(2**n, dtype=int)
            for q in op.qubits:
                word = 2 * word + bit_of(idx, q, n)
            state = np.where(word == words[op.token], state, 0.0)
            state /= np.linalg.norm(state)
        else:
            raise AssertionError(f"unknown op {op}")
    return probs, state


def embed(matrix: np.ndarray, qubits, n: int) -> np.ndarray:
    """The ``2^n`` matrix of ``matrix`` acting on ``qubits`` (index by index, no tensordot)."""
    k = len(qubits)
    dim = 2**n
    out = np.zeros((dim, dim), dtype=matrix.dtype)
    for col in range(dim):
        sub_col = 0
        for q in qubits:
            sub_col = 2 * sub_col + bit_of(col, q, n)
        rest = col
        for q in qubits:
            rest &= ~(1 << (n - 1 - q))
        for sub_row in range(2**k):
            row = rest
            for j, q in enumerate(qubits):
                if (sub_row >> (k - 1 - j)) & 1:
                    row |= 1 << (n - 1 - q)
            out[row, col] += matrix[sub_row, sub_col]
    return out


def literal_operator(ops, params, n: int) -> np.ndarray:
    """Product of the dense matrices of gates and ancilla projectors ``|0⟩⟨0|`` (no renorm)."""
    total = np.eye(2**n)
    p0 = np.array([[1.0, 0.0], [0.0, 0.0]])
    for op in ops:
        if op.kind == "gate":
            angle = None if op.angle is None else op.angle.evaluate(params)
            m = gate_matrix(op.name, len(op.qubits), angle)
        elif op.kind == "postselect":
            m = p0
        else:
            raise AssertionError(f"not a literal-circuit op: {op}")
        total = embed(m, op.qubits, n) @ total
    return total

"""Independent dense simulation of a GateDAG, used by tests as the ground truth.

Every operation is applied from its definition in QRNN.md: gates as dense matrices on the
full register, neurons as ``Σ_x |x⟩⟨x| ⊗ M(x)`` built branch by branch from η(x), ancilla
postselection and projections by zeroing amplitudes. Qubit 0 is the most significant bit.

:func:`dense_run` (numpy) is the reference; :func:`dense_log_norm` gives the log-probability of
the postselected history of the same run. :func:`dense_run_torch` is the same dense simulation
written with torch operations on the full register, so that autograd gives the reference's
gradients; ``tests/test_reference.py`` checks it against :func:`dense_run` and against finite
differences. None of them uses a backend.
"""

from __future__ import annotations

import numpy as np
import torch

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
    probs, state, _ = _apply(dag, params, words, state)
    out = np.array(probs)
    return (out, state) if return_state else out


def dense_log_norm(dag: GateDAG, params, words) -> float:
    """``log`` of the probability of the run's postselected history.

    The sum of ``log ‖ψ‖²`` over every renormalisation of :func:`dense_run` (neuron
    successes, ancilla postselections and token projections): the ``log_norm`` of a backend's
    ``RunResult``.
    """
    state = np.zeros(2**dag.n_qubits)
    state[0] = 1.0
    return _apply(dag, params, words, state)[2]


def dense_cell_sequence(cell: GateDAG, params, inputs, targets) -> np.ndarray:
    """Distributions ``[steps, 2^io]`` of a one-step ``cell`` (tokens 0: input, 1: target)
    run step by step on its own, step ``t`` reading ``inputs[t]`` and projected on
    ``targets[t]``; no unrolled program is involved."""
    state = np.zeros(2**cell.n_qubits)
    state[0] = 1.0
    probs = []
    for word, target in zip(inputs, targets, strict=False):
        step_probs, state, _ = _apply(cell, params, [word, target], state)
        probs += step_probs
    return np.array(probs)


def _apply(dag: GateDAG, params, words, state: np.ndarray) -> tuple[list, np.ndarray, float]:
    n = dag.n_qubits
    idx = np.arange(2**n)
    probs = []
    log_norm = 0.0

    def renormalise(state: np.ndarray) -> np.ndarray:
        nonlocal log_norm
        norm = np.linalg.norm(state)
        log_norm += 2 * np.log(norm)
        return state / norm

    for op in dag.ops:
        if op.kind == "gate":
            angle = None if op.angle is None else op.angle.evaluate(params)
            state = apply_matrix(state, gate_matrix(op.name, len(op.qubits), angle), op.qubits, n)
        elif op.kind == "wordx":
            if (words[op.bit.token] >> (dag.io - 1 - op.bit.bit)) & 1:
                state = apply_matrix(state, gate_matrix("x", 1), [op.qubit], n)
        elif op.kind == "neuron":
            state = renormalise(neuron_operator(op, params, n) @ state)
        elif op.kind == "postselect":
            state = renormalise(np.where(bit_of(idx, op.qubit, n) == 0, state, 0.0))
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
            state = renormalise(np.where(word == words[op.token], state, 0.0))
        else:
            raise AssertionError(f"unknown op {op}")
    return probs, state, log_norm


def _neuron_eta_torch(op, params: torch.Tensor, n: int) -> torch.Tensor:
    """``2η(z) = offset + Σ_S θ_S Π_{i∈S} z_i`` for every basis index ``z`` of the register."""
    idx = torch.arange(2**n)
    eta = torch.full((2**n,), op.offset, dtype=params.dtype)
    for subset, slot in zip(op.subsets, op.slots, strict=True):
        active = torch.ones_like(idx)
        for q in subset:
            active = active * ((idx >> (n - 1 - q)) & 1)
        eta = eta + params[slot] * active
    return eta


def dense_run_torch(dag: GateDAG, params: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """Distributions ``[batch, steps, 2^io]`` of ``dag`` for ``words [batch, tokens]``, in torch.

    The same dense simulation as :func:`dense_run`, on the full register ``[batch, 2^n]``
    with index arithmetic instead of matrices, so that autograd differentiates it with respect
    to ``params``. Gates other than ``ry`` (the only gate of a fused program) are refused.
    """
    n = dag.n_qubits
    idx = torch.arange(2**n)
    psi = torch.zeros(words.shape[0], 2**n, dtype=params.dtype)
    psi[:, 0] = 1.0
    probs = []

    def bit(index: torch.Tensor, qubit: int) -> torch.Tensor:
        return (index >> (n - 1 - qubit)) & 1

    def word_of(qubits) -> torch.Tensor:
        word = torch.zeros_like(idx)
        for q in qubits:
            word = 2 * word + bit(idx, q)
        return word

    def renormalise(psi: torch.Tensor) -> torch.Tensor:
        return psi / psi.norm(dim=1, keepdim=True)

    def rotate(psi: torch.Tensor, target: int, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        # column z: |z⟩ -> c(z)|z⟩ ± s(z)|z with target flipped⟩ (+ when the target is 0)
        partner = idx ^ (1 << (n - 1 - target))
        sign = torch.where(bit(idx, target) == 1, 1.0, -1.0).to(params.dtype)
        return c * psi + sign * s[partner] * psi[:, partner]

    for op in dag.ops:
        if op.kind == "gate":
            if op.name != "ry":
                raise AssertionError(f"dense_run_torch simulates ry gates only, not {op}")
            angle = op.angle.const + sum(c * params[slot] for slot, c in op.angle.terms)
            half = torch.ones(2**n, dtype=params.dtype) * angle / 2
            psi = rotate(psi, op.qubits[0], torch.cos(half), torch.sin(half))
        elif op.kind == "wordx":
            flip = (words[:, op.bit.token] >> (dag.io - 1 - op.bit.bit)) & 1
            flipped = psi[:, idx ^ (1 << (n - 1 - op.qubit))]
            psi = torch.where(flip[:, None].bool(), flipped, psi)
        elif op.kind == "neuron":
            eta = _neuron_eta_torch(op, params, n)
            power = 2**op.order
            c, s = torch.cos(eta / 2) ** power, torch.sin(eta / 2) ** power
            psi = renormalise(rotate(psi, op.target, c, s))
        elif op.kind == "postselect":
            psi = renormalise(torch.where(bit(idx, op.qubit) == 0, psi, 0.0))
        elif op.kind == "readout":
            word = word_of(op.qubits)
            p = torch.zeros(psi.shape[0], 2 ** len(op.qubits), dtype=params.dtype)
            p = p.index_add(1, word, psi.square())
            probs.append(p / p.sum(1, keepdim=True))
        elif op.kind == "project":
            keep = word_of(op.qubits)[None, :] == words[:, op.token, None]
            psi = renormalise(torch.where(keep, psi, 0.0))
        else:
            raise AssertionError(f"unknown op {op}")
    return torch.stack(probs, 1)


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

"""The primitive gate set and the neuron's activation (QRNN.md §1–§2).

Every primitive has a name, an arity rule, a numpy matrix and an inverse. Qubit order in a
matrix follows the gate's qubit tuple with the first qubit as the most significant bit.
:func:`neuron_branch_amplitudes` is the single definition of ``c(x)``, ``s(x)`` that every
backend uses; it works on numpy arrays and torch tensors alike (through autoray).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from autoray import do

__all__ = [
    "GateInfo",
    "GATES",
    "ry_matrix",
    "gate_matrix",
    "neuron_branch_amplitudes",
    "neuron_matrix",
]


@dataclass(frozen=True)
class GateInfo:
    """A primitive gate: how many qubits it takes, whether it has an angle, its QASM name."""

    name: str
    min_qubits: int
    max_qubits: int | None
    has_angle: bool
    self_inverse: bool
    diagonal: bool = False


GATES: dict[str, GateInfo] = {
    "x": GateInfo("x", 1, 1, has_angle=False, self_inverse=True),
    "ry": GateInfo("ry", 1, 1, has_angle=True, self_inverse=False),
    # Multi-controlled RY: qubits = controls + (target,), at least one control.
    "mcry": GateInfo("mcry", 2, None, has_angle=True, self_inverse=False),
}

X = np.array([[0.0, 1.0], [1.0, 0.0]])
#: -iY, the gate a neuron's ancilla controls onto the target; equal to RY(π).
MINUS_IY = np.array([[0.0, -1.0], [1.0, 0.0]])


def ry_matrix(angle: float) -> np.ndarray:
    """``RY(a) = exp(-i a Y / 2)``, real."""
    c, s = np.cos(angle / 2), np.sin(angle / 2)
    return np.array([[c, -s], [s, c]])


def gate_matrix(name: str, n_qubits: int, angle: float | None = None) -> np.ndarray:
    """Dense real matrix of primitive ``name`` acting on ``n_qubits`` qubits."""
    info = GATES.get(name)
    if info is None:
        raise KeyError(f"unknown gate {name!r}; known gates: {', '.join(GATES)}")
    if n_qubits < info.min_qubits or (info.max_qubits is not None and n_qubits > info.max_qubits):
        raise ValueError(f"gate {name!r} cannot act on {n_qubits} qubits")
    if name == "x":
        return X.copy()
    if angle is None:
        raise ValueError(f"gate {name!r} needs an angle")
    if name == "ry":
        return ry_matrix(angle)
    dim = 2**n_qubits
    out = np.eye(dim)
    out[dim - 2 :, dim - 2 :] = ry_matrix(angle)
    return out


#: An array type autoray dispatches on: a numpy array or a torch tensor.
ArrayT = TypeVar("ArrayT")


def neuron_branch_amplitudes(eta: ArrayT, order: int) -> tuple[ArrayT, ArrayT]:
    """``c = cos(η)^(2^k)``, ``s = sin(η)^(2^k)`` for half-angles ``η`` (numpy or torch)."""
    power = 2**order
    return do("cos", eta) ** power, do("sin", eta) ** power


def neuron_matrix(eta: float, order: int) -> np.ndarray:
    """``M(x) = [[c, -s], [s, c]]`` on one branch with half-angle ``η`` (QRNN.md §2)."""
    c, s = neuron_branch_amplitudes(np.asarray(eta, dtype=float), order)
    return np.array([[c, -s], [s, c]])

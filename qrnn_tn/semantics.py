"""The model's meaning on the torch side, written once for every backend and front end.

QRNN.md fixes what a cell computes; the compiler turns it into a :class:`Program` of typed
operations. What a backend must evaluate in torch from those operations is defined here:
the bits of the tokens a step reads (QRNN.md §1: bit 0 is the most significant), the
rotation angles, linear in the parameters, and a neuron's half-angle ``η(x)`` and
amplitudes ``c(x)``, ``s(x)`` over the branches ``x`` of its source lanes (QRNN.md §2).
Backends keep only their own layout of these values (the statevector's subset-sum tables,
the MPS's window tables, the tensor network's leaves); the numbers come from here.

Examples
--------
>>> import torch
>>> from compiler.ir import WordBit
>>> token_bits(torch.tensor([[2, 1]]), [WordBit(0, 0)], io=2).tolist()  # 2 = 0b10
[1]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from compiler.gates import neuron_branch_amplitudes
from compiler.ir import Angle, WordBit

__all__ = ["token_bits", "angle_value", "neuron_half_angles", "neuron_amplitudes", "check_tokens"]


def token_bits(
    words: torch.Tensor, bits: Iterable[WordBit], io: int, const: int = 0
) -> torch.Tensor:
    """``const`` XOR the given bits of the tokens, per sequence: ``[batch]`` int64 of 0/1.

    ``words`` is ``[batch, n_tokens]``; :class:`~compiler.ir.WordBit` ``(token, bit)`` names
    bit ``bit`` of token ``token``, bit 0 being the most significant of its ``io`` bits.
    """
    out = torch.full((words.shape[0],), const, dtype=torch.int64, device=words.device)
    for word_bit in bits:
        out = out ^ ((words[:, word_bit.token] >> (io - 1 - word_bit.bit)) & 1)
    return out


def angle_value(params: torch.Tensor, angle: Angle) -> torch.Tensor:
    """``const + Σ coef · params[slot]`` of a rotation angle (a 0-d tensor, differentiable)."""
    value = params.new_tensor(angle.const)
    for slot, coef in angle.terms:
        value = value + coef * params[slot]
    return value


def neuron_half_angles(
    params: torch.Tensor, slots: torch.Tensor, monomials: np.ndarray, offset: float
) -> torch.Tensor:
    """Return the half-angle ``η(x) = (β + Σ_S θ_S Π_{i∈S} x_i) / 2`` (QRNN.md §2).

    It is computed on every source branch ``x`` of a neuron, or of a group of neurons of one shape.
    ``slots`` holds the neuron's parameter slots ``[k]`` (or ``[group, k]``); ``monomials`` is
    :meth:`compiler.ir.Neuron.monomials`, ``[2^m, k]``; ``offset`` is ``β``. Returns ``[2^m]`` (or
    ``[group, 2^m]``), the first source being the most significant bit of the branch index.
    """
    mono = torch.as_tensor(monomials, dtype=params.dtype, device=params.device)
    return (offset + params[slots] @ mono.T) / 2


def neuron_amplitudes(
    params: torch.Tensor, slots: torch.Tensor, monomials: np.ndarray, offset: float, order: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``c(x) = cos(η)^(2^k)`` and ``s(x) = sin(η)^(2^k)`` on every source branch.

    ``k`` is the ``order`` (QRNN.md §2); the neuron's map on that branch is ``[[c, -s], [s, c]]``,
    before the renormalisation that postselection implies.
    """
    return neuron_branch_amplitudes(neuron_half_angles(params, slots, monomials, offset), order)


def check_tokens(tokens: torch.Tensor, io: int, where: str, error: type[Exception]) -> torch.Tensor:
    """Return ``tokens`` as int64.

    Non-integer dtypes and words outside ``0 … 2^io - 1`` raise ``error`` naming ``where``
    (each layer passes its own error type).
    """
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise error(f"{where} must hold integer tokens; got dtype {tokens.dtype}")
    tokens = tokens.to(torch.int64)
    if tokens.numel():
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= 2**io:
            bad = low if low < 0 else high
            raise error(
                f"{where}: token {bad} is out of range; a cell with io={io} reads words "
                f"0 … {2**io - 1}"
            )
    return tokens

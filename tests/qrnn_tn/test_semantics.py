"""The torch-side semantics against plain-Python evaluations of QRNN.md's definitions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.ir import Angle, Neuron, WordBit
from qrnn_tn.errors import BackendError
from qrnn_tn.semantics import (
    angle_value,
    check_tokens,
    neuron_amplitudes,
    neuron_half_angles,
    token_bits,
)


@settings(max_examples=50, deadline=None)
@given(
    io=st.integers(1, 4),
    data=st.data(),
)
def test_token_bits_xor_the_named_bits_most_significant_first(io, data):
    words = data.draw(
        st.lists(st.lists(st.integers(0, 2**io - 1), min_size=3, max_size=3), min_size=1)
    )
    bits = data.draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, io - 1)), max_size=4))
    const = data.draw(st.integers(0, 1))
    got = token_bits(torch.tensor(words), [WordBit(t, b) for t, b in bits], io, const)
    for row, value in zip(words, got.tolist(), strict=True):
        expected = const
        for token, bit in bits:
            expected ^= int(format(row[token], f"0{io}b")[bit])
        assert value == expected


def test_angle_value_is_linear_in_the_parameters_and_differentiable():
    params = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
    angle = Angle(0.5, ((0, 2.0), (2, -1.0)))
    value = angle_value(params, angle)
    assert math.isclose(value.item(), 0.5 + 2.0 * 0.3 - 2.0)
    value.backward()
    assert params.grad.tolist() == [2.0, 0.0, -1.0]


def _neuron(subsets):
    sources = tuple(sorted({q for s in subsets for q in s}))
    return Neuron(
        target=9,
        sources=sources,
        subsets=tuple(subsets),
        slots=tuple(range(len(subsets))),
        offset=0.7,
        order=2,
    )


@pytest.mark.parametrize("subsets", [[()], [(), (1,)], [(1,), (3,), (1, 3)], [(), (2, 5, 6)]])
def test_neuron_half_angles_match_the_polynomial_on_every_branch(subsets):
    op = _neuron(subsets)
    theta = torch.tensor([0.4, -0.9, 1.3, 0.25][: len(subsets)], dtype=torch.float64)
    got = neuron_half_angles(theta, torch.tensor(op.slots), op.monomials(), op.offset)
    m = len(op.sources)
    for index, branch in enumerate(itertools.product((0, 1), repeat=m)):  # first source = MSB
        x = dict(zip(op.sources, branch, strict=True))
        polynomial = sum(
            t * math.prod(x[q] for q in s) for t, s in zip(theta.tolist(), subsets, strict=True)
        )
        assert math.isclose(got[index].item(), (op.offset + polynomial) / 2, abs_tol=1e-14)


def test_neuron_amplitudes_are_a_rotation_by_q_of_eta_times_the_success_amplitude():
    """QRNN.md §2: ``[[c, -s], [s, c]] = √(c² + s²) · RY(2 q(η))``, ``q = arctan(tan(η)^(2^k))``."""
    op = _neuron([(), (1,)])
    theta = torch.tensor([0.4, -0.9], dtype=torch.float64)
    c, s = neuron_amplitudes(theta, torch.tensor(op.slots), op.monomials(), op.offset, op.order)
    eta = neuron_half_angles(theta, torch.tensor(op.slots), op.monomials(), op.offset)
    q = torch.atan(torch.tan(eta) ** (2**op.order))
    norm = torch.sqrt(c**2 + s**2)
    torch.testing.assert_close(c, norm * torch.cos(q), rtol=0, atol=1e-12)
    torch.testing.assert_close(s, norm * torch.sin(q), rtol=0, atol=1e-12)


def test_check_tokens_raises_the_callers_error_naming_where():
    assert check_tokens(torch.tensor([[0, 3]], dtype=torch.int32), 2, "w", ValueError).dtype == (
        torch.int64
    )
    with pytest.raises(ValueError, match="targets: token 4 is out of range.*0 … 3"):
        check_tokens(torch.tensor([[4]]), 2, "targets", ValueError)
    with pytest.raises(BackendError, match="w must hold integer tokens"):
        check_tokens(torch.tensor([0.0]), 2, "w", BackendError)
    assert check_tokens(torch.zeros(0, dtype=torch.int64), 1, "w", ValueError).numel() == 0
    assert np.array_equal(
        check_tokens(torch.tensor([[-0]]), 1, "w", ValueError).numpy(), np.array([[0]])
    )

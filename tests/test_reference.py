"""The test references agree with each other and with their definitions.

:func:`tests.reference.dense_run_torch` against :func:`tests.reference.dense_run` (values)
and against central finite differences of it (gradients); :func:`tests.reference.dense_log_norm`
against the same history computed with and without decomposed neurons.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.lower import decompose_neurons
from compiler.unroll import compile_program
from tests.reference import dense_log_norm, dense_run, dense_run_torch
from tests.strategies import cell_specs, runs


@settings(max_examples=10)
@given(data=st.data(), spec=cell_specs(), steps=st.integers(1, 3))
def test_torch_reference_matches_the_numpy_reference(data, spec, steps):
    program = compile_program(spec, steps=steps)
    params, words = data.draw(runs(program))
    expect = np.stack([dense_run(program.dag, params, row.tolist()) for row in words])
    got = dense_run_torch(program.dag, torch.tensor(params), torch.as_tensor(words))
    np.testing.assert_allclose(got.numpy(), expect, rtol=0, atol=1e-12)


def test_torch_reference_gradient_matches_finite_differences_of_the_numpy_reference():
    spec = {
        "cell": {"io": 2, "workspace": 3, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
    }
    program = compile_program(spec, steps=3)
    rng = np.random.default_rng(0)
    params = rng.normal(0, 1, program.n_params)
    words = rng.integers(0, 4, (2, 4))
    weights = rng.normal(size=(2, 3, 4))

    def loss(theta: np.ndarray) -> float:
        probs = np.stack([dense_run(program.dag, theta, row.tolist()) for row in words])
        return float((probs * weights).sum())

    theta = torch.tensor(params, requires_grad=True)
    probs = dense_run_torch(program.dag, theta, torch.as_tensor(words))
    (grad,) = torch.autograd.grad((probs * torch.as_tensor(weights)).sum(), theta)
    eps = 1e-6
    for i in range(program.n_params):
        step = np.zeros(program.n_params)
        step[i] = eps
        numeric = (loss(params + step) - loss(params - step)) / (2 * eps)
        assert float(grad[i]) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_torch_reference_refuses_gates_it_does_not_simulate():
    program = compile_program(
        {"cell": {"io": 1, "workspace": 1}, "neuron": {"degree": 1}}, literal=True
    )
    with pytest.raises(AssertionError, match="ry gates only"):
        dense_run_torch(program.dag, torch.zeros(program.n_params), torch.zeros(1, 2, dtype=int))


def test_log_norm_of_order_one_neurons_equals_that_of_their_literal_circuit():
    """Order 1: the literal circuit's ancilla succeeds with probability ``c² + s²`` on every
    branch, the norm the fused neuron removes, so both histories have one probability."""
    spec = {"cell": {"io": 2, "workspace": 2, "stages": 1}, "neuron": {"degree": 2, "order": 1}}
    program = compile_program(spec, steps=3)
    rng = np.random.default_rng(1)
    params = rng.normal(0, 1, program.n_params)
    words = rng.integers(0, 4, 4).tolist()
    fused = dense_log_norm(program.dag, params, words)
    literal = dense_log_norm(decompose_neurons(program.dag), params, words)
    assert fused == pytest.approx(literal, rel=1e-12)
    probs = dense_run(program.dag, params, words)
    projected = np.log(probs[np.arange(2), words[1:3]]).sum()  # the two projected steps
    assert fused <= projected + 1e-12 < 0

"""Every registered backend × dtype on generated cells against the dense reference.

Distributions must agree with :func:`tests.reference.dense_run` (dense numpy, operator by
operator from QRNN.md) and gradients with its central finite differences, to the tolerances
the contract sets: 1e-10 in double precision, 1e-5 in single.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from compiler.unroll import compile_program
from qrnn_tn.backends import BackendOptions, backend_names, get_backend
from tests.reference import dense_run
from tests.strategies import cell_specs, runs

#: Options that keep each backend exact and quick (no path search, no cache on disk).
QUICK = {"tensornet": {"cache_dir": None, "search_time": 0.0}}
TOLERANCE = {torch.float64: 1e-10, torch.complex128: 1e-10, torch.float32: 1e-5}


def _log_likelihood(dag, params: np.ndarray, words: np.ndarray) -> float:
    """Σ over sequences and steps of ``log p_t(w_{t+1})`` from the dense reference."""
    total = 0.0
    for row in words:
        probs = dense_run(dag, params, row.tolist())
        total += float(np.log(probs[np.arange(len(probs)), row[1:]]).sum())
    return total


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=str)
@pytest.mark.parametrize("backend", backend_names())
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), spec=cell_specs(), steps=st.integers(1, 3))
def test_distributions_and_gradients_match_the_dense_reference(backend, dtype, data, spec, steps):
    program = compile_program(spec, steps=steps)
    params, words = data.draw(runs(program))
    expect = np.stack([dense_run(program.dag, params, row.tolist()) for row in words])
    targets = expect[np.arange(len(words))[:, None], np.arange(steps), words[:, 1:]]
    assume(targets.min() > 1e-6)  # log-likelihood gradients of near-zero targets are ill-posed
    options = BackendOptions(
        dtype=dtype, batch_size=len(words), backend_options=QUICK.get(backend, {})
    )
    plan = get_backend(backend)(program, options)
    real = torch.float32 if dtype == torch.float32 else torch.float64
    theta = torch.tensor(params, dtype=real, requires_grad=True)
    result = plan.run(theta, torch.as_tensor(words))
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(result.probs.detach().double().numpy(), expect, rtol=0, atol=tol)
    if dtype == torch.float32:
        return  # finite differences are not resolvable in single precision
    result.target_prob.log().sum().backward()
    direction = np.random.default_rng(steps).standard_normal(program.n_params)
    eps = 1e-5
    up = _log_likelihood(program.dag, params + eps * direction, words)
    down = _log_likelihood(program.dag, params - eps * direction, words)
    numeric = (up - down) / (2 * eps)
    analytic = float(theta.grad.double() @ torch.as_tensor(direction))
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-6)

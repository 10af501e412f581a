"""MPS backend: exactness against the dense reference, truncation bounds, stable gradients.

Values against :func:`tests.reference.dense_run`, gradients against autograd through
:func:`tests.reference.dense_run_torch`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from compiler.unroll import compile_program
from qrnn_tn.backends.base import BackendError, BackendOptions, backend_names
from qrnn_tn.backends.mps import prepare
from qrnn_tn.backends.mps.state import BlockMPS
from qrnn_tn.backends.mps.svd import split
from tests.reference import dense_run, dense_run_torch


def reference_probs(program, params: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Per-step distributions from the independent dense numpy reference."""
    return np.stack([dense_run(program.dag, params, w) for w in words])


def _spec(io, work, stages, degree, order, topology):
    return {
        "cell": {"io": io, "workspace": work, "stages": stages},
        "neuron": {"degree": degree, "order": order, "topology": topology},
    }


def _custom(n: int, rng: np.random.Generator) -> dict:
    table = {}
    for g in range(n):
        others = [q for q in range(n) if q != g]
        k = int(rng.integers(1, min(3, len(others)) + 1))
        table[str(g)] = sorted(int(q) for q in rng.choice(others, k, replace=False))
    return {"custom": table}


def _loss_weights(shape, seed: int) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).normal(size=shape))


@settings(max_examples=6, deadline=None)
@given(
    io=st.integers(1, 2),
    work=st.integers(1, 4),
    stages=st.integers(0, 2),
    degree=st.integers(1, 3),
    order=st.integers(1, 2),
    topo=st.sampled_from(["all", "local1", "local2", "custom"]),
    max_window=st.sampled_from([2, 10]),
    seed=st.integers(0, 2**16),
)
def test_exact_against_dense(io, work, stages, degree, order, topo, max_window, seed):
    rng = np.random.default_rng(seed)
    n = io + work
    topology = {
        "all": "all",
        "local1": {"local": 1},
        "local2": {"local": 2},
        "custom": _custom(n, rng),
    }[topo]
    most = {"all": n - 1, "local1": 2, "local2": 4}.get(topo) or max(
        len(v) for v in topology["custom"].values()
    )
    degree = min(degree, most, n - 1)
    program = compile_program(_spec(io, work, stages, degree, order, topology), steps=3)
    params = rng.normal(0, 1.0, program.n_params)
    words = rng.integers(0, 2**io, (2, 4))
    reference = reference_probs(program, params, words)
    # Teacher forcing onto a word of probability ~1e-18 divides by it: float64 rounding of the
    # state before the projection then decides the gradient, for any backend. Such sequences
    # are ill-conditioned, not a test of the MPS.
    targets = np.take_along_axis(reference, words[:, 1:, None], axis=2)
    assume(targets.min() > 1e-8)
    plan = prepare(program, BackendOptions(backend_options={"max_window": max_window}))
    theta = torch.tensor(params, requires_grad=True)
    result = plan.run(theta, torch.as_tensor(words))
    np.testing.assert_allclose(result.probs.detach().numpy(), reference, atol=1e-10)
    assert float(result.discarded.max()) < 1e-20
    weights = _loss_weights(result.probs.shape, seed)
    (grad,) = torch.autograd.grad((result.probs * weights).sum(), theta)
    theta_ref = torch.tensor(params, requires_grad=True)
    dense = dense_run_torch(program.dag, theta_ref, torch.as_tensor(words))
    (grad_ref,) = torch.autograd.grad((dense * weights).sum(), theta_ref)
    np.testing.assert_allclose(dense.detach().numpy(), reference, atol=1e-12)
    np.testing.assert_allclose(grad.numpy(), grad_ref.numpy(), atol=1e-9)


def test_ten_qubit_all_topology_with_gradients():
    rng = np.random.default_rng(1)
    program = compile_program(_spec(2, 8, 1, 2, 2, "all"), steps=2)
    params = rng.normal(0, 1.0, program.n_params)
    words = torch.as_tensor(rng.integers(0, 4, (2, 3)))
    theta = torch.tensor(params, requires_grad=True)
    result = prepare(program, BackendOptions()).run(theta, words)
    theta_ref = torch.tensor(params, requires_grad=True)
    dense = dense_run_torch(program.dag, theta_ref, words)
    np.testing.assert_allclose(result.probs.detach().numpy(), dense.detach().numpy(), atol=1e-10)
    (grad,) = torch.autograd.grad(result.probs[..., 0].sum(), theta)
    (grad_ref,) = torch.autograd.grad(dense[..., 0].sum(), theta_ref)
    np.testing.assert_allclose(grad.numpy(), grad_ref.numpy(), atol=1e-9)


def test_truncation_error_bounded_by_discarded_weight():
    """``max |p̃ - p| ≤ 2 Σ_steps≤t √(2 ε)`` (bound stated in ``qrnn_tn.backends.mps``)."""
    rng = np.random.default_rng(3)
    program = compile_program(_spec(2, 6, 1, 2, 2, {"local": 2}), steps=4)
    params = rng.normal(0, 1.5, program.n_params)
    words = rng.integers(0, 4, (3, 5))
    exact = reference_probs(program, params, words)
    for bond in (2, 3, 4):
        result = prepare(program, BackendOptions(backend_options={"max_bond": bond})).run(
            torch.tensor(params), torch.as_tensor(words)
        )
        assert float(result.discarded.max()) > 0
        error = np.abs(result.probs.numpy() - exact).max(axis=2)
        bound = 2 * np.cumsum(np.sqrt(2 * result.discarded.numpy()), axis=1)
        assert np.all(error <= bound + 1e-12), (bond, error, bound)


@pytest.mark.parametrize(
    "offset, words",
    [
        (0.0, [[0, 0, 0, 0]] * 2),
        (math.pi / 2, [[0, 1, 2, 3], [3, 3, 0, 0]]),
        (math.pi / 3, [[1] * 4]),
    ],
)
def test_gradients_finite_on_product_states(offset, words):
    """All parameters zero: every neuron is the same rotation, so the state stays a product."""
    spec = _spec(2, 4, 1, 2, 2, {"local": 1})
    spec["neuron"]["offset"] = offset
    program = compile_program(spec, steps=3)
    words = torch.tensor(words)
    for extra in ({}, {"max_bond": 2}, {"cutoff": 0.0}):
        theta = torch.zeros(program.n_params, dtype=torch.float64, requires_grad=True)
        result = prepare(program, BackendOptions(backend_options=extra)).run(theta, words)
        loss = -torch.log(result.target_prob.clamp_min(1e-30)).sum() + result.probs.sum()
        (grad,) = torch.autograd.grad(loss, theta)
        assert torch.isfinite(grad).all()


def test_product_state_gradient_equals_dense():
    program = compile_program(_spec(1, 3, 1, 2, 1, {"local": 1}), steps=2)
    words = torch.tensor([[0, 1, 1], [1, 0, 1]])
    theta = torch.zeros(program.n_params, dtype=torch.float64, requires_grad=True)
    result = prepare(program, BackendOptions(backend_options={"cutoff": 0.0})).run(theta, words)
    (grad,) = torch.autograd.grad(result.probs[..., 0].sum(), theta)
    theta_ref = torch.zeros(program.n_params, dtype=torch.float64, requires_grad=True)
    dense = dense_run_torch(program.dag, theta_ref, words)
    (grad_ref,) = torch.autograd.grad(dense[..., 0].sum(), theta_ref)
    np.testing.assert_allclose(grad.numpy(), grad_ref.numpy(), atol=1e-9)


def test_split_backward_matches_finite_differences():
    torch.manual_seed(0)
    for m, n, bond in [(6, 9, None), (9, 6, None), (6, 9, 3), (6, 9, 6)]:
        mat = torch.randn(2, m, n, dtype=torch.float64, requires_grad=True)
        weight = torch.randn(2, m, m, dtype=torch.float64)

        def gauge_invariant(x, bond=bond, weight=weight):
            u, c, _ = split(x, bond, 0.0)
            return ((u @ c) ** 2).sum(dim=1) @ torch.arange(x.shape[2], dtype=x.dtype) + (
                (u @ u.mT) * weight
            ).sum()

        assert torch.autograd.gradcheck(gauge_invariant, (mat,))


def test_split_backward_finite_on_degenerate_spectrum():
    mat = torch.zeros(2, 4, 4, dtype=torch.float64)
    mat[:, 0, 0] = mat[:, 1, 1] = 1.0  # two equal singular values, two zeros
    mat.requires_grad_(True)
    u, c, _ = split(mat, None, 0.0)
    (grad,) = torch.autograd.grad(((u @ c) ** 3).sum() + (u @ u.mT)[:, 0, 0].sum(), mat)
    assert torch.isfinite(grad).all()


def test_sample_mode_and_checkpointing_agree():
    rng = np.random.default_rng(5)
    program = compile_program(_spec(2, 4, 1, 2, 2, {"local": 1}), steps=4)
    params = torch.tensor(rng.normal(0, 1.0, program.n_params), requires_grad=True)
    words = torch.zeros(3, 5, dtype=torch.long)
    results = []
    levels = [(0, 0), (1, 0), (3, 0), (1, 2), (2, 4)]  # (steps per block, per outer block)
    for inner, outer in levels:
        extra = {"checkpoint_steps": inner, "checkpoint_outer": outer}
        plan = prepare(program, BackendOptions(backend_options=extra))
        gen = torch.Generator().manual_seed(7)
        result = plan.run(params, words, mode="sample", generator=gen)
        (grad,) = torch.autograd.grad(result.log_norm.sum(), params)
        results.append((result.words, result.probs.detach(), grad))
    for words_k, probs_k, grad_k in results[1:]:
        assert torch.equal(words_k, results[0][0])
        torch.testing.assert_close(probs_k, results[0][1], rtol=0, atol=1e-12)
        torch.testing.assert_close(grad_k, results[0][2], rtol=0, atol=1e-10)
    reference = reference_probs(program, params.detach().numpy(), results[0][0].numpy())
    np.testing.assert_allclose(results[0][1].numpy(), reference, atol=1e-10)


def test_checkpoint_options_are_checked():
    program = compile_program(_spec(2, 4, 1, 2, 2, {"local": 1}), steps=40)
    with pytest.raises(BackendError, match="multiple of checkpoint_steps"):
        prepare(
            program, BackendOptions(backend_options={"checkpoint_steps": 2, "checkpoint_outer": 3})
        )
    for bad in ("x", True, -1):
        with pytest.raises(BackendError, match="checkpoint_outer=.*an integer >= 0 or 'auto'"):
            prepare(program, BackendOptions(backend_options={"checkpoint_outer": bad}))


def test_auto_checkpoint_outer_recomputes_least_within_the_budget():
    """One level when it fits; else the longest outer block whose predicted backward memory
    fits (bigger blocks would not, smaller ones recompute more); else ⌈√T⌉ (least memory)."""
    program = compile_program(_spec(2, 12, 1, 2, 2, {"local": 1}), steps=40)

    def plan(budget, **extra):
        options = BackendOptions(batch_size=8, memory_budget=budget, backend_options=extra)
        return prepare(program, options)

    one_level = plan(None).cost.peak_bytes_backward
    assert plan(None).checkpoint_outer == 0
    assert plan(one_level).checkpoint_outer == 0
    chosen = plan(one_level - 1)
    assert chosen.checkpoint_steps == 1
    assert 7 <= chosen.checkpoint_outer < 40
    assert chosen.cost.peak_bytes_backward <= one_level - 1
    longer = plan(None, checkpoint_outer=chosen.checkpoint_outer + 1)
    assert longer.cost.peak_bytes_backward > one_level - 1
    assert plan(1).checkpoint_outer == 7  # nothing fits: ⌈√40⌉


@pytest.mark.parametrize("bad", [-1, 1.5, "x", True])
def test_checkpoint_steps_is_checked(bad):
    program = compile_program(_spec(2, 4, 1, 2, 2, {"local": 1}), steps=4)
    with pytest.raises(BackendError, match="checkpoint_steps=.*expected an integer >= 0"):
        prepare(program, BackendOptions(backend_options={"checkpoint_steps": bad}))
    plan = prepare(program, BackendOptions(backend_options={"checkpoint_steps": np.int64(2)}))
    assert plan.checkpoint_steps == 2 and type(plan.checkpoint_steps) is int


def test_wide_local_cell_runs():
    """64 lanes, r = 1, bond 4, batch 2: 100 steps forward, 3 steps forward+backward."""
    rng = np.random.default_rng(0)
    plan_for = {}
    for steps in (100, 3):
        program = compile_program(_spec(2, 62, 1, 2, 2, {"local": 1}), steps=steps)
        plan_for[steps] = prepare(program, BackendOptions(backend_options={"max_bond": 4}))
    params = torch.tensor(rng.normal(0, 1.0, plan_for[100].program.n_params))
    words = torch.as_tensor(rng.integers(0, 4, (2, 101)))
    with torch.no_grad():
        result = plan_for[100].run(params, words)
    assert result.discarded.shape == (2, 100) and float(result.discarded.sum()) > 0
    torch.testing.assert_close(result.probs.sum(-1), torch.ones(2, 100, dtype=torch.float64))
    theta = params.clone().requires_grad_(True)
    plan_for[3].run(theta, words[:, :4]).log_norm.sum().backward()
    assert torch.isfinite(theta.grad).all()


def test_cost_and_registration():
    program = compile_program(_spec(2, 8, 1, 2, 2, {"local": 1}), steps=5)
    assert "mps" in backend_names()
    exact = prepare(program, BackendOptions(batch_size=4)).cost
    capped = prepare(program, BackendOptions(batch_size=4, backend_options={"max_bond": 4})).cost
    assert exact.exact and not capped.exact
    assert capped.flops < exact.flops
    assert 0 < capped.peak_bytes_forward <= capped.peak_bytes_backward
    assert prepare(program, BackendOptions(backend_options={"max_bond": 32})).cost.exact
    wide = compile_program(_spec(2, 98, 1, 2, 2, {"local": 1}), steps=10)
    assert not prepare(wide, BackendOptions(backend_options={"max_bond": 32})).cost.exact
    assert "mps" in prepare(wide, BackendOptions()).cost.describe()


@pytest.mark.parametrize(("inner", "outer", "steps_run"), [(1, 0, 7), (2, 0, 6), (1, 2, 8)])
def test_the_last_checkpoint_block_is_not_recomputed(monkeypatch, inner, outer, steps_run):
    """4 steps: a forward runs every step once; the backward recomputes every block whose
    graph the forward did not keep, i.e. all but the last at each level. Steps run are
    counted by the neurons applied (the same number every step)."""
    program = compile_program(_spec(2, 4, 1, 2, 2, {"local": 1}), steps=4)
    params = torch.tensor(np.random.default_rng(0).normal(0, 1, program.n_params))
    params.requires_grad_(True)
    plan = prepare(
        program,
        BackendOptions(backend_options={"checkpoint_steps": inner, "checkpoint_outer": outer}),
    )
    neurons = []
    real_neuron = BlockMPS.neuron
    monkeypatch.setattr(
        BlockMPS, "neuron", lambda *a, **k: neurons.append(1) or real_neuron(*a, **k)
    )
    words = torch.zeros(2, 5, dtype=torch.long)
    with torch.no_grad():
        plan.run(params, words)
    per_step = len(neurons) // 4
    assert per_step > 0 and len(neurons) == 4 * per_step
    neurons.clear()
    plan.run(params, words).log_norm.sum().backward()
    assert len(neurons) == steps_run * per_step


def test_a_neuron_window_over_the_budget_is_refused_before_any_table():
    """41 lanes all-to-all: each neuron's window spans every lane (2^41 amplitudes per
    sequence); the plan refuses at once instead of allocating its branch table."""
    spec = {"cell": {"io": 1, "workspace": 40}, "neuron": {"degree": 1}}
    program = compile_program(spec, steps=1)
    with pytest.raises(BackendError, match="window of 41 lanes.*local topology"):
        prepare(program, BackendOptions(memory_budget=2**30))

"""The statevector backend against independent computations.

Values: ``tests/reference.dense_run`` on the literal circuit (ancillas, controlled rotations,
postselection) of random cells. Gradients: finite differences (``gradcheck``) and plain autograd
over the forward kernels. Sampling: the empirical distribution of sampled tokens.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.statevector import baseline_run
from compiler.lower import decompose_neurons
from compiler.spec import load_spec
from compiler.unroll import compile_program
from qrnn_tn.backends import BackendError, BackendOptions, backend_names, get_backend
from qrnn_tn.backends.statevector import prepare
from tests.reference import dense_log_norm, dense_run


def _plan(program, dtype=torch.float64, batch=1, budget=None, **extra):
    options = BackendOptions(
        dtype=dtype, batch_size=batch, memory_budget=budget, backend_options=extra
    )
    return prepare(program, options)


def _case(spec: dict, steps: int, batch: int, seed: int, scale: float = 1.0):
    program = compile_program(spec, steps=steps)
    rng = np.random.default_rng(seed)
    params = torch.tensor(rng.normal(0.0, scale, program.n_params))
    words = torch.tensor(rng.integers(0, 2**program.io, size=(batch, steps + 1)))
    return program, params, words


@st.composite
def cells(draw):
    """Random cells whose literal circuit (lanes + ancillas) has at most 10 qubits."""
    order = draw(st.integers(1, 3))
    io = draw(st.integers(1, 3))
    workspace = draw(st.integers(1, 10 - order - io))
    n = io + workspace
    kind = draw(st.sampled_from(["all", "local", "custom"]))
    if kind == "all":
        topology = "all"
    elif kind == "local":
        topology = {"local": draw(st.integers(1, 3))}
    else:
        lanes = st.sets(st.sampled_from(range(n)), max_size=4)
        topology = {"custom": {str(g): sorted(draw(lanes) - {g}) for g in range(n)}}
    spec = {
        "cell": {"io": io, "workspace": workspace, "stages": draw(st.integers(0, 2))},
        "neuron": {"degree": 1, "order": order, "topology": topology},
    }
    max_sources = max(len(s) for s in map(load_spec(spec).sources_of, range(n)))
    spec["neuron"]["degree"] = draw(st.integers(1, max(1, min(3, max_sources))))
    return spec, draw(st.integers(1, 3)), draw(st.integers(0, 2**31))


@settings(max_examples=15, deadline=None)
@given(cells())
def test_matches_dense_reference_on_literal_circuit(case):
    # Parameters of trained size: with large angles the literal circuit's nested postselections
    # succeed so rarely that the reference itself loses digits (the fused check below covers
    # large angles against the reference's own neuron operators).
    spec, steps, seed = case
    program, params, words = _case(spec, steps, batch=2, seed=seed, scale=0.5)
    literal = decompose_neurons(program.dag)
    result = _plan(program, batch=2, fuse=True).run(params, words)
    complex_result = _plan(program, dtype=torch.complex128, batch=2).run(params, words)
    for b in range(2):
        expect = dense_run(literal, params.numpy(), words[b].tolist())
        np.testing.assert_allclose(result.probs[b].numpy(), expect, rtol=0, atol=1e-10)
    np.testing.assert_allclose(complex_result.probs, result.probs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(complex_result.log_norm, result.log_norm, rtol=1e-12)
    expect_target = result.probs.gather(2, words[:, 1:, None]).squeeze(2)
    assert torch.equal(result.target_prob, expect_target)
    wild = params * 4
    probs = _plan(program, batch=2, fuse=False).run(wild, words).probs
    for b in range(2):
        expect = dense_run(program.dag, wild.numpy(), words[b].tolist())
        np.testing.assert_allclose(probs[b].numpy(), expect, rtol=0, atol=1e-10)


def test_literal_program_with_postselection_runs():
    spec = {"cell": {"io": 2, "workspace": 2, "stages": 1}, "neuron": {"degree": 2, "order": 2}}
    program, params, words = _case(spec, steps=3, batch=3, seed=1)
    literal = replace(program, dag=decompose_neurons(program.dag))
    fused = _plan(program, batch=3).run(params, words)
    expanded = _plan(literal, batch=3).run(params, words)
    np.testing.assert_allclose(expanded.probs, fused.probs, rtol=0, atol=1e-12)


def test_log_norm_is_the_log_probability_of_the_postselected_history():
    # Order 1: the literal circuit succeeds with probability c² + s² on every branch, so its
    # postselections remove exactly the norms the fused neurons remove.
    spec = {"cell": {"io": 2, "workspace": 2, "stages": 1}, "neuron": {"degree": 2, "order": 1}}
    program, params, words = _case(spec, steps=3, batch=2, seed=4)
    literal = decompose_neurons(program.dag)
    result = _plan(program, batch=2).run(params, words)
    expanded = _plan(replace(program, dag=literal), batch=2).run(params, words)
    for b in range(2):
        expect = dense_log_norm(literal, params.numpy(), words[b].tolist())
        np.testing.assert_allclose(result.log_norm[b].item(), expect, rtol=1e-10)
        np.testing.assert_allclose(expanded.log_norm[b].item(), expect, rtol=1e-10)


SMALL = [
    {"cell": {"io": 2, "workspace": 2, "stages": 1}, "neuron": {"degree": 2, "order": 2}},
    {
        "cell": {"io": 1, "workspace": 3, "stages": 2},
        "neuron": {"degree": 2, "order": 1, "topology": {"local": 1}},
    },
]


@pytest.mark.parametrize("spec", SMALL)
@pytest.mark.parametrize(
    "extra", [{"fuse": False}, {"fuse": True}, {"cache_tables": False, "segment": 2}]
)
def test_gradcheck(spec, extra):
    program, params, words = _case(spec, steps=3, batch=2, seed=2)
    plan = _plan(program, batch=2, **extra)

    def outputs(p):
        result = plan.run(p, words)
        return result.probs, result.log_norm

    assert torch.autograd.gradcheck(outputs, params.clone().requires_grad_())


def _gradients(plan, params, words, weights, mode="teacher", seed=0):
    p = params.clone().requires_grad_()
    generator = torch.Generator().manual_seed(seed)
    result = plan.run(p, words, mode=mode, generator=generator)
    loss = (result.probs * weights[0]).sum() + (result.log_norm * weights[1]).sum()
    loss = loss + result.target_prob.log().sum()
    (grad,) = torch.autograd.grad(loss, p)
    return grad, result


@pytest.mark.parametrize(
    "dtype, extra, mode",
    [
        (torch.float64, {"fuse": False}, "teacher"),
        (torch.float64, {"fuse": True}, "teacher"),
        (torch.float64, {"segment": 1, "fuse": False}, "teacher"),
        (torch.float64, {"segment": 10_000, "cache_tables": False, "fuse": True}, "teacher"),
        (torch.complex128, {}, "teacher"),
        (torch.float64, {"fuse": True}, "sample"),
    ],
)
def test_custom_backward_equals_plain_autograd(dtype, extra, mode):
    spec = {"cell": {"io": 2, "workspace": 4, "stages": 2}, "neuron": {"degree": 3, "order": 2}}
    program, params, words = _case(spec, steps=6, batch=3, seed=3, scale=0.7)
    generator = torch.Generator().manual_seed(5)
    weights = (
        torch.randn(3, 6, 4, dtype=torch.float64, generator=generator),
        torch.randn(3, dtype=torch.float64, generator=generator),
    )
    custom = _plan(program, dtype=dtype, batch=3, **extra)
    plain = _plan(program, dtype=dtype, batch=3, gradient="autograd")
    got, got_run = _gradients(custom, params, words, weights, mode)
    expect, expect_run = _gradients(plain, params, words, weights, mode)
    assert torch.equal(got_run.words, expect_run.words)
    np.testing.assert_allclose(got.numpy(), expect.numpy(), rtol=0, atol=1e-8)
    assert got.abs().max() > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_thousand_steps_stay_finite_and_normalised(dtype):
    spec = {"cell": {"io": 2, "workspace": 3, "stages": 1}, "neuron": {"degree": 2, "order": 3}}
    program, params, words = _case(spec, steps=1000, batch=2, seed=6)
    result = _plan(program, dtype=dtype, batch=2).run(params, words)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.isfinite(result.probs).all() and (result.probs >= 0).all()
    np.testing.assert_allclose(result.probs.sum(-1).double(), 1.0, atol=tol)
    assert torch.isfinite(result.log_norm).all()
    assert (result.target_prob > 0).all()


def test_float32_follows_float64_over_a_long_sequence():
    spec = {"cell": {"io": 2, "workspace": 3, "stages": 1}, "neuron": {"degree": 2, "order": 2}}
    program, params, words = _case(spec, steps=300, batch=1, seed=7)
    exact = _plan(program).run(params, words).probs
    single = _plan(program, dtype=torch.float32).run(params, words).probs
    np.testing.assert_allclose(single.double(), exact, rtol=0, atol=1e-4)


def test_batch_equals_loop_over_sequences():
    spec = {"cell": {"io": 3, "workspace": 3, "stages": 1}, "neuron": {"degree": 2}}
    program, params, words = _case(spec, steps=5, batch=4, seed=8)
    batch = _plan(program, batch=4).run(params, words)
    for b in range(4):
        single = _plan(program).run(params, words[b : b + 1])
        np.testing.assert_allclose(batch.probs[b], single.probs[0], rtol=0, atol=1e-14)
        np.testing.assert_allclose(batch.log_norm[b], single.log_norm[0], rtol=1e-13)


def test_sampling_is_reproducible_and_consistent():
    spec = {"cell": {"io": 2, "workspace": 2, "stages": 1}, "neuron": {"degree": 2}}
    program, params, _ = _case(spec, steps=4, batch=1, seed=9, scale=1.5)
    plan = _plan(program, batch=8)
    prompt = torch.tensor([[1]] * 8)

    def sample(seed):
        return plan.run(
            params, prompt, mode="sample", generator=torch.Generator().manual_seed(seed)
        )

    first, again, other = sample(11), sample(11), sample(12)
    assert torch.equal(first.words, again.words) and torch.equal(first.probs, again.probs)
    assert not torch.equal(first.words, other.words)
    assert (first.words[:, 0] == 1).all()
    taken = first.probs.gather(2, first.words[:, 1:, None]).squeeze(2)
    assert torch.equal(first.target_prob, taken) and (taken > 0).all()
    teacher = plan.run(params, first.words)
    np.testing.assert_allclose(teacher.probs, first.probs, rtol=0, atol=1e-14)
    np.testing.assert_allclose(teacher.log_norm, first.log_norm, rtol=1e-13)


def test_sampled_tokens_follow_the_distribution():
    spec = {"cell": {"io": 2, "workspace": 2, "stages": 1}, "neuron": {"degree": 2}}
    program, params, _ = _case(spec, steps=1, batch=1, seed=10, scale=1.5)
    batch = 20_000
    plan = _plan(program, batch=batch)
    prompt = torch.full((batch, 1), 2)
    result = plan.run(params, prompt, mode="sample", generator=torch.Generator().manual_seed(0))
    p = result.probs[0, 0].numpy()
    counts = np.bincount(result.words[:, 1].numpy(), minlength=4)
    sigma = np.sqrt(batch * p * (1 - p))
    assert np.all(np.abs(counts - batch * p) < 5 * sigma + 1)


def test_budget_is_checked_before_allocating():
    spec = {"cell": {"io": 2, "workspace": 2}, "neuron": {"degree": 2}}
    program, params, words = _case(spec, steps=3, batch=1, seed=0)
    plan = _plan(program, budget=1000)
    with pytest.raises(BackendError, match=r"needs about .* budget is 1000 B"):
        plan.run(params, words)
    wide = compile_program(
        {"cell": {"io": 1, "workspace": 35}, "neuron": {"degree": 1, "topology": {"local": 1}}}
    )
    plan = _plan(wide)
    assert plan.cost.peak_bytes_forward > 2**36 * 8
    with pytest.raises(BackendError, match="budget"):
        plan.run(torch.zeros(wide.n_params), torch.zeros(1, 2, dtype=torch.int64))


def test_cost_is_predicted_without_running():
    spec = {"cell": {"io": 2, "workspace": 8, "stages": 2}, "neuron": {"degree": 2}}
    program = compile_program(spec, steps=20)
    one = _plan(program, dtype=torch.float32, fuse=False).cost
    fifty = _plan(program, batch=50, fuse=False).cost
    assert one.backend == "statevector" and one.exact
    assert one.peak_bytes_backward > one.peak_bytes_forward > 2**10 * 4
    assert 20 * one.flops < fifty.flops < 50 * one.flops
    assert fifty.width == pytest.approx(10 + np.log2(50))
    assert "checkpoint" in one.describe() and "statevector" in one.describe()
    long = _plan(compile_program(spec, steps=200), dtype=torch.float32, fuse=False).cost
    assert long.peak_bytes_backward < 10 * one.peak_bytes_backward
    fused = _plan(program, batch=50, fuse=True).cost.describe()
    assert int(re.search(r"\((\d+) distinct fused blocks\)", fused).group(1)) > 0


def test_rejects_bad_inputs():
    spec = {"cell": {"io": 2, "workspace": 2}, "neuron": {"degree": 2}}
    program, params, words = _case(spec, steps=3, batch=2, seed=0)
    plan = _plan(program, batch=2)
    with pytest.raises(BackendError, match=r"shape \[batch, 4\]"):
        plan.run(params, words[:, :3])
    with pytest.raises(BackendError, match="token 4 is out of range"):
        plan.run(params, torch.full((2, 4), 4))
    with pytest.raises(BackendError, match="integer"):
        plan.run(params, words.double())
    with pytest.raises(BackendError, match=f"shape \\[{program.n_params}\\]"):
        plan.run(params[:-1], words)
    with pytest.raises(BackendError, match="mode"):
        plan.run(params, words, mode="greedy")
    with pytest.raises(BackendError, match="dtype"):
        _plan(program, dtype=torch.int32)
    with pytest.raises(BackendError, match="gradient"):
        _plan(program, gradient="numerical")


def test_is_registered():
    assert "statevector" in backend_names()
    program = compile_program({"cell": {"io": 1, "workspace": 1}, "neuron": {"degree": 1}})
    plan = get_backend("statevector")(program, BackendOptions())
    assert plan.cost.backend == "statevector"


def test_benchmark_baseline_computes_the_same():
    spec = {"cell": {"io": 2, "workspace": 3, "stages": 2}, "neuron": {"degree": 2}}
    program, params, words = _case(spec, steps=4, batch=3, seed=12, scale=0.7)
    theta = params.clone().requires_grad_()
    expect = baseline_run(program, theta, words)
    (expect_grad,) = torch.autograd.grad(expect.log().sum(), theta)
    theta = params.clone().requires_grad_()
    got = _plan(program, batch=3).run(theta, words).probs
    (grad,) = torch.autograd.grad(got.log().sum(), theta)
    np.testing.assert_allclose(got.detach(), expect.detach(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(grad, expect_grad, rtol=0, atol=1e-9)

"""The tensor-network backend against independent simulations.

Ground truth: ``tests/reference.dense_run`` (dense numpy, operator by operator) for values, its
central finite differences for gradients, and the statevector backend where it is installed.
For the 40-qubit cell no dense check is possible; there the independent computation is a
quimb network contracted by quimb with its own greedy path (same leaves, different library,
order and executor), plus normalisation.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.unroll import compile_program
from qrnn_tn.backends.base import BackendError, BackendOptions, backend_names
from qrnn_tn.backends.tensornet import prepare
from qrnn_tn.backends.tensornet.cost import TENSOR_BYTES
from qrnn_tn.backends.tensornet.search import symbols
from qrnn_tn.backends.tensornet.values import LeafValues
from tests.reference import dense_run

HAS_STATEVECTOR = "statevector" in backend_names()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small contractions run fastest on one thread (and stay fast on a busy CI machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _options(tmp_path=None, dtype=torch.float64, batch=1, **extra) -> BackendOptions:
    extra.setdefault("cache_dir", tmp_path)
    extra.setdefault("search_time", 0.0)
    budget = extra.pop("memory_budget", None)
    return BackendOptions(
        dtype=dtype, batch_size=batch, memory_budget=budget, backend_options=extra
    )


def _case(spec: dict, steps: int, batch: int, seed: int, scale: float = 1.0):
    program = compile_program(spec, steps=steps)
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, scale, program.n_params)
    words = rng.integers(0, 2**program.io, size=(batch, steps + 1))
    return program, theta, words


@st.composite
def cells(draw):
    io = draw(st.integers(1, 3))
    workspace = draw(st.integers(1, 6 - io))
    n = io + workspace
    kind = draw(st.sampled_from(["all", "local", "custom"]))
    if kind == "all":
        topology = "all"
    elif kind == "local":
        topology = {"local": draw(st.integers(1, 2))}
    else:
        topology = {
            "custom": {
                str(g): sorted(
                    draw(st.sets(st.sampled_from([q for q in range(n) if q != g]), max_size=3))
                )
                for g in range(n)
            }
        }
    spec = {
        "cell": {"io": io, "workspace": workspace, "stages": draw(st.integers(0, 2))},
        "neuron": {"order": draw(st.integers(1, 3)), "topology": topology},
    }
    program = compile_program(spec)
    max_sources = max(len(op.sources) for op in program.ops if op.kind == "neuron")
    spec["neuron"]["degree"] = draw(st.integers(1, max(1, min(3, max_sources))))
    return spec


@settings(max_examples=12, deadline=None)
@given(spec=cells(), steps=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_matches_dense_reference_float64(spec, steps, seed):
    program, theta, words = _case(spec, steps, batch=2, seed=seed)
    plan = prepare(program, _options(batch=2, cache_dir=None))
    probs = plan.run(torch.tensor(theta), torch.tensor(words)).probs
    for b in range(2):
        expect = dense_run(program.dag, theta, words[b])
        np.testing.assert_allclose(probs[b].numpy(), expect, atol=1e-10, rtol=0)


@settings(max_examples=5, deadline=None)
@given(spec=cells(), seed=st.integers(0, 2**16))
def test_matches_dense_reference_float32(spec, seed):
    program, theta, words = _case(spec, 2, batch=2, seed=seed)
    plan = prepare(program, _options(dtype=torch.float32, batch=2, cache_dir=None))
    probs = plan.run(torch.tensor(theta, dtype=torch.float32), torch.tensor(words)).probs
    assert probs.dtype == torch.float32
    for b in range(2):
        expect = dense_run(program.dag, theta, words[b])
        np.testing.assert_allclose(probs[b].numpy(), expect, atol=1e-5, rtol=0)


@pytest.mark.parametrize("form", ["hyper", "literal"])
def test_neuron_forms_agree(form):
    spec = {"cell": {"io": 2, "workspace": 3, "stages": 1}, "neuron": {"degree": 2, "order": 2}}
    program, theta, words = _case(spec, 2, batch=3, seed=3)
    plan = prepare(program, _options(batch=3, cache_dir=None, neuron_form=form))
    probs = plan.run(torch.tensor(theta), torch.tensor(words)).probs
    for b in range(3):
        np.testing.assert_allclose(probs[b].numpy(), dense_run(program.dag, theta, words[b]))


def test_gradients_match_finite_differences():
    spec = {
        "cell": {"io": 2, "workspace": 3, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
    }
    program, theta, words = _case(spec, 3, batch=1, seed=7)
    weights = np.random.default_rng(1).normal(size=(3, 4))
    plan = prepare(program, _options(cache_dir=None))
    params = torch.tensor(theta, requires_grad=True)
    probs = plan.run(params, torch.tensor(words)).probs[0]
    (probs * torch.tensor(weights)).sum().backward()

    def loss(theta):
        return float((dense_run(program.dag, theta, words[0]) * weights).sum())

    eps = 1e-6
    for i in range(program.n_params):
        step = np.zeros(program.n_params)
        step[i] = eps
        numeric = (loss(theta + step) - loss(theta - step)) / (2 * eps)
        assert float(params.grad[i]) == pytest.approx(numeric, rel=1e-6, abs=1e-8)
    h = 1e-6
    for slot in np.random.default_rng(2).choice(program.n_params, 6, replace=False):
        up, down = theta.copy(), theta.copy()
        up[slot] += h
        down[slot] -= h
        diff = dense_run(program.dag, up, words[0]) - dense_run(program.dag, down, words[0])
        fd = float((diff * weights).sum() / (2 * h))
        assert abs(params.grad[slot].item() - fd) < 1e-6 * max(1.0, abs(fd))


@pytest.mark.skipif(not HAS_STATEVECTOR, reason="statevector backend not registered")
def test_agrees_with_statevector_values_and_gradients():
    from qrnn_tn.backends.base import get_backend

    spec = {"cell": {"io": 2, "workspace": 4, "stages": 2}, "neuron": {"degree": 2, "order": 2}}
    program, theta, words = _case(spec, 3, batch=2, seed=11)
    results = []
    options = {
        "tensornet": _options(batch=2, cache_dir=None),
        "statevector": BackendOptions(batch_size=2),
    }
    for name in ("tensornet", "statevector"):
        plan = get_backend(name)(program, options[name])
        params = torch.tensor(theta, requires_grad=True)
        probs = plan.run(params, torch.tensor(words)).probs
        torch.log(probs).sum().backward()
        results.append((probs.detach(), params.grad))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-10, rtol=0)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-8, rtol=1e-8)


def test_second_run_of_same_structure_does_no_search(tmp_path):
    spec = {
        "cell": {"io": 1, "workspace": 5, "stages": 1},
        "neuron": {"degree": 1, "order": 2, "topology": {"local": 1}},
    }
    program, theta, words = _case(spec, 3, batch=2, seed=0)
    plan = prepare(program, _options(tmp_path, batch=2))
    first = plan.run(torch.tensor(theta), torch.tensor(words)).probs
    assert plan.paths.searches > 0
    assert list(tmp_path.glob("*.json"))
    again = prepare(program, _options(tmp_path, batch=2))  # a new plan: its own, empty memory
    other = np.random.default_rng(5).normal(size=program.n_params)
    again.run(torch.tensor(other), torch.tensor(words))
    second = again.run(torch.tensor(theta), torch.tensor(words)).probs
    assert again.paths.searches == 0
    torch.testing.assert_close(first, second)


#: Bytes: below what the 3-step, batch-2 plan of ``_sliced_and_unsliced`` needs unsliced.
SLICING_BUDGET = 30_000


def _sliced_and_unsliced(tmp_path):
    spec = {
        "cell": {"io": 2, "workspace": 6, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
    }
    program, theta, words = _case(spec, 3, batch=2, seed=4)
    out = []
    for budget in (None, SLICING_BUDGET):
        plan = prepare(program, _options(tmp_path, batch=2, memory_budget=budget))
        params = torch.tensor(theta, requires_grad=True)
        probs = plan.run(params, torch.tensor(words)).probs
        torch.log(probs).sum().backward()
        out.append((plan, probs.detach(), params.grad))
    return out


def test_sliced_equals_unsliced(tmp_path):
    (full, p_full, g_full), (sliced, p_sliced, g_sliced) = _sliced_and_unsliced(tmp_path)
    assert max(full.cost.details.slices_per_step) == 1
    assert max(sliced.cost.details.slices_per_step) > 1
    # beyond the budget for elements: the leaves and per-tensor bookkeeping (not sliced)
    assert sliced.cost.peak_bytes_backward <= SLICING_BUDGET + 2 * full.cost.peak_bytes_forward
    torch.testing.assert_close(p_full, p_sliced, atol=1e-12, rtol=0)
    torch.testing.assert_close(g_full, g_sliced, atol=1e-10, rtol=1e-10)


def test_memory_guard_raises_before_allocating():
    spec = {"cell": {"io": 2, "workspace": 8}, "neuron": {"degree": 2, "topology": {"local": 1}}}
    program = compile_program(spec, steps=3)
    with pytest.raises(BackendError, match="fewer steps.*smaller batch.*slicing.*backend"):
        prepare(program, _options(cache_dir=None, memory_budget=2000, max_slices=4))


def test_cost_is_reported_before_running():
    spec = {"cell": {"io": 2, "workspace": 4}, "neuron": {"degree": 2, "topology": {"local": 1}}}
    cost = prepare(compile_program(spec, steps=2), _options(cache_dir=None)).cost
    assert cost.backend == "tensornet" and cost.exact
    assert cost.width >= 1 and cost.flops > 0
    assert 0 < cost.peak_bytes_forward <= cost.peak_bytes_backward
    assert "tensornet" in cost.describe()
    assert "tensornet" in backend_names()


def test_sample_mode_draws_valid_words():
    spec = {"cell": {"io": 2, "workspace": 3}, "neuron": {"degree": 1, "order": 1}}
    program, theta, _ = _case(spec, 4, batch=3, seed=9)
    plan = prepare(program, _options(batch=3, cache_dir=None))
    gen = torch.Generator().manual_seed(0)
    res = plan.run(
        torch.tensor(theta), torch.zeros(3, 1, dtype=torch.long), mode="sample", generator=gen
    )
    assert res.words.shape == (3, 5) and int(res.words.max()) < 4
    for b in range(3):
        expect = dense_run(program.dag, theta, res.words[b].numpy())
        np.testing.assert_allclose(res.probs[b].numpy(), expect, atol=1e-10)


def test_many_neurons_do_not_underflow_float32():
    spec = {
        "cell": {"io": 1, "workspace": 23, "stages": 1},
        "neuron": {"degree": 1, "order": 3, "topology": {"local": 1}},
    }
    program, theta, words = _case(spec, 2, batch=2, seed=1, scale=0.1)
    plan = prepare(program, _options(dtype=torch.float32, batch=2, cache_dir=None))
    res = plan.run(torch.tensor(theta, dtype=torch.float32), torch.tensor(words))
    assert torch.isfinite(res.probs).all() and torch.isfinite(res.log_norm).all()
    assert res.log_norm.max() < -100  # far below float32's smallest normal, yet represented
    torch.testing.assert_close(res.probs.sum(-1), torch.ones(2, 2))


def _quimb_probs(plan, theta, words, step):
    """Readout ``step`` contracted by quimb with its own greedy path (independent executor)."""
    import quimb.tensor as qtn

    batch_plan = plan.batch_plan(words.shape[0])
    net = batch_plan.networks.networks[step]
    values = LeafValues(plan.program, torch.tensor(theta), torch.tensor(words))
    values.prepare_neurons(batch_plan.networks.neurons)
    inputs, output, _ = symbols(net)
    tensors = [
        qtn.Tensor(values.value(leaf).numpy(), inds=inds)
        for leaf, inds in zip(net.leaves, inputs, strict=True)
    ]
    tn = qtn.TensorNetwork(tensors)
    out = tn.contract(output_inds=output, optimize="greedy", strip_exponent=True)
    mantissa = out[0].data if isinstance(out, tuple) else out.data
    flat = np.asarray(mantissa).reshape(words.shape[0], -1)
    return flat / flat.sum(1, keepdims=True)


def test_local_cell_matches_reference_at_ten_qubits():
    spec = {
        "cell": {"io": 2, "workspace": 8, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
    }
    program, theta, words = _case(spec, 2, batch=1, seed=5)
    plan = prepare(program, _options(cache_dir=None))
    probs = plan.run(torch.tensor(theta), torch.tensor(words)).probs[0].numpy()
    np.testing.assert_allclose(probs, dense_run(program.dag, theta, words[0]), atol=1e-10)


def test_wide_local_cell_forty_qubits():
    spec = {
        "cell": {"io": 2, "workspace": 38, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
    }
    program, theta, words = _case(spec, 2, batch=2, seed=6, scale=0.5)
    plan = prepare(program, _options(batch=2, cache_dir=None))
    probs = plan.run(torch.tensor(theta), torch.tensor(words)).probs.numpy()
    assert np.all(probs >= -1e-12)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-12)
    for step in range(2):
        np.testing.assert_allclose(
            probs[:, step], _quimb_probs(plan, theta, words, step), atol=1e-10
        )


def test_segment_checkpoints_give_exact_gradients_and_lean_backward():
    """Segmented checkpoints (kept boundaries, recomputed segments) match a plain autograd run."""
    spec = {
        "cell": {"io": 2, "workspace": 6, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
    }
    program, theta, words = _case(spec, 2, batch=2, seed=5)
    words = torch.tensor(words)
    results = []
    for checkpointed in (True, False):
        plan = prepare(program, _options(cache_dir=None, checkpoint=checkpointed))
        params = torch.tensor(theta, requires_grad=True)
        probs = plan.run(params, words).probs
        (probs * torch.arange(probs.numel()).reshape(probs.shape)).sum().backward()
        results.append((plan, probs.detach(), params.grad))
    (plan, p_seg, g_seg), (_, p_plain, g_plain) = results
    assert max(len(c.segments) for c in plan.batch_plan(2).contractions) > 1
    torch.testing.assert_close(p_seg, p_plain, atol=1e-12, rtol=0)
    torch.testing.assert_close(g_seg, g_plain, atol=1e-10, rtol=1e-10)
    tree = plan.batch_plan(2).contractions[-1].tree
    # Predicted backward memory: far below every intermediate of the tree kept at once.
    bookkeeping = (
        TENSOR_BYTES
        * 2
        * (
            len(plan.batch_plan(2).networks.networks[-1].leaves)
            + sum(len(c.steps) for c in plan.batch_plan(2).contractions)
        )
    )
    leaves = sum(math.prod(int(tree.size_dict[ix]) for ix in inputs) for inputs in tree.inputs)
    # (the leaves are held, and built, for the forward and again for the backward)
    assert plan.cost.peak_bytes_backward < (tree.total_write() + 4 * leaves) * 8 + bookkeeping


def test_memory_guard_message_names_a_sane_slice_count():
    spec = {"cell": {"io": 2, "workspace": 8}, "neuron": {"degree": 2, "topology": {"local": 1}}}
    program = compile_program(spec, steps=3)
    with pytest.raises(BackendError) as info:
        prepare(program, _options(cache_dir=None, memory_budget=2000, max_slices=4))
    message = str(info.value)
    assert "slic" in message
    assert not any(len(tok) > 12 and tok.isdigit() for tok in message.split())


@pytest.mark.parametrize("limit", [0, 10_000])
def test_large_networks_skip_the_python_searches(monkeypatch, limit):
    """Above ``PYTHON_SEARCH_MAX_TENSORS`` only the sweep and cotengrust's greedy trials run
    (the Python greedy, the subtree refinement and hyper trials overran the time box there);
    either way the plan stays exact."""
    import cotengra as ctg

    import qrnn_tn.backends.tensornet.search as search

    monkeypatch.setattr(search, "PYTHON_SEARCH_MAX_TENSORS", limit)
    monkeypatch.setattr(search, "HYPER_WIDTH", 0)
    calls = {"greedy": 0, "hyper": 0, "refine": 0}
    greedy, hyper, refine = search.python_greedy, ctg.HyperOptimizer, search.refine

    def counted_greedy(*args, **kwargs):
        calls["greedy"] += 1
        return greedy(*args, **kwargs)

    def counted_hyper(*args, **kwargs):
        calls["hyper"] += 1
        return hyper(*args, **kwargs)

    def counted_refine(*args, **kwargs):
        calls["refine"] += 1
        return refine(*args, **kwargs)

    monkeypatch.setattr(search, "python_greedy", counted_greedy)
    monkeypatch.setattr(search, "refine", counted_refine)
    monkeypatch.setattr(search.ctg, "HyperOptimizer", counted_hyper)
    spec = {"cell": {"io": 1, "workspace": 3, "stages": 1}, "neuron": {"topology": "all"}}
    program, theta, words = _case(spec, steps=2, batch=2, seed=3)
    plan = prepare(program, _options(None, search_time=0.2))
    expected = 0 if limit == 0 else program.steps
    assert calls["greedy"] == calls["hyper"] == expected
    assert (calls["refine"] > 0) == (limit > 0)
    probs = plan.run(torch.tensor(theta), torch.tensor(words)).probs.numpy()
    for b in range(len(words)):
        np.testing.assert_allclose(probs[b], dense_run(program.dag, theta, words[b]), atol=1e-10)


def test_subtree_refinement_cuts_the_greedy_trees_cost():
    """The refinement pass must lower the score of the Python greedy tree on a local cell
    (it took the n = 100, 3-step tree from 2^26 to 2^23) and keep its leaves and output."""
    import qrnn_tn.backends.tensornet.search as search
    from qrnn_tn.backends.tensornet.network import build_networks

    spec = {
        "cell": {"io": 2, "workspace": 28, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
    }
    net = build_networks(compile_program(spec, steps=3)).networks[-1]
    inputs, output, sizes = search.symbols(net)
    greedy = search.tree_of(search.python_greedy, inputs, output, sizes)
    refined = search.refine(greedy, greedy.contraction_width())
    assert search.tree_score(refined) < 0.5 * search.tree_score(greedy)
    assert refined.contraction_width() <= greedy.contraction_width()
    assert refined.inputs == greedy.inputs and refined.output == greedy.output


def test_a_leaf_no_slicing_can_fit_is_refused_before_any_tree():
    """A hyper-form neuron over 11 sources is one tensor of 2^13 elements (64 KiB): with a
    budget of 8 KiB and one slice allowed, the quick estimate refuses without a tree."""
    from qrnn_tn.backends.tensornet import estimate

    spec = {"cell": {"io": 1, "workspace": 11}, "neuron": {"degree": 1}}
    program = compile_program(spec, steps=1)
    options = BackendOptions(
        memory_budget=8 * 2**10,
        backend_options={"neuron_form": "hyper", "max_slices": 1, "cache_dir": None},
    )
    with pytest.raises(BackendError, match="tensor of 2\\^13 elements.*1 slices cannot"):
        estimate(program, options)


#: A 41-qubit all-to-all cell of degree-1 neurons: its literal network has ~28 000 tensors
#: over 2 steps, and costing it once took minutes.
WIDE_ALL_TO_ALL = """\
[cell]
io = 1
workspace = 40
stages = 1
[neuron]
degree = 1
order = 1
topology = "all"
"""


def test_wide_all_to_all_estimate_refuses_quickly():
    from qrnn_tn.backends.tensornet import estimate

    program = compile_program(WIDE_ALL_TO_ALL, steps=2)
    quick = estimate(program, _options(cache_dir=None))
    assert not quick.fits and quick.upper_bound and quick.cost is None
    assert re.search(r"estimated 2\^\d+.* B unsliced.*quick estimate", quick.reason)


def test_plan_over_every_slicing_is_refused_before_a_slicing_search(monkeypatch):
    import qrnn_tn.backends.tensornet.plan as tensornet_plan

    def no_slicing(*args, **kwargs):
        raise AssertionError("sliced a tree that no slicing within max_slices can fit")

    monkeypatch.setattr(tensornet_plan, "slice_tree", no_slicing)
    spec = {"cell": {"io": 1, "workspace": 8}, "neuron": {"degree": 1, "order": 1}}
    program = compile_program(spec, steps=2)
    with pytest.raises(BackendError, match=r"even cut into max_slices=2 slices.*Ways out"):
        prepare(program, _options(cache_dir=None, memory_budget=64, max_slices=2))


def test_wide_all_to_all_simulate_answers_in_seconds(tmp_path):
    """Before the linear width bound and the time-boxed search this ran for minutes; the
    timeout is generous for a loaded machine, the point is that it ends with a clean error."""
    import subprocess
    import sys

    spec = tmp_path / "wide.toml"
    spec.write_text(WIDE_ALL_TO_ALL)
    argv = [sys.executable, "-m", "qrnn_tn", "simulate", str(spec), "--words", "1,0,1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "quick estimate" in done.stderr and "max_slices" in done.stderr

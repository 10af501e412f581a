"""Tensor-network planning for clusters: path search on a dask client, slice limits, and
sliced trees reloaded from the shared path cache, each checked against the statevector."""

from __future__ import annotations

import cotengra as ctg
import numpy as np
import pytest
import torch
from distributed import Client, LocalCluster

from compiler.unroll import compile_program
from qrnn_tn.backends.base import BackendError, BackendOptions, get_backend
from qrnn_tn.backends.tensornet import prepare, search

SPEC = {
    "cell": {"io": 2, "workspace": 6, "stages": 1},
    "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
}
#: Bytes: the 3-step plan slices its steps into [1, 8, 64] pieces (several rounds of slicing).
SMALL_BUDGET = 20_000


@pytest.fixture(scope="module")
def case():
    program = compile_program(SPEC, steps=3)
    rng = np.random.default_rng(2)
    theta = torch.tensor(rng.normal(0.0, 1.0, program.n_params))
    words = torch.tensor(rng.integers(0, 2**program.io, size=(1, 4)))
    reference = get_backend("statevector")(program, BackendOptions(dtype=torch.float64))
    with torch.no_grad():
        expected = reference.run(theta, words).probs
    return program, theta, words, expected


def _probs(plan, theta, words):
    with torch.no_grad():
        return plan.run(theta, words).probs


@pytest.fixture
def hyper_spy(monkeypatch):
    """Every HyperOptimizer the planner makes; the hyper search runs for every network."""
    made = []

    class Spy(ctg.HyperOptimizer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(ctg, "HyperOptimizer", Spy)
    monkeypatch.setattr(search, "HYPER_WIDTH", 0)
    return made


def test_path_search_on_a_dask_client(case, hyper_spy):
    program, theta, words, expected = case
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        extra = {"cache_dir": None, "search_time": 0.3, "parallel": client}
        plan = prepare(program, BackendOptions(dtype=torch.float64, backend_options=extra))
        assert plan.paths.searches == program.steps
        assert "ComputeScore" in cluster.scheduler.task_prefixes  # trials ran on the workers
    assert len(hyper_spy) == program.steps
    assert all(h.parallel is client and h.scores for h in hyper_spy)
    torch.testing.assert_close(_probs(plan, theta, words), expected, rtol=0, atol=1e-10)


def test_path_search_stays_in_process_by_default(case, hyper_spy):
    program, theta, words, expected = case
    extra = {"cache_dir": None, "search_time": 0.1}
    plan = prepare(program, BackendOptions(dtype=torch.float64, backend_options=extra))
    assert hyper_spy and all(h.parallel is False for h in hyper_spy)
    torch.testing.assert_close(_probs(plan, theta, words), expected, rtol=0, atol=1e-10)


def test_sliced_trees_reload_from_the_path_cache(case, tmp_path):
    program, theta, words, expected = case
    options = BackendOptions(
        dtype=torch.float64,
        memory_budget=SMALL_BUDGET,
        backend_options={"cache_dir": str(tmp_path), "search_time": 0.0},
    )
    first = prepare(program, options)
    slices = first.cost.details.slices_per_step
    assert max(slices) > 8  # sliced in more than one round
    again = prepare(program, options)  # its own cache, as another rank or worker would start
    assert again.paths.searches == 0
    assert again.cost.details.slices_per_step == slices
    torch.testing.assert_close(_probs(again, theta, words), expected, rtol=0, atol=1e-10)


def test_max_slices_is_never_exceeded(case):
    program = case[0]
    extra = {"cache_dir": None, "search_time": 0.0, "max_slices": 32}
    options = BackendOptions(dtype=torch.float64, memory_budget=SMALL_BUDGET, backend_options=extra)
    with pytest.raises(BackendError, match=r"within max_slices=32 \(it would take 2\^6\)"):
        prepare(program, options)

"""Slices of a tensor-network contraction on an executor (issue 9) against local runs.

References: the same sliced plan run in this process, and the statevector backend (an
independent simulation), for values and gradients.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest
import torch
from distributed import Client, LocalCluster

from compiler.unroll import compile_program
from qrnn_tn.backends.base import BackendError, BackendOptions, get_backend
from qrnn_tn.backends.tensornet import prepare

SPEC = {
    "cell": {"io": 2, "workspace": 6, "stages": 1},
    "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
}


@pytest.fixture(scope="module")
def case():
    program = compile_program(SPEC, steps=3)
    rng = np.random.default_rng(4)
    theta = rng.normal(0.0, 1.0, program.n_params)
    words = torch.tensor(rng.integers(0, 2**program.io, size=(2, 4)))
    options = BackendOptions(
        dtype=torch.float64,
        batch_size=2,
        memory_budget=30_000,
        backend_options={"cache_dir": None, "search_time": 0.0},
    )
    plan = prepare(program, options)
    assert max(plan.cost.details.slices_per_step) > 1
    local = _probs_and_grad(plan, theta, words)
    return program, plan, theta, words, local


def _probs_and_grad(plan, theta, words, **kw):
    params = torch.tensor(theta, requires_grad=True)
    probs = plan.run(params, words, **kw).probs
    torch.log(probs).sum().backward()
    return probs.detach(), params.grad


def _close(a, b):
    torch.testing.assert_close(a[0], b[0], atol=1e-10, rtol=0)
    torch.testing.assert_close(a[1], b[1], atol=1e-10, rtol=1e-10)


def test_thread_pool_equals_local_sliced_run(case):
    _, plan, theta, words, local = case
    with ThreadPoolExecutor(2) as pool:
        remote = _probs_and_grad(plan, theta, words, executor=pool)
    _close(remote, local)


def test_thread_pool_equals_statevector(case):
    program, plan, theta, words, _ = case
    with ThreadPoolExecutor(2) as pool:
        remote = _probs_and_grad(plan, theta, words, executor=pool)
    options = BackendOptions(dtype=torch.float64, batch_size=2, backend_options={})
    reference = _probs_and_grad(get_backend("statevector")(program, options), theta, words)
    _close(remote, reference)


def test_no_grad_run_on_executor(case):
    _, plan, theta, words, local = case
    with ThreadPoolExecutor(2) as pool, torch.no_grad():
        probs = plan.run(torch.tensor(theta), words, executor=pool).probs
    torch.testing.assert_close(probs, local[0], atol=1e-10, rtol=0)


class _Failing(ThreadPoolExecutor):
    """Runs every task except ``task`` on slice ``index``, which fails on the 'worker'."""

    def __init__(self, task: str, index: int):
        super().__init__(1)
        self.task, self.index = task, index

    def submit(self, fn, *args, **kwargs):
        index = args[2] if fn.__name__ == "slice_forward" else args[3]
        if fn.__name__ == self.task and index == self.index:
            return super().submit(_boom)
        return super().submit(fn, *args, **kwargs)


def _boom():
    raise RuntimeError("worker died")


def test_failing_slice_raises_backend_error(case):
    _, plan, theta, words, _ = case
    pool = _Failing("slice_forward", 1)
    with pool, pytest.raises(BackendError, match=r"slice 1 of \d+ \(forward\).*worker died"):
        plan.run(torch.tensor(theta), words, executor=pool)


def test_failing_backward_slice_raises_backend_error(case):
    _, plan, theta, words, _ = case
    with _Failing("slice_vjp", 1) as pool:
        params = torch.tensor(theta, requires_grad=True)
        probs = plan.run(params, words, executor=pool).probs
        with pytest.raises(BackendError, match=r"slice 1 of \d+ \(backward\).*worker died"):
            torch.log(probs).sum().backward()
    assert params.grad is None


class _DeadWorker:
    """An 'executor' whose futures were lost with their worker."""

    def submit(self, fn, *args):
        future = Future()
        future.set_exception(ConnectionError("lost worker"))
        return future


def test_dead_worker_and_bad_executor(case):
    _, plan, theta, words, _ = case
    with pytest.raises(BackendError, match=r"slice 0 .*ConnectionError: lost worker"):
        plan.run(torch.tensor(theta), words, executor=_DeadWorker())
    with pytest.raises(BackendError, match="submit"):
        plan.run(torch.tensor(theta), words, executor=object())


def test_dask_client_equals_local_sliced_run(case):

    _, plan, theta, words, local = case
    with (
        LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        remote = _probs_and_grad(plan, theta, words, executor=client)
    _close(remote, local)

"""Intra-op threads of MPS runs: chosen, overridable, scoped to the run and its backward."""

from __future__ import annotations

import pytest
import torch

from compiler.unroll import compile_program
from qrnn_tn.backends.base import BackendError, BackendOptions
from qrnn_tn.backends.mps import prepare
from qrnn_tn.backends.mps import state as mps_state
from qrnn_tn.backends.options import MPSOptions
from qrnn_tn.backends.threads import backward_threads, run_threads, scope_depth
from qrnn_tn.simulation import init_params


def _spec(lanes: int) -> dict:
    return {
        "cell": {"io": 2, "workspace": lanes - 2, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
    }


@pytest.fixture
def caller_threads():
    """The caller's setting is 3 threads (not a default any rule picks); restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


@pytest.fixture
def seen(monkeypatch):
    """Thread counts seen by the neurons' forward and backward passes."""
    record = {"forward": set(), "backward": set()}
    original = mps_state.NeuronFunction

    class Recording(original):
        @staticmethod
        def forward(ctx, *args):
            record["forward"].add(torch.get_num_threads())
            return original.forward(ctx, *args)

        @staticmethod
        def backward(ctx, *grads):
            record["backward"].add(torch.get_num_threads())
            return original.backward(ctx, *grads)

    monkeypatch.setattr(mps_state, "NeuronFunction", Recording)
    return record


def _train_once(lanes: int, options: dict, checkpoint_steps: int = 1) -> None:
    program = compile_program(_spec(lanes), steps=3)
    extra = {"checkpoint_steps": checkpoint_steps, **options}
    plan = prepare(program, BackendOptions(batch_size=2, backend_options=extra))
    theta = init_params(program, program.spec, torch.Generator().manual_seed(0))
    theta.requires_grad_(True)
    words = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])
    result = plan.run(theta, words)
    assert torch.get_num_threads() == 3  # the forward's scope is closed
    result.target_prob.log().sum().backward()
    assert theta.grad is not None and torch.isfinite(theta.grad).all()


@pytest.mark.parametrize("checkpoint_steps", [0, 1])
def test_capped_bond_runs_forward_and_backward_on_one_thread(
    caller_threads, seen, checkpoint_steps
):
    _train_once(6, {"max_bond": 4}, checkpoint_steps)
    assert seen == {"forward": {1}, "backward": {1}}
    assert torch.get_num_threads() == caller_threads and scope_depth() == 0


def test_threads_option_overrides_the_automatic_choice(caller_threads, seen):
    _train_once(6, {"max_bond": 4, "threads": 2})
    assert seen == {"forward": {2}, "backward": {2}}
    assert torch.get_num_threads() == caller_threads and scope_depth() == 0


def test_large_bond_bound_keeps_the_callers_setting(caller_threads, seen):
    _train_once(14, {})  # exact bonds up to 2^7 = 128
    assert seen == {"forward": {caller_threads}, "backward": {caller_threads}}
    assert torch.get_num_threads() == caller_threads


def test_plan_reports_its_threads():
    program = compile_program(_spec(6), steps=2)
    assert prepare(program, BackendOptions(backend_options={"max_bond": 32})).threads == 1
    assert prepare(program, BackendOptions(backend_options={"threads": "2"})).threads == 2
    with pytest.raises(BackendError, match="threads=0 .*expected an integer >= 1"):
        MPSOptions(threads=0)


def test_scopes_nest_and_restore_once_both_backward_passes_are_done(caller_threads):
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    inside = []

    def run(params):
        inside.append(torch.get_num_threads())
        return (params * 2, params.detach() + 1)

    with run_threads(1):
        first = backward_threads(1, x, run)
        second = backward_threads(2, x, run)
    assert inside == [1, 1] and torch.get_num_threads() == caller_threads
    assert not first[1].requires_grad  # outputs without gradient pass unmarked
    (first[0].sum() + second[0].sum()).backward()
    assert torch.equal(x.grad, torch.full((3,), 4.0, dtype=torch.float64))
    assert torch.get_num_threads() == caller_threads and scope_depth() == 0


def test_no_gradient_no_markers(caller_threads):
    x = torch.ones(2)
    (out,) = backward_threads(1, x, lambda p: (p + 1,))
    assert out.grad_fn is None and scope_depth() == 0

"""QRNN module: forward against the dense reference, losses, label distribution, state."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from compiler.lower import build_slots, lower_cell
from compiler.spec import load_spec
from compiler.unroll import compile_program
from qrnn_tn.backends import BackendError
from qrnn_tn.model import QRNN, init_params, sequence_loss, step_losses
from tests.reference import dense_cell_sequence, dense_run

SPECS = {
    "io1-ws2": {"cell": {"io": 1, "workspace": 2, "stages": 1}},
    "io2-ws1-s0": {"cell": {"io": 2, "workspace": 1, "stages": 0}, "neuron": {"degree": 1}},
    "io2-ws3-local": {
        "cell": {"io": 2, "workspace": 3, "stages": 2},
        "neuron": {"degree": 2, "order": 1, "topology": {"local": 1}},
    },
}


def wide_model(spec: dict, seed: int = 0) -> QRNN:
    """A model with O(1) angles, so that distributions are far from uniform."""
    rng = np.random.default_rng(seed)
    n = QRNN(spec, backend="statevector").n_params
    return QRNN(spec, backend="statevector", init=rng.normal(0, 1.5, n))


def random_words(io: int, batch: int, length: int, seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 2**io, size=(batch, length)))


def reference_probs(model: QRNN, words: torch.Tensor) -> np.ndarray:
    dag = model.program(words.shape[1] - 1).dag
    theta = model.theta.detach().numpy()
    return np.stack([dense_run(dag, theta, row.tolist()) for row in words])


@pytest.mark.parametrize("name", SPECS)
def test_forward_matches_dense_reference(name):
    model = wide_model(SPECS[name])
    words = random_words(model.io, batch=3, length=5)
    probs = model(words)
    assert probs.shape == (3, 4, 2**model.io)
    np.testing.assert_allclose(probs.detach().numpy(), reference_probs(model, words), atol=1e-10)


def test_forward_accepts_numpy_and_caches_programs_and_plans():
    model = wide_model(SPECS["io1-ws2"])
    words = random_words(1, batch=2, length=4).numpy()
    first = model(words)
    assert model.plan(3, 2) is model.plan(3, 2)
    assert model.program(3) is model.program(3)
    torch.testing.assert_close(model(torch.from_numpy(words)), first)


def test_nll_loss_equals_hand_computation():
    model = wide_model(SPECS["io2-ws1-s0"], seed=3)
    words = random_words(2, batch=3, length=6, seed=4)
    mask = torch.tensor(np.random.default_rng(5).random((3, 5)) < 0.6)
    mask[0, 0] = True
    ref = reference_probs(model, words)
    terms = [
        -math.log(ref[b, t, words[b, t + 1]]) for b in range(3) for t in range(5) if mask[b, t]
    ]
    assert float(model.loss(words, mask).detach()) == pytest.approx(np.mean(terms), rel=1e-10)
    every = [-math.log(ref[b, t, words[b, t + 1]]) for b in range(3) for t in range(5)]
    assert float(model.loss(words).detach()) == pytest.approx(np.mean(every), rel=1e-10)


def test_paper_loss_equals_shifted_cross_entropy_on_probabilities():
    model = wide_model(SPECS["io2-ws1-s0"], seed=6)
    words = random_words(2, batch=2, length=4, seed=7)
    ref = reference_probs(model, words)
    k = 4

    def ce(z, y):
        return -z[y] + math.log(np.exp(z).sum())

    terms = [
        ce(ref[b, t], words[b, t + 1]) - ce(np.eye(k)[words[b, t + 1]], words[b, t + 1])
        for b in range(2)
        for t in range(3)
    ]
    assert float(model.loss(words, kind="paper").detach()) == pytest.approx(
        np.mean(terms), rel=1e-10
    )


def test_paper_loss_of_a_perfect_prediction_is_zero_and_nll_too():
    words = torch.tensor([[0, 3, 1, 2], [2, 2, 0, 1]])
    perfect = torch.nn.functional.one_hot(words[:, 1:], 4).double()
    mask = torch.ones(2, 3, dtype=torch.bool)
    targets = words[:, 1:]
    assert float(sequence_loss(perfect, targets, mask, "paper")) == pytest.approx(0, abs=1e-12)
    assert float(sequence_loss(perfect, targets, mask, "nll")) == pytest.approx(0, abs=1e-12)
    wrong = torch.nn.functional.one_hot((words[:, 1:] + 1) % 4, 4).double()
    assert float(step_losses(wrong, targets, "paper").min()) > 0


def test_loss_is_differentiable_and_gradient_matches_finite_differences():
    model = wide_model(SPECS["io1-ws2"], seed=8)
    words = random_words(1, batch=2, length=4, seed=9)
    loss = model.loss(words)
    (grad,) = torch.autograd.grad(loss, model.theta)
    i, eps = 3, 1e-6
    with torch.no_grad():
        model.theta[i] += eps
        up = float(model.loss(words).detach())
        model.theta[i] -= 2 * eps
        down = float(model.loss(words).detach())
    assert float(grad[i]) == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize(("name", "k"), [("io1-ws2", 3), ("io2-ws1-s0", 1), ("io2-ws1-s0", 2)])
def test_label_distribution_equals_branch_enumeration(name, k):
    model = wide_model(SPECS[name], seed=10)
    io, length = model.io, 6
    words = random_words(io, batch=2, length=length, seed=11)
    dist = model.label_distribution(words, k).detach().numpy()
    assert dist.shape == (2, 2 ** (io * k))
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, atol=1e-12)
    dag = model.program(length - 1).dag
    theta = model.theta.detach().numpy()
    for b in range(2):
        for label in itertools.product(range(2**io), repeat=k):
            branch = words[b].tolist()[: length - k] + list(label)
            probs = dense_run(dag, theta, branch)
            joint = np.prod([probs[length - 1 - k + i, v] for i, v in enumerate(label)])
            index = int("".join(format(v, f"0{io}b") for v in label), 2)
            assert dist[b, index] == pytest.approx(joint, abs=1e-12)


def cell_reference(model: QRNN, words: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Distributions from the one-step cell run step by step (no unrolled program)."""
    cell, theta = lower_cell(model.spec), model.theta.detach().numpy()
    rows = zip(words.tolist(), targets.tolist(), strict=True)
    return np.stack([dense_cell_sequence(cell, theta, w, y) for w, y in rows])


@pytest.mark.parametrize("backend", ["statevector", "tensornet", "mps"])
def test_a_target_stream_is_what_each_step_is_projected_on(backend):
    spec = SPECS["io2-ws3-local"]
    theta = wide_model(spec, seed=12).theta.detach()
    model = QRNN(spec, backend=backend, init=theta)
    words = random_words(2, batch=3, length=6, seed=13)
    targets = random_words(2, batch=3, length=5, seed=14)
    probs = model(words, targets)
    np.testing.assert_allclose(
        probs.detach().numpy(), cell_reference(model, words, targets), atol=1e-10
    )
    torch.testing.assert_close(model.run(words, targets=targets).words[:, 6:], targets)
    # the next inputs as targets: the plain model
    torch.testing.assert_close(model(words, words[:, 1:]), model(words), atol=1e-12, rtol=0)
    # gradients of a target-stream loss agree with the statevector's
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[:, -1] = True
    (grad,) = torch.autograd.grad(model.loss(words, mask, targets=targets), model.theta)
    exact = QRNN(spec, backend="statevector", init=theta)
    (expect,) = torch.autograd.grad(exact.loss(words, mask, targets=targets), exact.theta)
    torch.testing.assert_close(grad, expect, atol=1e-10, rtol=1e-8)


def test_label_distribution_with_a_target_stream_branches_the_targets():
    model = wide_model(SPECS["io2-ws1-s0"], seed=15)
    words = random_words(2, batch=2, length=5, seed=16)
    targets = random_words(2, batch=2, length=4, seed=17)
    dist = model.label_distribution(words, 2, targets).detach().numpy()
    for b in range(2):
        for label in itertools.product(range(4), repeat=2):
            branch = targets[b : b + 1].clone()
            branch[0, -2:] = torch.tensor(label)
            probs = cell_reference(model, words[b : b + 1], branch)[0]
            joint = probs[-2, label[0]] * probs[-1, label[1]]
            assert dist[b, 4 * label[0] + label[1]] == pytest.approx(joint, abs=1e-12)


def test_a_target_stream_is_checked_and_refused_in_sample_mode():
    model = wide_model(SPECS["io2-ws1-s0"])
    words = random_words(2, batch=2, length=4)
    with pytest.raises(ValueError, match=r"targets must have shape \[batch, L-1\] = \[2, 3\]"):
        model(words, words)
    with pytest.raises(ValueError, match="targets: token 4 is out of range"):
        model(words, torch.full((2, 3), 4))
    program = model.program(3, separate_targets=True)
    with pytest.raises(BackendError, match="sample mode draws each step's word"):
        model.plan(3, 2, True).run(model.theta, words[:, :1], mode="sample")
    assert program.n_tokens == 7


def test_initialisation_follows_slot_kinds_and_seed():
    spec = {
        "cell": {"io": 1, "workspace": 2, "stages": 1},
        "init": {"bias_std": 0.0, "weight_std": 0.0, "rotation_std": 1.0},
    }
    model = QRNN(spec, backend="statevector", seed=5)
    rotations = [i for i, name in enumerate(model.slot_names) if ".ry." in name]
    theta = model.theta.detach()
    assert rotations and bool((theta[rotations] != 0).all())
    others = [i for i in range(model.n_params) if i not in rotations]
    assert bool((theta[others] == 0).all())
    again = QRNN(spec, backend="statevector", seed=5)
    torch.testing.assert_close(again.theta, model.theta)
    assert model.theta.dtype == torch.float64
    assert QRNN(spec, backend="statevector", dtype=torch.complex64).theta.dtype == torch.float32


def test_state_dict_is_readable_and_checked_on_load():
    model = wide_model(SPECS["io1-ws2"])
    state = model.state_dict()
    assert set(state) == {"theta", "_extra_state"}
    assert state["_extra_state"]["slot_names"] == list(model.slot_names)
    assert list(model.slot_values())[0] == "in.h0.[]"
    other = QRNN(SPECS["io1-ws2"], backend="statevector", seed=99)
    other.load_state_dict(state)
    torch.testing.assert_close(other.theta, model.theta)
    different = QRNN(SPECS["io2-ws1-s0"], backend="statevector")
    with pytest.raises((ValueError, RuntimeError), match="parameters"):
        different.load_state_dict(state)


def test_generate_keeps_the_prompt_and_is_reproducible():
    model = wide_model(SPECS["io2-ws1-s0"], seed=12)
    prompt = torch.tensor([[1, 2], [3, 0]])
    first = model.generate(prompt, 5, generator=torch.Generator().manual_seed(0))
    again = model.generate(prompt, 5, generator=torch.Generator().manual_seed(0))
    assert first.shape == (2, 7)
    assert torch.equal(first[:, :2], prompt)
    assert torch.equal(first, again)
    assert int(first.min()) >= 0 and int(first.max()) < 4
    assert model.generate([1], 3).shape == (4,)


def test_generate_samples_follow_the_model_distribution():
    model = wide_model(SPECS["io1-ws2"], seed=13)
    prompt = torch.zeros(4000, 1, dtype=torch.int64)
    samples = model.generate(prompt, 1, generator=torch.Generator().manual_seed(1))
    p_one = float(model(torch.tensor([[0, 1]]))[0, 0, 1].detach())
    assert float(samples[:, 1].double().mean()) == pytest.approx(p_one, abs=0.03)


@pytest.mark.parametrize(
    ("words", "match"),
    [
        (torch.tensor([0, 1, 0]), r"shape \[batch, L\]"),
        (torch.tensor([[0]]), "L >= 2"),
        (torch.tensor([[0, 2]]), "token 2 is out of range"),
        (torch.tensor([[0.0, 1.0]]), "integer tokens"),
    ],
)
def test_bad_words_are_refused_clearly(words, match):
    model = QRNN(SPECS["io1-ws2"], backend="statevector")
    with pytest.raises(ValueError, match=match):
        model(words)


def test_bad_arguments_are_refused_before_any_work():
    with pytest.raises(ValueError, match="flat vector"):
        QRNN(SPECS["io1-ws2"], backend="statevector", init=[0.0, 1.0])
    with pytest.raises(Exception, match="unknown backend"):
        QRNN(SPECS["io1-ws2"], backend="no-such-backend")
    model = QRNN(SPECS["io1-ws2"], backend="statevector")
    words = torch.tensor([[0, 1, 1]])
    with pytest.raises(ValueError, match="loss kind"):
        model.loss(words, kind="mse")
    with pytest.raises(ValueError, match="mask must be a bool"):
        model.loss(words, torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="selects no step"):
        model.loss(words, torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="n_label_steps"):
        model.label_distribution(words, 3)


def test_auto_backend_chooses_once_per_length(monkeypatch):
    import qrnn_tn.model as model_module

    calls = []
    real_choose = model_module.choose

    def counting_choose(program, options):
        calls.append((program.steps, options.batch_size))
        return real_choose(program, options)

    monkeypatch.setattr(model_module, "choose", counting_choose)
    model = QRNN(SPECS["io1-ws2"], seed=0)
    assert model.backend == "auto"
    words = random_words(1, batch=4, length=3)
    torch.testing.assert_close(model(words[:2]), model(words)[:2])
    model(random_words(1, batch=2, length=4))
    assert calls == [(2, 2), (3, 2)]
    assert str(model.backend_choice).startswith("chose ")


def test_auto_with_another_backends_options_plans_new_batch_sizes():
    """``auto`` keeps its choice for a new batch size and hands that backend only its own
    options (a bond cap meant for the MPS does not stop the statevector)."""
    model = QRNN("examples/elman_xor.toml", backend="auto", seed=0, backend_options={"max_bond": 8})
    words = torch.zeros(3, 4, dtype=torch.int64)
    first = model(words[:2])
    again = model(words)
    torch.testing.assert_close(again[:2], first, rtol=0, atol=1e-12)
    assert model.plan(3, 3).cost.backend == model.plan(3, 2).cost.backend


def test_init_params_follows_the_spec_init():
    spec = load_spec(
        {
            "cell": {"io": 3, "workspace": 7, "stages": 2},
            "neuron": {"degree": 3},
            "init": {"bias_std": 0.5, "weight_std": 0.02, "rotation_std": 2.0},
        }
    )
    slots = build_slots(spec)
    params = init_params(slots, spec, torch.Generator().manual_seed(0))
    assert params.dtype == torch.float64 and params.shape == (spec.n_parameters(),)
    kinds = np.array([slot.kind for slot in slots])
    for kind, std in (("bias", 0.5), ("weight", 0.02), ("rotation", 2.0)):
        values = params.numpy()[kinds == kind]
        assert abs(values.std() / std - 1) < 4 / np.sqrt(len(values)) + 0.05, kind
        assert abs(values.mean()) < 5 * std / np.sqrt(len(values))
    program = compile_program(spec, steps=1)
    again = init_params(program, spec, torch.Generator().manual_seed(0))
    assert torch.equal(params, again)

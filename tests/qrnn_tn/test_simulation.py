"""``qrnn_tn.simulate`` and ``init_params`` against the dense reference and their contracts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import qrnn_tn
from compiler.spec import load_spec
from compiler.unroll import compile_program
from qrnn_tn.backends import BackendError
from qrnn_tn.model import init_params
from qrnn_tn.simulation import as_words, simulate
from tests.reference import dense_run

SPEC = {"cell": {"io": 2, "workspace": 3, "stages": 1}, "neuron": {"degree": 2, "order": 2}}
WORDS = [3, 1, 0, 2]


def _params(program, seed=0):
    return np.random.default_rng(seed).normal(0.0, 0.8, program.n_params)


def _expected(words=WORDS):
    program = compile_program(SPEC, steps=len(words) - 1)
    params = _params(program)
    return program, params, dense_run(program.dag, params, words)


def test_is_exported_as_a_function():
    assert qrnn_tn.simulate is simulate


def test_every_kind_of_spec_gives_the_reference(tmp_path):
    program, params, expect = _expected()
    toml = tmp_path / "cell.toml"
    toml.write_text("[cell]\nio = 2\nworkspace = 3\nstages = 1\n[neuron]\ndegree = 2\n")
    as_json = tmp_path / "cell.json"
    as_json.write_text(json.dumps(SPEC))
    for source in (SPEC, load_spec(SPEC), program, toml, str(as_json)):
        result = simulate(source, params, WORDS)
        assert result.probs.shape == (1, 3, 4) and result.probs.dtype == torch.float64
        np.testing.assert_allclose(result.probs[0], expect, rtol=0, atol=1e-12)


def test_words_as_list_batch_and_tensor():
    program, params, expect = _expected()
    other = [0, 0, 1, 3]
    expect_other = dense_run(program.dag, params, other)
    for words in ([WORDS, other], np.array([WORDS, other]), torch.tensor([WORDS, other])):
        result = simulate(SPEC, params, words)
        np.testing.assert_allclose(result.probs[0], expect, rtol=0, atol=1e-12)
        np.testing.assert_allclose(result.probs[1], expect_other, rtol=0, atol=1e-12)
    single = simulate(SPEC, params, torch.tensor(WORDS))
    assert single.words.tolist() == [WORDS]


def test_params_keep_their_gradient():
    program, params, _ = _expected()
    theta = torch.tensor(params, requires_grad=True)
    simulate(program, theta, WORDS).target_prob.log().sum().backward()
    assert theta.grad is not None and theta.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", ["float32", "complex64", "complex128", torch.float64])
def test_dtypes_give_the_same_probabilities(dtype):
    _, params, expect = _expected()
    result = simulate(SPEC, params, WORDS, dtype=dtype)
    tol = 1e-5 if dtype in ("float32", "complex64") else 1e-12
    np.testing.assert_allclose(result.probs[0].double(), expect, rtol=0, atol=tol)


def test_auto_backend_is_exact():
    _, params, expect = _expected()
    result = simulate(SPEC, params, WORDS, backend="auto")
    np.testing.assert_allclose(result.probs[0], expect, rtol=0, atol=1e-8)


def test_seed_draws_parameters_and_samples_reproducibly():
    first = simulate(SPEC, None, [[1], [2]], steps=6, mode="sample", seed=3)
    again = simulate(SPEC, None, [[1], [2]], steps=6, mode="sample", seed=3)
    other = simulate(SPEC, None, [[1], [2]], steps=6, mode="sample", seed=4)
    assert first.words.shape == (2, 7) and first.words[:, 0].tolist() == [1, 2]
    assert torch.equal(first.words, again.words) and torch.equal(first.probs, again.probs)
    assert not torch.equal(first.probs, other.probs)
    program = compile_program(SPEC, steps=6)
    params = init_params(program, program.spec, torch.Generator().manual_seed(3))
    teacher = simulate(program, params, first.words)
    np.testing.assert_allclose(teacher.probs, first.probs, rtol=0, atol=1e-14)


def test_rejects_bad_words_and_arguments():
    program, params, _ = _expected()
    with pytest.raises(BackendError, match="token 4 at sequence 0, position 2"):
        simulate(SPEC, params, [0, 1, 4])
    with pytest.raises(BackendError, match="at least 2 tokens"):
        simulate(SPEC, params, [1])
    with pytest.raises(BackendError, match=r"L >= 1"):
        simulate(SPEC, params, [])
    with pytest.raises(BackendError, match="rectangular"):
        simulate(SPEC, params, [[0, 1], [0, 1, 2]])
    with pytest.raises(BackendError, match="integer"):
        simulate(SPEC, params, [0.0, 1.0])
    with pytest.raises(BackendError, match="3 steps but steps=5"):
        simulate(program, params, WORDS, steps=5)
    with pytest.raises(BackendError, match="needs steps"):
        simulate(SPEC, params, [1], mode="sample")
    with pytest.raises(BackendError, match="dtype 'float16'"):
        simulate(SPEC, params, WORDS, dtype="float16")
    with pytest.raises(BackendError, match="mode"):
        simulate(SPEC, params, WORDS, mode="beam")
    with pytest.raises(BackendError, match="unknown backend"):
        simulate(SPEC, params, WORDS, backend="nope")
    assert as_words([[1, 2]], io=2).dtype == torch.int64

"""The quimb export of the tensor-network backend's step networks.

Ground truth: the statevector backend (an independent simulation, not a tensor network) for
probabilities and gradients; the program's own operation list for the tags. The networks are
contracted by quimb with its own path finder.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
import quimb.tensor as qtn
import torch
from hypothesis import given
from hypothesis import strategies as st

from compiler.unroll import compile_program
from qrnn_tn.backends.base import BackendError, BackendOptions
from qrnn_tn.backends.tensornet import prepare
from qrnn_tn.backends.tensornet.quimb import readout_inds, to_quimb
from qrnn_tn.simulation import simulate

CELLS = {
    "all": {"cell": {"io": 1, "workspace": 2, "stages": 1}, "neuron": {"degree": 2}},
    "local": {
        "cell": {"io": 2, "workspace": 2, "stages": 2},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
    },
    "order3": {"cell": {"io": 2, "workspace": 1}, "neuron": {"degree": 1, "order": 3}},
}


def _case(cell: str, steps: int, batch: int, seed: int):
    program = compile_program(CELLS[cell], steps=steps)
    rng = np.random.default_rng(seed)
    params = rng.normal(0.0, 1.0, program.n_params)
    words = rng.integers(0, 2**program.io, size=(batch, program.n_tokens))
    return program, params, words


def _statevector(program, params, words) -> torch.Tensor:
    return simulate(program, torch.as_tensor(params), words, backend="statevector").probs


def _quimb_probs(tn: qtn.TensorNetwork, batch: int | None):
    unnorm = tn.contract(output_inds=readout_inds(tn), optimize="greedy").data
    flat = unnorm.reshape(-1) if batch is None else unnorm.reshape(batch, -1)
    return flat / flat.sum(-1, keepdims=True)


@pytest.mark.parametrize("form", ["auto", "hyper", "literal"])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_every_step_matches_statevector(cell, form):
    program, params, words = _case(cell, steps=3, batch=3, seed=len(cell))
    reference = _statevector(program, params, words).numpy()
    for step in range(program.steps):
        tn = to_quimb(program, params, words, step=step, arrays="numpy", neuron_form=form)
        assert readout_inds(tn) == ("batch", *(f"out{q}" for q in range(program.io)))
        probs = _quimb_probs(tn, batch=3)
        np.testing.assert_allclose(probs, reference[:, step], atol=1e-10, rtol=0)


def test_one_sequence_has_no_batch_index_and_negative_steps_count_from_the_end():
    program, params, words = _case("local", steps=2, batch=1, seed=1)
    reference = _statevector(program, params, words)[0, -1].numpy()
    tn = to_quimb(program, params, words[0].tolist(), step=-1, arrays="numpy")
    assert "batch" not in tn.ind_map
    assert readout_inds(tn) == ("out0", "out1")
    assert all(isinstance(t.data, np.ndarray) and t.dtype == "float64" for t in tn)
    np.testing.assert_allclose(_quimb_probs(tn, batch=None), reference, atol=1e-10, rtol=0)


def test_a_list_of_floats_is_read_as_float64():
    """Not rounded through torch's float32 default: this cell's distribution would move 5e-10."""
    program = compile_program(CELLS["all"], steps=2)
    params = [0.1] * program.n_params
    reference = _statevector(program, np.asarray(params), [[1, 0, 1]])[0, 1].numpy()
    tn = to_quimb(program, params, [1, 0, 1], step=1, arrays="numpy")
    np.testing.assert_allclose(_quimb_probs(tn, batch=None), reference, atol=1e-12, rtol=0)


def test_a_plan_gives_its_program_and_neuron_form():
    program, params, words = _case("all", steps=1, batch=2, seed=2)
    extra = {"cache_dir": None, "search_time": 0.0, "neuron_form": "literal"}
    plan = prepare(program, BackendOptions(batch_size=2, backend_options=extra))
    assert "NEURON" in to_quimb(program, params, words).tag_map  # "auto" keeps them whole here
    tn = to_quimb(plan, params, words, arrays="numpy")
    assert "NEURON" not in tn.tag_map  # literal: neurons are their ancilla circuits
    expected = _statevector(program, params, words)[:, 0]
    np.testing.assert_allclose(_quimb_probs(tn, batch=2), expected.numpy(), atol=1e-10, rtol=0)


def test_tags_follow_the_program_operations():
    """Per step and half, one NEURON tensor per neuron op and one RY per ry gate of that step."""
    program, params, words = _case("local", steps=3, batch=2, seed=3)
    tn = to_quimb(program, params, words, step=2, arrays="numpy", neuron_form="hyper")
    for step, (start, stop) in enumerate(program.segments()):
        ops = program.ops[start:stop]
        neurons = [op for op in ops if op.kind == "neuron"]
        rys = [op for op in ops if op.kind == "gate" and op.name == "ry"]
        for half in ("KET", "BRA"):
            found = tn.select_tensors([f"STEP{step}", half, "NEURON"], which="all")
            assert sorted(f"LANE{op.target}" for op in neurons) == sorted(
                next(tag for tag in t.tags if tag.startswith("LANE")) for t in found
            )
            ry = tn.select_tensors([f"STEP{step}", half, "RY"], which="all")
            assert len(ry) == len(rys)
    kets = tn.select_tensors("KET")
    assert len(kets) == len(tn.select_tensors("BRA")) == tn.num_tensors // 2


def test_torch_arrays_carry_gradients_through_quimb():
    program, params, words = _case("local", steps=2, batch=2, seed=4)
    weights = torch.tensor(np.random.default_rng(5).normal(size=(2, 2**program.io)))
    theta = torch.tensor(params, requires_grad=True)
    tn = to_quimb(program, theta, words, step=1)
    assert all(isinstance(t.data, torch.Tensor) for t in tn)
    (grad,) = torch.autograd.grad((_quimb_probs(tn, batch=2) * weights).sum(), theta)
    ref_theta = torch.tensor(params, requires_grad=True)
    ref = _statevector(program, ref_theta, words)[:, 1]
    (ref_grad,) = torch.autograd.grad((ref * weights).sum(), ref_theta)
    torch.testing.assert_close(grad, ref_grad, atol=1e-10, rtol=0)


def test_float32_tensors():
    program, params, words = _case("all", steps=1, batch=1, seed=6)
    tn = to_quimb(program, params, words, dtype="float32")
    assert {t.data.dtype for t in tn} == {torch.float32}
    reference = _statevector(program, params, words)[:, 0].numpy()
    probs = _quimb_probs(tn, batch=1).numpy()
    np.testing.assert_allclose(probs, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step": 2}, "step 2 is out of range"),
        ({"step": -3}, "step -3 is out of range"),
        ({"step": 1.0}, "step must be an integer"),
        ({"arrays": "jax"}, "arrays='jax'"),
        ({"dtype": "complex128"}, "dtype 'complex128' is not supported"),
        ({"neuron_form": "dense"}, "neuron_form='dense'"),
        ({"params": [0.0]}, "params must be a float tensor of shape"),
        ({"words": [[0, 1]]}, "words must have shape"),
        ({"words": [0, 1, 9]}, "out of range"),
        ({"words": ["a", "b", "c"]}, "words must be integer tokens"),
        ({"words": [[0, 1], [1]]}, "words must be integer tokens"),
        ({"params": "theta"}, "params must be"),
        ({"program": "cell.toml"}, "expected a compiled Program"),
    ],
)
def test_bad_input_is_refused_clearly(kwargs, message):
    program, params, words = _case("all", steps=2, batch=1, seed=7)
    args = {"program": program, "params": params, "words": words} | kwargs
    with pytest.raises(BackendError, match=message):
        to_quimb(args.pop("program"), args.pop("params"), args.pop("words"), **args)


def test_tutorial_runs_and_draws(tmp_path, capsys):
    script = Path(__file__).parents[4] / "docs" / "tutorials" / "quimb_network.py"
    main = runpy.run_path(str(script))["main"]
    out = tmp_path / "network.png"
    main(["--quick", "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "open indices: ('out0',)" in capsys.readouterr().out


_PROGRAM = compile_program(CELLS["all"], steps=2)
_PARAMS = np.linspace(-1.0, 1.0, _PROGRAM.n_params)
_SEQUENCE = st.lists(st.integers(0, 1), min_size=3, max_size=3)
_WORDS = st.one_of(_SEQUENCE, st.lists(_SEQUENCE, min_size=1, max_size=3))


def _check_network(tn, words, step, dtype):
    """The network's distribution against the statevector's for ``words`` at ``step``."""
    batched = isinstance(words[0], list)
    probs = _quimb_probs(tn, batch=len(words) if batched else None)
    reference = _statevector(_PROGRAM, _PARAMS, words if batched else [words])[:, step]
    reference = reference if batched else reference[0]
    tolerance = 1e-5 if dtype in ("float32", torch.float32) else 1e-10
    np.testing.assert_allclose(np.asarray(probs), reference.numpy(), atol=tolerance, rtol=0)


@given(
    step=st.integers(-2, 1),
    arrays=st.sampled_from(["torch", "numpy"]),
    dtype=st.sampled_from(["float64", "float32", torch.float64, torch.float32]),
    words=_WORDS,
)
def test_fuzzed_valid_arguments_match_statevector(step, arrays, dtype, words):
    _check_network(
        to_quimb(_PROGRAM, _PARAMS, words, step=step, arrays=arrays, dtype=dtype),
        words,
        step,
        dtype,
    )


@given(
    step=st.one_of(st.integers(-4, 4), st.floats(-3, 3), st.none(), st.booleans()),
    arrays=st.sampled_from(["torch", "numpy", "", "Torch", None]),
    dtype=st.sampled_from(["float64", "float32", torch.float64, "int8", torch.complex64, 3]),
    words=st.one_of(
        _WORDS,
        st.lists(st.integers(-1, 4), max_size=4),
        st.lists(st.one_of(st.floats(0, 1), st.text(max_size=1), st.none()), max_size=3),
    ),
)
def test_fuzzed_arguments_give_a_network_or_a_clean_error(step, arrays, dtype, words):
    try:
        tn = to_quimb(_PROGRAM, _PARAMS, words, step=step, arrays=arrays, dtype=dtype)
    except BackendError:
        return
    _check_network(tn, words, step, dtype)

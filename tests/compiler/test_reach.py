"""``compiler.reach``: the dependency analysis against brute force (flip each token bit, run the
statevector backend, compare the readouts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.reach import WARNING_STEPS, cell_warnings, reach, token_reach
from compiler.spec import load_spec
from compiler.unroll import compile_program
from qrnn_tn.simulation import simulate

EXAMPLES = sorted(Path(__file__).resolve().parents[2].glob("examples/*.toml"))
#: A flip "changes" a readout beyond this; a bit that cannot reach one must stay within it.
TOL = 1e-12


def _cell(io, workspace, topology, stages=1, degree=1, order=1):
    return {
        "cell": {"io": io, "workspace": workspace, "stages": stages},
        "neuron": {"topology": topology, "degree": degree, "order": order},
    }


def _flip_changes(program, seed):
    """``(token, bit) -> steps whose readout changes`` when that bit alone is flipped."""
    rng = np.random.default_rng(seed)
    params = torch.tensor(rng.uniform(-np.pi, np.pi, program.n_params))
    words = rng.integers(0, 2**program.io, program.n_tokens)
    flips = [(t, b) for t in range(program.n_tokens) for b in range(program.io)]
    batch = np.repeat(words[None], len(flips) + 1, axis=0)
    for row, (t, b) in enumerate(flips, start=1):
        batch[row, t] ^= 1 << (program.io - 1 - b)
    probs = simulate(program, params, torch.tensor(batch)).probs.numpy()
    diff = np.abs(probs[1:] - probs[:1]).max(axis=2)
    return {flip: diff[row] for row, flip in enumerate(flips)}


def _check_sound(program, seed):
    """Every flip the analysis rules out changes nothing; returns the analysis and the diffs."""
    reached = token_reach(program)
    changes = _flip_changes(program, seed)
    for (t, b), diff in changes.items():
        for step in range(program.steps):
            if step not in reached[t, b]:
                assert diff[step] <= TOL, (t, b, step, diff[step])
    return reached, changes


CELLS = [
    _cell(2, 3, {"local": 1}),
    _cell(2, 3, {"local": 1, "io": "site"}),
    _cell(3, 2, {"local": 1}, stages=2, degree=2, order=2),
    _cell(2, 2, "all", stages=0),
    _cell(1, 3, {"local": 2}, stages=2),
    _cell(2, 2, {"custom": {"0": [], "1": [0], "2": [1], "3": [2]}}),
    _cell(2, 2, {"custom": {"0": [2], "1": [0], "2": [0], "3": [1]}}),
]


@pytest.mark.parametrize("separate", [False, True])
@pytest.mark.parametrize("index", range(len(CELLS)))
def test_unreachable_bits_change_nothing_and_read_bits_do(index, separate):
    program = compile_program(CELLS[index], 3, separate_targets=separate)
    reached, changes = _check_sound(program, seed=index)
    if separate:  # input tokens 0 … steps enter only by being read: the analysis is exact there
        for t in range(program.steps + 1):
            for b in range(program.io):
                for step in reached[t, b]:
                    assert changes[t, b][step] > TOL, (t, b, step)


@pytest.mark.parametrize("variant", ["unoptimised", "literal"])
def test_sound_on_unoptimised_and_literal_programs(variant):
    """Resets and writes that cancel, ancilla rotations, controlled gates and postselections."""
    kwargs = {"optimise": False} if variant == "unoptimised" else {"literal": True}
    for index in (0, 2, 5):
        program = compile_program(CELLS[index], 2, **kwargs)
        _check_sound(program, seed=index)


custom_cells = st.integers(1, 3).flatmap(
    lambda io: st.integers(1, 3).flatmap(
        lambda ws: st.tuples(
            st.just(io),
            st.just(ws),
            st.lists(
                st.lists(st.booleans(), min_size=io + ws, max_size=io + ws),
                min_size=io + ws,
                max_size=io + ws,
            ),
            st.integers(0, 2),
            st.booleans(),
        )
    )
)


def _custom(io, ws, matrix, stages):
    n = io + ws
    sources = {str(g): [q for q in range(n) if q != g and matrix[g][q]] for g in range(n)}
    return _cell(io, ws, {"custom": sources}, stages=stages)


@settings(max_examples=25, deadline=None)
@given(custom_cells, st.integers(0, 2**31 - 1))
def test_sound_on_random_custom_topologies(cell, seed):
    io, ws, matrix, stages, separate = cell
    program = compile_program(_custom(io, ws, matrix, stages), 3, separate_targets=separate)
    _check_sound(program, seed)


@settings(max_examples=60, deadline=None)
@given(custom_cells)
def test_warning_steps_show_every_step(cell):
    """What a cell never reads is decided by WARNING_STEPS steps: a longer unroll agrees."""
    io, ws, matrix, stages, _ = cell
    spec = load_spec(_custom(io, ws, matrix, stages))
    short = reach(compile_program(spec, WARNING_STEPS))
    long = reach(compile_program(spec, 3 * WARNING_STEPS))
    assert short.unread == long.unread
    assert len(cell_warnings(spec)) == len(short.unread)


def test_summary_agrees_with_the_per_token_analysis():
    for index, cell in enumerate(CELLS):
        program = compile_program(cell, 4, separate_targets=True)
        per_token = token_reach(program)
        result = reach(program)
        for b, bit in enumerate(result.bits):
            lags = [s - t for t in range(program.steps + 1) for s in per_token[t, b]]
            assert bit.read_lag == (min(lags) if lags else None), (index, b)
            targets = range(program.steps + 1, program.n_tokens)
            lags = [s - (t - program.steps - 1) for t in targets for s in per_token[t, b]]
            assert bit.collapse_lag == (min(lags) if lags else None), (index, b)


def test_a_local_chain_never_reads_the_first_io_lane():
    plain = reach(compile_program(CELLS[0], 3))
    assert plain.unread == (0,)
    assert plain.bits[0].readers == () and plain.bits[1].readers == (2,)
    assert plain.bits[0].collapse_lag == 1  # teacher forcing still conditions on it
    text = str(plain)
    assert "Input bit 0 (o0, most significant): never read" in text
    assert "Input bit 1 (o1):" in text and "read by h0, changes readouts from the same step" in text
    (warning,) = cell_warnings(load_spec(CELLS[0]))
    assert warning.startswith("input bit 0 (o0, most significant) of the tokens is never read")
    assert "{ local = 1 }" in warning and 'io = "site"' in warning and "o1" in warning
    site = reach(compile_program(CELLS[1], 3))
    assert site.unread == () and site.bits[0].readers == (2,) and site.bits[0].read_lag == 0


def test_warning_for_a_read_bit_that_reaches_no_readout():
    # o0 is read by h0, but h0 feeds nothing that reaches an i/o lane; nothing reads o1
    spec = load_spec(_cell(2, 2, {"custom": {"0": [1], "1": [3], "2": [0], "3": []}}))
    first, second = cell_warnings(spec)
    assert first.startswith("input bit 0") and "read by the neurons on h0" in first
    assert second.startswith("input bit 1 (o1) of the tokens is never read")
    assert "only the output neuron on o0 takes o1 as a source" in second
    assert "add lane 1 to the sources" in second


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_reads_every_input_bit(path):
    spec = load_spec(path)
    assert cell_warnings(spec) == ()
    assert reach(compile_program(spec, WARNING_STEPS)).unread == ()


def test_the_compiler_never_imports_torch():
    code = (
        "import sys, compiler, compiler.export, compiler.reach, compiler.passes; "
        "sys.exit('torch' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or "compiler imported torch"


def test_collapse_conditions_lanes_no_gate_connects_afterwards():
    """Projecting on a target reweights the workspace lanes correlated with the i/o lanes: a
    dependency a plain light cone (gates only) would miss."""
    program = compile_program(_cell(1, 1, "all", stages=0), 2, separate_targets=True)
    target = program.steps + 1  # the target of step 0
    assert reach(program).bits[0].collapse_lag == 1
    assert token_reach(program)[target, 0] == {1}
    changes = _flip_changes(program, seed=3)
    assert changes[target, 0][0] <= TOL < changes[target, 0][1]

"""Unrolling: token shifts, step segments and statistics checked by hand counts."""

import pytest

from compiler.ir import CompileError
from compiler.lower import lower_cell
from compiler.spec import load_spec
from compiler.unroll import compile_program, unroll

SPEC = {"cell": {"io": 2, "workspace": 3, "stages": 2}, "neuron": {"degree": 1, "order": 2}}


def test_tokens_and_readouts_are_absolute():
    spec = load_spec(SPEC)
    program = unroll(lower_cell(spec), 4, spec)
    readouts = [op.step for op in program.ops if op.kind == "readout"]
    projects = [op.token for op in program.ops if op.kind == "project"]
    assert readouts == [0, 1, 2, 3]
    assert projects == [1, 2, 3, 4]
    assert program.n_tokens == 5
    tokens = {op.bit.token for op in program.ops if op.kind == "wordx"}
    assert tokens == {0, 1, 2, 3, 4}


def test_separate_targets_follow_the_inputs_and_are_not_cancelled_against_them():
    spec = load_spec(SPEC)
    program = unroll(lower_cell(spec), 3, spec, separate_targets=True)
    assert program.n_tokens == 7 and program.target_tokens == [4, 5, 6]
    assert [op.token for op in program.ops if op.kind == "project"] == [4, 5, 6]
    resets = [op.bit.token for op in program.ops if op.kind == "wordx" and op.bit.token > 3]
    assert resets == [4, 4, 5, 5, 6, 6]  # X on the projected word's bits, io = 2
    # a plain program cancels each reset against the next write of the same token; with a
    # target stream they differ and stay (the last reset, after the last readout, goes)
    optimised = compile_program(SPEC, 3, separate_targets=True)
    kept = [op.bit.token for op in optimised.ops if op.kind == "wordx" and op.bit.token > 3]
    assert kept == [4, 4, 5, 5]
    plain = compile_program(SPEC, 3)
    assert [op.bit.token for op in plain.ops if op.kind == "wordx"] == [0, 0, 0, 0, 1, 1, 2, 2]
    assert compile_program(SPEC, 3).target_tokens == [1, 2, 3]


def test_segments_cover_every_op_once():
    program = compile_program(SPEC, steps=3)
    segments = program.segments()
    assert len(segments) == 3
    assert segments[0][0] == 0 and segments[-1][1] == len(program.ops)
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:], strict=False))
    for t, (start, stop) in enumerate(segments):
        readouts = [op for op in program.ops[start:stop] if op.kind == "readout"]
        assert [r.step for r in readouts] == [t]


def test_stats_match_hand_counts():
    program = compile_program(SPEC, steps=2)
    stats = program.stats()
    lanes, work, stages = 5, 3, 2
    neurons_per_step = work * (1 + stages) + 2
    assert stats["logical_qubits"] == lanes
    assert stats["ancillas"] == 2
    assert stats["parameters"] == neurons_per_step * lanes + stages * work  # degree 1: 1 + 4
    assert stats["operations"]["neuron"] == 2 * neurons_per_step
    assert stats["operations"]["gate:ry"] == 2 * stages * work
    # Order 2, degree 1, 4 sources: each neuron is 2 level-1 circuits of (1 ry + 4 cry,
    # 1 controlled -iY, inverse) plus the outer controlled -iY.
    per_neuron_mcry = 2 * (4 + 1 + 4) + 1
    assert stats["literal_operations"]["gate:mcry"] == 2 * neurons_per_step * per_neuron_mcry
    assert stats["literal_multi_qubit_gates"] == 2 * neurons_per_step * per_neuron_mcry
    assert stats["depth"] >= neurons_per_step


@pytest.mark.parametrize("steps", [0, -1, 1.5, True, 10**9])
def test_bad_step_counts(steps):
    with pytest.raises(CompileError, match="steps must be"):
        compile_program(SPEC, steps=steps)

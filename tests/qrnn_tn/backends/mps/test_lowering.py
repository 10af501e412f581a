"""MPS lowering: every neuron runs on a window holding exactly its lanes, swaps are undone,
tables are shared across steps, and what the MPS cannot run is refused by name."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from compiler.ir import Gate, Neuron, Postselect, Readout, WordX
from compiler.unroll import compile_program
from qrnn_tn.backends.mps.lowering import (
    ApplyNeuron,
    FlipOnBit,
    ProjectToken,
    ReadOut,
    Rotate,
    Swap,
    lower_mps,
)


def _program(topology, steps=2, work=5, stages=1):
    spec = {
        "cell": {"io": 2, "workspace": work, "stages": stages},
        "neuron": {"degree": 2, "order": 2, "topology": topology},
    }
    return compile_program(spec, steps=steps)


@pytest.mark.parametrize("topology", ["all", {"local": 1}, {"local": 2}])
@pytest.mark.parametrize("max_window", [2, 3, 10])
def test_each_neuron_window_holds_exactly_its_lanes_and_swaps_are_undone(topology, max_window):
    program = _program(topology)
    lowered = lower_mps(program, max_window)
    neurons = [op for op in program.ops if isinstance(op, Neuron)]
    lane_at = list(range(program.n_lanes))  # replayed independently of the lowering
    applied = []
    for ins in (ins for step in lowered.steps for ins in step):
        if isinstance(ins, Swap):
            lane_at[ins.pos], lane_at[ins.pos + 1] = lane_at[ins.pos + 1], lane_at[ins.pos]
        elif isinstance(ins, ApplyNeuron):
            op = neurons[len(applied)]
            window = lane_at[ins.a : ins.b + 1]
            assert set(op.qubits) <= set(window)
            assert lane_at[ins.target] == op.target
            if ins.b - ins.a + 1 > max(max_window, len(op.qubits)):
                pytest.fail(f"window {ins.a}…{ins.b} wider than allowed for {op}")
            table = lowered.neurons[ins.table]
            assert table.shape == (2 ** (ins.target - ins.a), 2 ** (ins.b - ins.target))
            applied.append(ins)
        elif isinstance(ins, ReadOut | ProjectToken):
            assert lane_at == list(range(program.n_lanes))
    assert len(applied) == len(neurons)
    assert lane_at == list(range(program.n_lanes))
    assert lowered.windows == [ins.b - ins.a + 1 for ins in applied]


def test_tables_are_shared_from_step_to_step():
    one, five = (lower_mps(_program({"local": 1}, steps=s, stages=2), 3) for s in (1, 5))
    assert len(five.neurons) == len(one.neurons)
    assert len(five.rotations) == len(one.rotations)
    assert sum(isinstance(i, ApplyNeuron) for s in five.steps for i in s) == 5 * sum(
        isinstance(i, ApplyNeuron) for s in one.steps for i in s
    )


def test_the_branch_table_follows_the_source_order():
    program = _program({"local": 1}, steps=1)
    lowered = lower_mps(program, 3)
    op = next(op for op in program.ops if isinstance(op, Neuron) and op.target == 3)
    ins = next(
        i
        for s in lowered.steps
        for i in s
        if isinstance(i, ApplyNeuron)
        and lowered.neurons[i.table].offset == op.offset
        and i.target == 3
    )
    table = lowered.neurons[ins.table]
    others = [p for p in range(ins.a, ins.b + 1) if p != ins.target]
    width = len(others)
    for state, branch in enumerate(table.branch):
        bits = {others[i]: (state >> (width - 1 - i)) & 1 for i in range(width)}
        expected = sum(bits[q] << (len(op.sources) - 1 - j) for j, q in enumerate(op.sources))
        assert branch == expected
    np.testing.assert_array_equal(table.monomials, op.monomials())


def test_inputs_rotations_readouts_and_projections_keep_their_arguments():
    program = _program({"local": 1}, steps=2, stages=2)
    lowered = lower_mps(program, 3)
    flat = [i for s in lowered.steps for i in s]
    assert [i.step for i in flat if isinstance(i, ReadOut)] == [0, 1]
    assert [i.token for i in flat if isinstance(i, ProjectToken)] == [1]  # none after the last
    writes = [(o.qubit, o.bit.token, o.bit.bit) for o in program.ops if isinstance(o, WordX)]
    assert writes
    assert [(i.pos, i.token, i.bit) for i in flat if isinstance(i, FlipOnBit)] == writes
    assert all(0 <= i.rotation < len(lowered.rotations) for i in flat if isinstance(i, Rotate))


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (Gate("x", (2,)), "RY only, not x"),
        (Postselect(3), "cannot run postselect"),
        (Readout((1, 2), 0), r"readout on \(1, 2\)"),
    ],
)
def test_what_the_mps_cannot_run_is_refused_by_name(op, message):
    program = _program({"local": 1}, steps=1)
    if isinstance(op, Readout):  # in place of the program's own readout
        ops = [op if isinstance(o, Readout) else o for o in program.ops]
    else:
        ops = [op, *program.ops]
    program = replace(program, dag=program.dag.with_ops(ops))
    with pytest.raises(ValueError, match=message):
        lower_mps(program, 3)

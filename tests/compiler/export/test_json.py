"""The JSON export: exact round trips of fuzzed programs and clear errors on malformed text."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.export import from_json, to_json
from compiler.ir import CompileError
from compiler.unroll import compile_program


@st.composite
def programs(draw):
    io, workspace = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    topology = draw(st.sampled_from(["all", {"local": 1}]))
    max_sources = io + workspace - 1 if topology == "all" else min(2, io + workspace - 1)
    spec = {
        "name": draw(st.text(max_size=8)),
        "cell": {"io": io, "workspace": workspace, "stages": draw(st.integers(0, 2))},
        "neuron": {
            "degree": draw(st.integers(1, max_sources)),
            "order": draw(st.integers(1, 2)),
            "topology": topology,
            "offset": draw(st.floats(-10, 10, allow_nan=False)),
        },
        "init": {"bias_std": draw(st.floats(0, 1))},
    }
    return compile_program(
        spec,
        steps=draw(st.integers(1, 3)),
        optimise=draw(st.booleans()),
        literal=draw(st.booleans()),
        separate_targets=draw(st.booleans()),
    )


@settings(max_examples=15)
@given(programs())
def test_json_round_trip_is_exact(program):
    text = to_json(program)
    back = from_json(text)
    assert back == program
    assert back.spec == program.spec and back.steps == program.steps
    assert back.separate_targets == program.separate_targets
    assert back.slots == program.slots
    assert back.dag.n_qubits == program.dag.n_qubits
    assert to_json(back) == text


def test_json_round_trip_custom_topology_and_exact_angles():
    spec = {
        "cell": {"io": 1, "workspace": 2},
        "neuron": {"topology": {"custom": {"0": [2], "1": [0, 2], "2": []}}, "offset": 0.1 + 0.2},
    }
    program = compile_program(spec, steps=2, literal=True)
    back = from_json(to_json(program))
    assert back == program and back.slots == program.slots
    consts = [op.angle.const for op in back.ops if op.kind == "gate" and op.name == "ry"]
    assert 0.1 + 0.2 in consts  # 0.30000000000000004, not 0.3


SMALL = {"cell": {"io": 1, "workspace": 1}, "neuron": {"degree": 1, "order": 1}}


def _mutated(mutate):
    data = json.loads(to_json(compile_program(SMALL, steps=2)))
    mutate(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="qiskit"), "'qiskit'; expected 'qrnn-tn.program'"),
        (lambda d: d.update(version=2), '"version" is 2'),
        (lambda d: d["ops"][0].update(kind="swap"), "unknown op kind 'swap'"),
        (lambda d: d["ops"][0].pop("qubit"), "ops[0] (wordx): missing field 'qubit'"),
        (lambda d: d["ops"][2].update(qubits="0"), "ops[2] (gate).qubits"),
        (lambda d: d["ops"][1].update(slots=[0, 99]), "ops[1] (neuron): refers to a slot"),
        (lambda d: d.pop("steps"), "missing field 'steps'"),
        (lambda d: d["slots"].pop(), "expected a list of"),
        (lambda d: d.update(extra=1), "unknown fields ['extra']"),
        (lambda d: d["spec"]["cell"].update(io=0), "spec: cell.io"),
        (lambda d: d.update(separate_targets="yes"), "separate_targets: got 'yes'"),
        (
            lambda d: next(op for op in d["ops"] if op["kind"] == "project").update(token=3),
            "token 3 outside 0 … 2",
        ),
    ],
)
def test_from_json_rejects_malformed_input(mutate, message):
    with pytest.raises(CompileError) as err:
        from_json(_mutated(mutate))
    assert message in str(err.value)


def test_from_json_rejects_non_json():
    with pytest.raises(CompileError, match="not valid JSON"):
        from_json("{format: 1")


def test_json_round_trip_of_a_local_chain_with_the_io_site():
    spec = {"cell": {"io": 2, "workspace": 3}, "neuron": {"topology": {"local": 1, "io": "site"}}}
    program = compile_program(spec, steps=2)
    again = from_json(to_json(program))
    assert again == program and again.spec.neuron.topology.io == "site"

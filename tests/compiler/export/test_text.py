"""The shared text pieces of the exports, against strings written by hand."""

import math

import pytest

from compiler.export.text import cell_text, number, qubit_names, symbolic
from compiler.ir import Angle, CompileError, GateDAG
from compiler.spec import load_spec


def test_qubit_names_are_io_then_workspace_then_ancillas():
    dag = GateDAG(ops=(), n_lanes=3, n_qubits=5, io=1, slots=())
    assert qubit_names(dag) == ["o0", "h0", "h1", "a0", "a1"]


@pytest.mark.parametrize(
    ("angle", "text"),
    [
        (Angle(0.0, ()), "0.0"),
        (Angle(-1.5, ()), "-1.5"),
        (Angle(0.0, ((3, 1.0),)), "t3"),
        (Angle(0.0, ((3, -1.0),)), "-t3"),
        (Angle(0.0, ((3, -2.0),)), "-2.0 * t3"),
        (
            Angle(0.25, ((1, 1.0), (2, -1.0), (4, 0.5), (5, -3.0))),
            "0.25 + t1 - t2 + 0.5 * t4 - 3.0 * t5",
        ),
        (Angle(0.1 + 0.2, ((0, 1.0),)), "0.30000000000000004 + t0"),
    ],
)
def test_symbolic_angles(angle, text):
    assert symbolic(angle, lambda slot: f"t{slot}") == text


def test_numbers_must_be_finite():
    assert number(math.pi) == "3.141592653589793"
    with pytest.raises(CompileError, match="angle inf is not finite"):
        number(math.inf)


def test_cell_text():
    spec = load_spec(
        {
            "cell": {"io": 2, "workspace": 3, "stages": 1},
            "neuron": {"degree": 2, "order": 1, "topology": {"local": 1, "io": "site"}},
        }
    )
    assert cell_text(spec) == (
        "io 2, workspace 3, stages 1; degree 2, order 1, topology local 1, i/o lanes one site"
    )

"""The shared text pieces of the exports, against strings written by hand."""

from compiler.export.text import cell_text, qubit_names
from compiler.ir import GateDAG
from compiler.spec import load_spec


def test_qubit_names_are_io_then_workspace_then_ancillas():
    dag = GateDAG(ops=(), n_lanes=3, n_qubits=5, io=1, slots=())
    assert qubit_names(dag) == ["o0", "h0", "h1", "a0", "a1"]


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

"""Text shared by the exports: qubit names, the cell line and the slot kinds.

Qubit 0 is the most significant bit of a word everywhere (QRNN.md §1).
"""

from __future__ import annotations

from compiler.ir import GateDAG
from compiler.spec import CellSpec

#: The kinds of parameter slot, in the order the summary counts them.
SLOT_KINDS = ("bias", "weight", "rotation")


def qubit_names(dag: GateDAG) -> list[str]:
    """``o<i>`` for i/o lanes, ``h<j>`` for workspace lanes, ``a<k>`` for ancillas."""
    return [
        f"o{q}" if q < dag.io else f"h{q - dag.io}" if q < dag.n_lanes else f"a{q - dag.n_lanes}"
        for q in range(dag.n_qubits)
    ]


def _topology_text(spec: CellSpec) -> str:
    topology = spec.neuron.topology
    if topology.kind == "local":
        site = ", i/o lanes one site" if topology.io == "site" else ""
        return f"local {topology.radius}{site}"
    return topology.kind


def cell_text(spec: CellSpec) -> str:
    """One line on the cell: io, workspace, stages, degree, order and topology."""
    return (
        f"io {spec.io}, workspace {spec.workspace}, stages {spec.stages}; degree "
        f"{spec.neuron.degree}, order {spec.neuron.order}, topology {_topology_text(spec)}"
    )

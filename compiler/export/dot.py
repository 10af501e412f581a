"""Graphviz DOT of a gate DAG: one node per operation, one edge per wire segment.

Angles in the labels are written as in the OpenQASM 3 export, with slot names for the
parameters and the constant rounded to six significant digits.
"""

from __future__ import annotations

from compiler.export.qasm3.exporter import angle_expression
from compiler.export.qasm3.printer import print_expression
from compiler.export.text import qubit_names
from compiler.ir import Angle, GateDAG, Operation
from compiler.unroll import Program

__all__ = ["to_dot"]


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _op_label(op: Operation, names: list[str], slot_names: list[str]) -> str:
    wires = ",".join(names[q] for q in op.qubits)
    if op.kind == "gate":
        if op.angle is None:
            return f"{op.name.upper()} {wires}"
        expr = angle_expression(
            Angle(float(f"{op.angle.const:.6g}"), op.angle.terms),
            lambda s: slot_names[s] if s < len(slot_names) else f"theta_{s}",
        )
        text = print_expression(expr)
        return f"{op.name.upper()}({text}) {wires}"
    if op.kind == "wordx":
        return f"X if w{op.bit.token}[{op.bit.bit}] {wires}"
    if op.kind == "neuron":
        sources = ",".join(names[q] for q in op.sources)
        return f"N {op.label or names[op.target]} ({sources})"
    if op.kind == "postselect":
        return f"postselect {wires}"
    if op.kind == "readout":
        return f"readout t={op.step} ({wires})"
    return f"project w{op.token} ({wires})"


def to_dot(program_or_dag: Program | GateDAG) -> str:
    """Graphviz DOT of the gate DAG: one node per operation, one edge per wire segment.

    Nodes ``n<i>`` follow the operation order and are labelled by the operation (slot names
    for angles); edges carry the qubit names they follow. The text is deterministic.
    """
    dag = program_or_dag.dag if isinstance(program_or_dag, Program) else program_or_dag
    names, slot_names = qubit_names(dag), [s.name for s in dag.slots]
    lines = ["digraph qrnn {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for i, op in enumerate(dag.ops):
        lines.append(f'  n{i} [label="{_dot_escape(_op_label(op, names, slot_names))}"];')
    for u, v, data in sorted(dag.graph.edges(data=True), key=lambda e: (e[0], e[1])):
        label = ",".join(names[q] for q in data["wires"])
        lines.append(f'  n{u} -> n{v} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"

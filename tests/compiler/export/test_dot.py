"""The DOT export against the DAG's own node and edge sets."""

import re

import pytest

from compiler.export import to_dot
from compiler.unroll import compile_program

LOCAL = {
    "cell": {"io": 2, "workspace": 2},
    "neuron": {"degree": 2, "order": 1, "topology": {"local": 1}},
}


@pytest.mark.parametrize("literal", [False, True])
def test_dot_has_one_node_per_op_and_one_edge_per_dag_edge(literal):
    program = compile_program(LOCAL, steps=2, literal=literal)
    text = to_dot(program)
    nodes = re.findall(r"^  n(\d+) \[label=\"((?:[^\"\\]|\\.)*)\"\];$", text, re.M)
    edges = re.findall(r"^  n(\d+) -> n(\d+) \[label=\"([^\"]*)\"\];$", text, re.M)
    graph = program.dag.graph
    assert text.startswith("digraph qrnn {") and text.rstrip().endswith("}")
    assert [int(i) for i, _ in nodes] == list(range(graph.number_of_nodes()))
    assert {(int(u), int(v)) for u, v, _ in edges} == set(graph.edges)
    assert len(edges) == graph.number_of_edges()
    assert to_dot(program.dag) == text
    if not literal:
        assert 'label="N in.h0 (o1,h1)"' in text  # local radius 1 around lane 2

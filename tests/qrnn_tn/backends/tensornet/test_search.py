"""Contraction-tree search: the linear sweep width against cotengra's width of the sweep."""

from __future__ import annotations

import pytest

from compiler.unroll import compile_program
from qrnn_tn.backends.tensornet.network import iter_networks
from qrnn_tn.backends.tensornet.search import sweep_tree, sweep_width

CELLS = [
    ({"cell": {"io": 1, "workspace": 3}, "neuron": {"degree": 2, "order": 2}}, 3),
    ({"cell": {"io": 2, "workspace": 6}, "neuron": {"degree": 2, "topology": {"local": 1}}}, 2),
    ({"cell": {"io": 1, "workspace": 5}, "neuron": {"degree": 1, "order": 1}}, 2),
]


@pytest.mark.parametrize("form", ["hyper", "literal"])
@pytest.mark.parametrize(("spec", "steps"), CELLS)
def test_sweep_width_equals_cotengras_width_of_the_sweep_tree(spec, steps, form):
    program = compile_program(spec, steps=steps)
    for net in iter_networks(program, 2, form):
        assert sweep_width(net) == pytest.approx(sweep_tree(net).contraction_width())

"""The summary against counts worked out by hand from QRNN.md §5."""

import math
import re

from compiler.export import summary
from compiler.unroll import compile_program


class _Cost:
    def describe(self):
        return "backend: fake (exact)"


def test_summary_of_the_paper_memorisation_cell():
    spec = {
        "name": "memorisation",
        "cell": {"io": 3, "workspace": 5, "stages": 2},
        "neuron": {"degree": 3, "order": 2},
    }
    program = compile_program(spec, steps=1)
    text = summary(program, _Cost())
    n_src = 7
    per_neuron = sum(math.comb(n_src, i) for i in range(4))
    assert (5 + 2 * 5 + 3) * per_neuron + 2 * 5 == 1162
    assert re.search(r"Parameters:\s+1162 \(", text)
    assert re.search(r"neuron:\s+18$", text, re.M)  # (H + S·H + I) neurons per step
    assert re.search(r"Logical qubits:\s+8 \(3 i/o \+ 5 workspace\)", text)
    assert re.search(r"Ancillas \(literal\):\s+2$", text, re.M)
    assert text.rstrip().endswith("backend: fake (exact)")


def test_summary_of_a_local_chain_with_the_io_site():
    spec = {"cell": {"io": 2, "workspace": 3}, "neuron": {"topology": {"local": 1, "io": "site"}}}
    text = summary(compile_program(spec, steps=2))
    assert "topology local 1, i/o lanes one site" in text
    assert re.search(r"Input bit 0 \(o0, most significant\):\s+read by h0, changes", text)

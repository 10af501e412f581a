"""Program exports: lossless JSON, OpenQASM 3 of the literal circuit, Graphviz DOT, a summary.

One module a format (:mod:`~compiler.export.json`, :mod:`~compiler.export.qasm3`,
:mod:`~compiler.export.dot`, :mod:`~compiler.export.report`); this package re-exports their
public functions. Qubit 0 / bit 0 of a word is the most significant everywhere (QRNN.md §1);
exports name the qubits ``o<i>`` (i/o lanes), ``h<j>`` (workspace lanes) and ``a<k>``
(ancillas, after the lanes).
"""

from compiler.export.dot import to_dot
from compiler.export.json import FORMAT, VERSION, from_json, to_json
from compiler.export.qasm3 import to_qasm3
from compiler.export.report import summary
from compiler.export.text import qubit_names

__all__ = [
    "FORMAT",
    "VERSION",
    "to_json",
    "from_json",
    "to_qasm3",
    "to_dot",
    "summary",
    "qubit_names",
]

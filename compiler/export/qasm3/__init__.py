"""OpenQASM 3 export: statements built from a program, then printed.

The statements are :mod:`~compiler.export.qasm3.ast`'s, built by
:mod:`~compiler.export.qasm3.exporter` and printed by :mod:`~compiler.export.qasm3.printer`.
"""

from compiler.export.qasm3.exporter import build_program, to_qasm3

__all__ = ["build_program", "to_qasm3"]

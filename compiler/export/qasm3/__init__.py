"""OpenQASM 3 export: statements (:mod:`~compiler.export.qasm3.ast`) built from a program
(:mod:`~compiler.export.qasm3.exporter`), then printed (:mod:`~compiler.export.qasm3.printer`).
"""

from compiler.export.qasm3.exporter import build_program, to_qasm3

__all__ = ["build_program", "to_qasm3"]

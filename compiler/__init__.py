"""Cell specs to gate DAGs, programs and circuit exports (pure Python, no torch).

The flow is ``load_spec`` → ``lower_cell`` → ``unroll`` → ``optimise``, wrapped by
:func:`compile_program`; ``compiler.export`` writes JSON, OpenQASM 3, DOT and summaries;
:func:`reach` says which input bits can change which readouts.
"""

from compiler.ir import CompileError, GateDAG
from compiler.lower import decompose_neurons, lower_cell
from compiler.passes import optimise
from compiler.reach import Reach, reach
from compiler.spec import CellSpec, SpecError, load_spec
from compiler.unroll import Program, compile_program, unroll

__all__ = [
    "CellSpec",
    "CompileError",
    "GateDAG",
    "Program",
    "Reach",
    "SpecError",
    "compile_program",
    "decompose_neurons",
    "load_spec",
    "lower_cell",
    "optimise",
    "reach",
    "unroll",
]

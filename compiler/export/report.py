"""A plain-text summary of a program: sizes, operation counts and what the readouts see."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from compiler.export.text import SLOT_KINDS, cell_text
from compiler.reach import reach
from compiler.unroll import Program

__all__ = ["HasDescribe", "summary"]


class HasDescribe(Protocol):
    """Anything with a ``describe()`` text, e.g. a backend plan's ``Cost``."""

    def describe(self) -> str:
        """Return the object's description."""
        ...


def summary(program: Program, cost: HasDescribe | None = None) -> str:
    """Summarise the program in plain text (as opt_einsum's ``PathInfo``).

    It ends with what the readouts can see (:func:`compiler.reach.reach`): per input bit,
    whether a neuron reads it and from how many steps back it can change a readout.

    Parameters
    ----------
    program
        The program; its :meth:`~compiler.unroll.Program.stats` are printed.
    cost
        Optional object with ``describe()`` (a backend plan's ``Cost``), appended.
    """
    stats = program.stats()
    spec = program.spec
    kinds = Counter(slot.kind for slot in program.slots)
    by_kind = ", ".join(f"{kinds[k]} {k}" for k in SLOT_KINDS if kinds[k])
    literal = stats["literal_operations"]
    rows = [
        ("Cell", cell_text(spec)),
        ("Steps", f"{stats['steps']} (sequences of {program.n_tokens} tokens)"),
        (
            "Logical qubits",
            f"{stats['logical_qubits']} ({stats['io']} i/o + {stats['workspace']} workspace)",
        ),
        ("Ancillas (literal)", str(stats["ancillas"])),
        ("Parameters", f"{stats['parameters']} ({by_kind})" if by_kind else "0"),
        ("Operations", str(sum(stats["operations"].values()))),
        *((f"  {kind.replace(':', ' ')}", str(n)) for kind, n in stats["operations"].items()),
        ("Depth", str(stats["depth"])),
        ("Multi-qubit operations", str(stats["multi_qubit_ops"])),
        (
            "Literal circuit",
            f"{stats['logical_qubits'] + stats['ancillas']} qubits, "
            f"{sum(literal.values())} operations, "
            f"{stats['literal_multi_qubit_gates']} multi-qubit gates",
        ),
        *((f"  {kind.replace(':', ' ')}", str(n)) for kind, n in literal.items()),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"QRNN program {spec.name!r}" if spec.name else "QRNN program"]
    lines += [f"  {label + ':':<{width}}{value}" for label, value in rows]
    lines += ["", str(reach(program))]
    if cost is not None:
        lines += ["", cost.describe()]
    return "\n".join(lines) + "\n"

"""The warning that ``compile``, ``simulate`` and ``train`` give for input bits no readout sees."""

from __future__ import annotations

import sys

from compiler.reach import cell_warnings
from compiler.spec import CellSpec

__all__ = ["warn_unread"]


def warn_unread(command: str, spec: CellSpec) -> None:
    """Print one line on stderr per input bit that ``spec``'s cell can never read."""
    for line in cell_warnings(spec):
        print(f"qrnn-tn {command}: warning: {line}", file=sys.stderr)

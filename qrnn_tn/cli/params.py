"""Parameters for the command line: a ``--params`` JSON file or a ``--seed``.

Both ``compile`` and ``simulate`` read parameters the same way, so that the same file or
seed gives the same angles in an exported circuit and in a simulation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compiler.unroll import Program
from qrnn_tn.cli import UsageError
from qrnn_tn.jsonio import read_json
from qrnn_tn.model import init_params

__all__ = ["load_params", "program_params"]


def program_params(program: Program, path: str | Path | None, seed: int | None) -> torch.Tensor:
    """Parameters from ``path`` if given, else drawn with the spec's init from ``seed``."""
    if path is not None:
        return torch.as_tensor(load_params(Path(path), program))
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    return init_params(program, program.spec, generator)


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:5])
    return shown + (f", … ({len(items)} in all)" if len(items) > 5 else "")


def load_params(path: Path, program: Program) -> np.ndarray:
    """Parameters from a JSON array (canonical order) or object keyed by slot name."""
    where = f"--params {path}"
    data: Any = read_json(path, "--params", UsageError)
    names = [slot.name for slot in program.slots]
    if isinstance(data, list):
        if len(data) != len(names):
            raise UsageError(
                f"{where}: {len(data)} values, but this program has {len(names)} parameters "
                "(a JSON array lists them in canonical slot order, QRNN.md §5)"
            )
        values = data
    elif isinstance(data, dict):
        unknown = [key for key in data if key not in set(names)]
        if unknown:
            raise UsageError(
                f"{where}: unknown slot names {_names(unknown)}; names look like "
                f"{names[0]!r} (see `qrnn-tn compile SPEC --format json`)"
            )
        missing = [name for name in names if name not in data]
        if missing:
            raise UsageError(f"{where}: no value for slots {_names(missing)}")
        values = [data[name] for name in names]
    else:
        raise UsageError(f"{where}: expected a JSON array or object, got {type(data).__name__}")
    for name, value in zip(names, values, strict=True):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise UsageError(f"{where}: slot {name!r} has {shown}; expected a finite number")
    return np.array(values, dtype=float)


def _finite(value: float) -> bool:
    """Whether ``value`` is a float64 number (an int beyond its range is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False

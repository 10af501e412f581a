"""Simulation dtypes: their names and the real dtype of each (the parameters' dtype).

The model is real, so float64 is the default; complex dtypes run the same real amplitudes
in complex arithmetic (for checks against complex simulators).
"""

from __future__ import annotations

import torch

from qrnn_tn.errors import BackendError

__all__ = ["DTYPE_NAMES", "REAL_DTYPES", "parse_dtype", "real_dtype"]

#: The simulation dtypes by name, as the command line and ``config.json`` write them.
DTYPE_NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}

#: Each simulation dtype's real counterpart (complex64 → float32 …).
REAL_DTYPES: dict[torch.dtype, torch.dtype] = {
    torch.float32: torch.float32,
    torch.float64: torch.float64,
    torch.complex64: torch.float32,
    torch.complex128: torch.float64,
}


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Return a simulation dtype from its name (``"float32"`` …) or a ``torch.dtype``."""
    if isinstance(dtype, torch.dtype) and dtype in REAL_DTYPES:
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPE_NAMES:
        return DTYPE_NAMES[dtype.removeprefix("torch.")]
    raise BackendError(f"dtype {dtype!r} is not supported; accepted: {', '.join(DTYPE_NAMES)}")


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the parameters' real dtype for a simulation ``dtype`` (complex64 → float32 …)."""
    if dtype not in REAL_DTYPES:
        raise BackendError(
            f"dtype {dtype} is not supported; accepted: {', '.join(map(str, REAL_DTYPES))}"
        )
    return REAL_DTYPES[dtype]

"""Simulation backends: the shared contract (:mod:`qrnn_tn.backends.base`) and its registry.

Importing this package imports every backend module, so each registers itself with
:func:`register_backend`; :func:`choose` then picks among them.
"""

from __future__ import annotations

from qrnn_tn.backends.base import (
    BackendChoice,
    BackendError,
    BackendOptions,
    Cost,
    Estimate,
    Plan,
    RunResult,
    available_memory,
    backend_names,
    check_backend_options,
    choose,
    get_backend,
    rank_backends,
    register_backend,
)
from qrnn_tn.backends.options import (
    MPSOptions,
    SpecificOptions,
    StatevectorOptions,
    TensorNetOptions,
    default_cache_dir,
    describe_options,
    options_as_dict,
    resolve_backend_options,
)

__all__ = [
    "available_memory",
    "backend_names",
    "BackendChoice",
    "BackendError",
    "BackendOptions",
    "Estimate",
    "check_backend_options",
    "choose",
    "Cost",
    "default_cache_dir",
    "describe_options",
    "get_backend",
    "MPSOptions",
    "options_as_dict",
    "Plan",
    "rank_backends",
    "readout_inds",
    "register_backend",
    "resolve_backend_options",
    "RunResult",
    "SpecificOptions",
    "StatevectorOptions",
    "TensorNetOptions",
    "to_quimb",
]

# Importing the backend modules registers them (in this order).
from qrnn_tn.backends import mps, statevector, tensornet  # noqa: E402, F401
from qrnn_tn.backends.tensornet.quimb import readout_inds, to_quimb  # noqa: E402

"""Simulation backends: the shared contract (:mod:`qrnn_tn.backends.base`) and its registry.

The backend modules register themselves with :func:`register_backend`; the registry imports
them on its first lookup (:func:`backend_names`, :func:`get_backend`, :func:`choose`), so
importing this package or its options imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from qrnn_tn.lazy import lazy_attributes

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

if TYPE_CHECKING:
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
    from qrnn_tn.backends.tensornet.quimb import readout_inds, to_quimb

#: Names imported on first use: the contract and the backends import torch, the options do
#: not (so the command line builds its parser without torch).
_LAZY = {
    "BackendChoice": "qrnn_tn.backends.base",
    "BackendError": "qrnn_tn.backends.base",
    "BackendOptions": "qrnn_tn.backends.base",
    "Cost": "qrnn_tn.backends.base",
    "Estimate": "qrnn_tn.backends.base",
    "Plan": "qrnn_tn.backends.base",
    "RunResult": "qrnn_tn.backends.base",
    "available_memory": "qrnn_tn.backends.base",
    "backend_names": "qrnn_tn.backends.base",
    "check_backend_options": "qrnn_tn.backends.base",
    "choose": "qrnn_tn.backends.base",
    "get_backend": "qrnn_tn.backends.base",
    "rank_backends": "qrnn_tn.backends.base",
    "register_backend": "qrnn_tn.backends.base",
    "readout_inds": "qrnn_tn.backends.tensornet.quimb",
    "to_quimb": "qrnn_tn.backends.tensornet.quimb",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

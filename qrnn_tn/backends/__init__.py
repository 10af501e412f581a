"""Simulation backends: the shared contract (:mod:`qrnn_tn.backends.base`) and its registry.

Importing this package imports every backend module that exists in this installation, so each
registers itself with :func:`register_backend`; :func:`choose` then picks among them.
"""

from __future__ import annotations

import importlib

from qrnn_tn.backends.base import (
    BackendError,
    BackendOptions,
    Cost,
    Plan,
    RunResult,
    available_memory,
    backend_names,
    choose,
    get_backend,
    register_backend,
)

__all__ = [
    "BackendError",
    "BackendOptions",
    "Cost",
    "Plan",
    "RunResult",
    "available_memory",
    "backend_names",
    "choose",
    "get_backend",
    "register_backend",
]

#: Backend modules, imported (when present) so that they register.
BACKEND_MODULES = ("statevector", "tensornet", "mps")


def _import_backends() -> None:
    for name in BACKEND_MODULES:
        try:
            importlib.import_module(f"qrnn_tn.backends.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"qrnn_tn.backends.{name}":
                raise


_import_backends()

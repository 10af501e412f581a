"""The error base of the project, defined in its lowest layer.

:class:`Error` is the base of every error qrnn-tn raises on purpose, from the compiler
(:class:`~compiler.spec.SpecError`, :class:`~compiler.ir.CompileError`) to the simulators
and training; ``qrnn_tn.Error`` is the same class. The compiler cannot import ``qrnn_tn``
(it is torch-free and nothing points back up), so the base lives here.
"""

from __future__ import annotations

__all__ = ["Error"]


class Error(Exception):
    """Base of every error qrnn-tn raises on purpose (catch it to catch them all)."""

"""The project's errors: one base and one type per layer beneath it.

The base, :class:`Error`, is defined in :mod:`compiler.errors`, the lowest layer. Each type keeps
the built-in parent it had (``ValueError`` for bad input, ``RuntimeError`` for a run that cannot go
ahead), so code that catches those keeps working.
"""

from __future__ import annotations

from compiler.errors import Error

__all__ = ["Error", "BackendError"]


class BackendError(Error, RuntimeError):
    """A backend cannot run a program as asked (too large, bad input or option, unsupported)."""

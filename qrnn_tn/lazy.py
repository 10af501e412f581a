"""Module attributes imported on first use (PEP 562), so light imports stay light.

``qrnn_tn`` and ``qrnn_tn.backends`` export names whose modules import torch; with these
hooks, importing the packages (and the command line, which checks its input first) does not.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a module's ``__getattr__`` and ``__dir__`` for ``names`` (name → module).

    A name is imported from its module when first read and then kept in the package's
    namespace, so later reads are plain attribute lookups.
    """

    def __getattr__(name: str) -> Any:  # noqa: N807 (the module hook's name)
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__

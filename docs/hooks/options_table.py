"""MkDocs hook: replace ``<!-- options-table -->`` with a table of every backend's options.

The table is generated from the typed option classes in :mod:`qrnn_tn.backends.options`
(``OPTIONS_BY_BACKEND``: backend name → frozen dataclass whose fields carry
``metadata={"help": ...}`` and a default), so the page cannot drift from the code. Where
that module is not importable the marker becomes a note instead of failing the build.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Any

MARKER = "<!-- options-table -->"
MODULE = "qrnn_tn.backends.options"


def _type_text(owner: type, field: dataclasses.Field) -> str:
    """The field's annotation as written (resolved where possible, else its string form)."""
    try:
        hint = typing.get_type_hints(owner).get(field.name, field.type)
    except Exception:  # noqa: BLE001 - unresolvable forward references keep their text
        hint = field.type
    text = hint if isinstance(hint, str) else getattr(hint, "__name__", None) or str(hint)
    return str(text).replace("typing.", "").replace("|", "\\|")


def _default_text(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return f"`{field.default!r}`"
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f"`{field.default_factory()!r}`"  # type: ignore[misc]
    return "required"


def options_table(by_backend: dict[str, type]) -> str:
    """A markdown table (backend, option, type, default, meaning) of ``by_backend``."""
    rows = [
        "| backend | option | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for backend, cls in by_backend.items():
        for field in dataclasses.fields(cls):
            meaning = str(field.metadata.get("help", "")).replace("|", "\\|").replace("\n", " ")
            rows.append(
                f"| `{backend}` | `{field.name}` | `{_type_text(cls, field)}` "
                f"| {_default_text(field)} | {meaning} |"
            )
    return "\n".join(rows)


def _table_or_note() -> str:
    try:
        module = importlib.import_module(MODULE)
        by_backend: dict[str, Any] = module.OPTIONS_BY_BACKEND
    except (ImportError, AttributeError) as err:
        return (
            '!!! note "Options table not available"\n'
            f"    The typed option classes (`{MODULE}`) are not in this build ({err}); "
            "`qrnn-tn train --help` and each backend's module documentation list the options."
        )
    return options_table(by_backend)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs event: expand the marker on any page that contains it."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, _table_or_note())

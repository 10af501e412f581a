"""MkDocs hook: replace ``<!-- options-table -->`` with a table of every backend's options.

The table is generated from the typed option classes in :mod:`qrnn_tn.backends.options`
(``OPTIONS_BY_BACKEND``: backend name → frozen dataclass whose fields carry
``metadata={"help": ...}`` and a default), so the page cannot drift from the code. Where
that module is not importable the marker becomes a note instead of failing the build.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import typing
from pathlib import Path
from typing import Any

#: The repository root: its own package, not an installed copy elsewhere, documents the build.
ROOT = str(Path(__file__).resolve().parents[2])
MARKER = "<!-- options-table -->"
MODULE = "qrnn_tn.backends.options"


def _type_text(owner: type, field: dataclasses.Field) -> str:
    """Return the field's annotation as written (resolved where possible, else its string form)."""
    try:
        hint = typing.get_type_hints(owner).get(field.name, field.type)
    except Exception:  # noqa: BLE001 - unresolvable forward references keep their text
        hint = field.type
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    return str(text).replace("typing.", "")


def _default_text(field: dataclasses.Field) -> str:
    """Return the default as code; a computed (machine-dependent) default is described."""
    if field.default is not dataclasses.MISSING:
        return "none" if field.default is None else repr(field.default)
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return "see meaning"
    return "required"


def _cell(text: str) -> str:
    """``text`` safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def option_rows(by_backend: dict[str, type]) -> list[tuple[str, str, str, str, str]]:
    """Rows ``(backend, option, type, default, meaning)`` from the dataclass fields."""
    return [
        (backend, f.name, _type_text(cls, f), _default_text(f), f.metadata.get("help", ""))
        for backend, cls in sorted(by_backend.items())
        for f in dataclasses.fields(cls)
    ]


def options_table(rows: list[tuple[str, str, str, str, str]]) -> str:
    """Return a markdown table (backend, option, type, default, meaning) of ``rows``."""
    lines = ["| backend | option | type | default | meaning |", "|---|---|---|---|---|"]
    for backend, name, kind, default, meaning in rows:
        lines.append(
            f"| `{backend}` | `{name}` | {_cell(kind)} | `{_cell(default)}` | {_cell(meaning)} |"
        )
    return "\n".join(lines)


def _table_or_note() -> str:
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    try:
        module = importlib.import_module(MODULE)
        by_backend: dict[str, Any] = module.OPTIONS_BY_BACKEND
    except (ImportError, AttributeError) as err:
        return (
            '!!! note "Options table not available"\n'
            f"    The typed option classes (`{MODULE}`) are not in this build ({err}); "
            "`qrnn-tn train --help` and each backend's module documentation list the options."
        )
    describe = getattr(module, "describe_options", None)  # the module's own wording, if any
    return options_table(list(describe()) if describe else option_rows(by_backend))


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs event: expand the marker on any page that contains it."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, _table_or_note())

"""Strict JSON in and out: every JSON the project writes, and the user's JSON files it reads.

Written JSON is strict (RFC 8259): a non-finite float (NaN, ±inf), which ``json.dumps``
would write as the bare words ``NaN`` / ``Infinity`` that other readers reject, is written
as ``null``. Reading a user's file turns every way it can fail (not UTF-8, not JSON,
integers of more than 4,300 digits, nesting deeper than the parser's recursion) into the
caller's error type with a message that names the file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["dumps", "finite_or_none", "read_text", "loads", "read_json"]


def finite_or_none(data: Any) -> Any:
    """Return ``data`` with every non-finite float (also in lists, tuples, dicts) as ``None``."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite_or_none(value) for value in data]
    return data


def dumps(data: Any, **kwargs: Any) -> str:
    """``json.dumps`` that writes strict JSON: non-finite floats become ``null``."""
    return json.dumps(finite_or_none(data), allow_nan=False, **kwargs)


def read_text(path: str | os.PathLike, what: str, error: type[Exception]) -> str:
    """Return the UTF-8 text of ``path``; an unreadable or non-UTF-8 file raises ``error``.

    ``what`` names the file's role in the message (e.g. ``"--params"``).
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise error(f"{what} {path}: cannot be read ({err.strerror or err})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(
            f"{what} {path}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8"
        ) from None


def loads(text: str, what: str, error: type[Exception]) -> Any:
    """``json.loads(text)``; a parse failure of any kind raises ``error`` naming ``what``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{what}: not valid JSON ({err})") from None
    except RecursionError:
        raise error(f"{what}: JSON nested too deeply to read") from None
    except ValueError:  # int() refuses more than 4300 digits
        raise error(f"{what}: a JSON number with too many digits (over 4300)") from None


def read_json(path: str | os.PathLike, what: str, error: type[Exception]) -> Any:
    """Return the JSON document in file ``path`` (see :func:`read_text` and :func:`loads`)."""
    return loads(read_text(path, what, error), f"{what} {path}", error)

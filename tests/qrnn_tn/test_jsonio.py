"""Strict JSON output and robust JSON input (:mod:`qrnn_tn.jsonio`)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qrnn_tn import jsonio


def _refuse(name):
    raise ValueError(name)


def test_non_finite_floats_become_null_at_any_depth():
    data = {"a": math.nan, "b": [1.0, math.inf, (-math.inf, 2)], "c": {"d": math.nan}, "e": "x"}
    text = jsonio.dumps(data)
    assert json.loads(text, parse_constant=_refuse) == {
        "a": None, "b": [1.0, None, [None, 2]], "c": {"d": None}, "e": "x"
    }  # fmt: skip


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=10,
)


@given(values)
def test_dumps_is_always_strict_json_and_keeps_finite_values(data):
    back = json.loads(jsonio.dumps(data), parse_constant=_refuse)
    assert back == jsonio.finite_or_none(data)


class ThingError(ValueError):
    pass


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\xff", "not UTF-8"),
        (b"{", "not valid JSON"),
        (b"[" * 100_000, "nested too deeply"),
        (b"1" * 5000, "too many digits"),
    ],
)
def test_read_json_errors_name_the_file(tmp_path, content, fragment):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(ThingError, match=fragment) as info:
        jsonio.read_json(path, "--thing", ThingError)
    assert str(path) in str(info.value)
    with pytest.raises(ThingError, match="cannot be read"):
        jsonio.read_json(tmp_path / "missing.json", "--thing", ThingError)

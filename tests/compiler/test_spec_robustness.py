"""Hostile spec files: every one is a :class:`SpecError` naming the file, never a traceback.

The fuzz tests run ``QRNN_TN_FUZZ_EXAMPLES`` examples per surface (200 by default; set it
to 2000 or more for a thorough run, e.g. ``QRNN_TN_FUZZ_EXAMPLES=2000 pytest
tests/compiler/test_spec_robustness.py``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.spec import MAX_PARAMETERS, CellSpec, SpecError, load_spec

FUZZ_EXAMPLES = int(os.environ.get("QRNN_TN_FUZZ_EXAMPLES", "200"))
fuzz = settings(max_examples=FUZZ_EXAMPLES)


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("latin1.toml", b'name = "caf\xe9"\n[cell]\nio = 1\nworkspace = 1\n', "not UTF-8"),
        ("bom16.json", b'\xff\xfe{"cell": {}}', "not UTF-8"),
        (
            "huge.json",
            '{"cell": {"io": 1, "workspace": 1}, "init": {"bias_std": 1%s}}' % ("0" * 400),
            "magnitude",
        ),  # fmt: skip
        (
            "huge.toml",
            "[cell]\nio = 1\nworkspace = 1\n[init]\nbias_std = 1%s\n" % ("0" * 400),
            "magnitude",
        ),  # fmt: skip
        ("digits.json", '{"cell": {"io": 1, "workspace": %s}}' % ("1" * 5000), "4300"),
        ("digits.toml", "[cell]\nio = 1\nworkspace = %s\n" % ("1" * 5000), "4300"),
        ("deep.json", "[" * 100_000 + "]" * 100_000, "nest"),
        ("deep.toml", "a = " + "[" * 100_000 + "]" * 100_000, "nest"),
        ("deep50.json", "[" * 50 + "]" * 50, "nest"),
        ("overflow.toml", "[cell]\nio = 1\nworkspace = 1\n[init]\nbias_std = 1e308\n", "at most"),
        (
            "offset.json",
            '{"cell": {"io": 1, "workspace": 1}, "neuron": {"offset": -1e300}}',
            "at most",
        ),  # fmt: skip
        (
            "inf.json",
            '{"cell": {"io": 1, "workspace": 1}, "init": {"weight_std": 1e400}}',
            "finite",
        ),  # fmt: skip
        (
            "nan.json",
            '{"cell": {"io": 1, "workspace": 1}, "init": {"weight_std": NaN}}',
            "finite",
        ),  # fmt: skip
    ],
)
def test_hostile_files_are_spec_errors_naming_the_file(tmp_path, name, content, fragment):
    path = _write(tmp_path, name, content)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert name in str(info.value)
    assert fragment in str(info.value)


def test_a_huge_degree_is_refused_in_time_linear_in_the_spec():
    # 57 bytes; summing the binomials of 4096 lanes × 4096 degrees took over an hour
    text = "[cell]\nio = 1\nworkspace = 4095\n[neuron]\ndegree = 4095\n"
    started = time.perf_counter()
    with pytest.raises(SpecError, match="more than 50,000,000 parameters"):
        load_spec(text)
    assert time.perf_counter() - started < 1.0


def test_the_parameter_bound_is_exact_at_the_limit():
    # all-to-all, n lanes, degree 2: n * (1 + (n-1) + C(n-1, 2)) per stage set (QRNN.md §5)
    def count(n, io, stages=1):
        per_lane = 1 + (n - 1) + math.comb(n - 1, 2)
        return (1 + stages) * per_lane * (n - io) + stages * (n - io) + per_lane * io

    n = 1
    while count(n + 1, 1) <= MAX_PARAMETERS:
        n += 1
    spec = load_spec({"cell": {"io": 1, "workspace": n - 1}, "neuron": {"degree": 2}})
    assert spec.n_parameters() == count(n, 1)
    with pytest.raises(SpecError, match="parameters"):
        load_spec({"cell": {"io": 1, "workspace": n}, "neuron": {"degree": 2}})


def test_huge_python_integers_in_a_dict_are_spec_errors():
    with pytest.raises(SpecError, match="cell.io"):
        load_spec({"cell": {"io": [10**5000], "workspace": 1}})
    with pytest.raises(SpecError, match="neuron.order"):
        load_spec({"cell": {"io": 1, "workspace": 1}, "neuron": {"order": 10**5000}})


def _check(load) -> None:
    """``load()`` gives a spec that round-trips, or a SpecError; nothing else."""
    try:
        spec = load()
    except SpecError:
        return
    assert isinstance(spec, CellSpec)
    assert load_spec(spec.to_dict()) == spec


_FILES = Path(tempfile.mkdtemp(prefix="qrnn-tn-spec-fuzz-"))


@fuzz
@given(st.binary(max_size=300), st.sampled_from([".toml", ".json"]))
def test_fuzz_arbitrary_bytes(data, suffix):
    path = _FILES / f"spec{suffix}"
    path.write_bytes(data)
    _check(lambda: load_spec(path))


_numbers = (
    st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, 2, 3, 4, 4095, 10**6, 2**63, 1e308, -1e308])
)
_keys = st.sampled_from(
    ["io", "workspace", "stages", "degree", "order", "topology", "offset", "bias_std",
     "weight_std", "rotation_std", "local", "custom", "0", "1", "x"]
)  # fmt: skip
_values = st.recursive(
    st.none() | st.booleans() | _numbers | st.text(max_size=6) | st.just("all"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=10,
)
_documents = st.dictionaries(
    st.sampled_from(["cell", "neuron", "init", "name", "other"]),
    st.dictionaries(_keys, _values, max_size=5) | _values,
    max_size=4,
)


def _nested(depth: int) -> str:
    return '{"cell": ' + "[" * depth + "]" * depth + "}"


@fuzz
@given(_documents.map(json.dumps) | st.integers(1, 5000).map(_nested), st.booleans())
def test_fuzz_json_documents(text, as_file):
    if as_file:
        path = _FILES / "spec.json"
        path.write_text(text)
        _check(lambda: load_spec(path))
    else:
        _check(lambda: load_spec(text if text.startswith("{") else "{" + text))


def _toml_value(value: object) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)  # fmt: skip
    if isinstance(value, int | str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + "}"


def _toml(document: dict) -> str:
    lines = [f'"{k}" = {_toml_value(v)}' for k, v in document.items() if not isinstance(v, dict)]
    for key, table in document.items():
        if isinstance(table, dict):
            lines.append(f'["{key}"]')
            lines.extend(f'"{k}" = {_toml_value(v)}' for k, v in table.items())
    return "\n".join(lines) + "\n"


_toml_noise = st.lists(
    st.sampled_from(["[", "]", "{", "}", "=", ",", '"', "'", "\n", "cell", "io", "1", "1e999",
                     "inf", "nan", "[[cell]]", "0x7f", "1979-05-27", "\\u0000", "#", " "]),
    max_size=40,
).map("".join)  # fmt: skip


@fuzz
@given(_documents.map(_toml) | _toml_noise | st.integers(1, 5000).map(lambda d: "a = " + "[" * d))
def test_fuzz_toml_documents(text):
    path = _FILES / "spec.toml"
    path.write_text(text)
    _check(lambda: load_spec(path))
    _check(lambda: load_spec(text + "\n"))

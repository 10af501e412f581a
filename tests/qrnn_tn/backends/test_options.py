"""Typed backend options: coercion from text, range checks, one name end to end."""

from __future__ import annotations

import argparse
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.unroll import compile_program
from qrnn_tn.backends import (
    BackendError,
    BackendOptions,
    MPSOptions,
    StatevectorOptions,
    TensorNetOptions,
    check_backend_options,
    describe_options,
    get_backend,
    options_as_dict,
    resolve_backend_options,
)
from qrnn_tn.backends.options import OPTIONS_BY_BACKEND
from qrnn_tn.cli import backend_options, main
from qrnn_tn.errors import Error
from qrnn_tn.simulation import simulate
from qrnn_tn.training import TrainConfig

TINY = {"cell": {"io": 1, "workspace": 2}, "neuron": {"degree": 2, "order": 1}}


@pytest.mark.parametrize(
    ("cls", "key", "text", "value"),
    [
        (TensorNetOptions, "checkpoint", "False", False),
        (TensorNetOptions, "checkpoint", "true", True),
        (TensorNetOptions, "checkpoint", "0", False),
        (TensorNetOptions, "search_time", "1e-3", 1e-3),
        (TensorNetOptions, "search_time", 2, 2.0),
        (TensorNetOptions, "cache_dir", "none", None),
        (TensorNetOptions, "cache_dir", "some/dir", Path("some/dir")),
        (TensorNetOptions, "neuron_form", "Hyper", "hyper"),
        (MPSOptions, "max_bond", "32", 32),
        (MPSOptions, "max_bond", np.int64(8), 8),
        (MPSOptions, "max_bond", "null", None),
        (MPSOptions, "checkpoint_outer", "auto", "auto"),
        (MPSOptions, "checkpoint_outer", "6", 6),
        (MPSOptions, "cutoff", "0", 0.0),
        (StatevectorOptions, "fuse", "off", False),
        (StatevectorOptions, "segment", " 4 ", 4),
    ],
)
def test_text_is_coerced_to_the_fields_type(cls, key, text, value):
    parsed = getattr(cls.from_mapping({key: text}), key)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    ("key", "text", "accepted"),
    [
        ("search_time", "abc", "a finite number >= 0"),
        ("search_time", "nan", "a finite number >= 0"),
        ("search_time", "-1", "a finite number >= 0"),
        ("max_slices", "1e3", "an integer >= 1"),
        ("max_slices", True, "an integer >= 1"),
        ("neuron_form", "dense", "'auto', 'hyper' or 'literal'"),
        ("checkpoint", "maybe", "true or false"),
        ("cache_dir", "", "a directory path or none"),
        ("max_bond", "0", "an integer >= 1 or none"),
        ("max_bond", 2.5, "an integer >= 1 or none"),
        ("cutoff", "-1e-3", "a finite number >= 0 or none"),
        ("checkpoint_outer", "x", "an integer >= 0 or 'auto'"),
        ("gradient", "exact", "'recompute' or 'autograd'"),
    ],
)
def test_a_bad_value_names_the_key_the_value_and_what_is_accepted(key, text, accepted):
    with pytest.raises(BackendError) as err:
        resolve_backend_options({key: text})
    message = str(err.value)
    assert f"backend option {key}={text!r}" in message and f"expected {accepted}" in message


def test_auto_hands_each_backend_its_own_keys_and_a_named_backend_only_its_own():
    objects = resolve_backend_options({"max_bond": "16", "checkpoint": "false"})
    assert [type(o) for o in objects] == [MPSOptions, TensorNetOptions]
    assert objects[0].max_bond == 16 and objects[1].checkpoint is False
    with pytest.raises(BackendError, match="max_bond; accepted: statevector: gradient"):
        check_backend_options({"max_bond": 16}, "statevector")
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        check_backend_options({}, "nope")
    with pytest.raises(BackendError, match="two option objects for the mps backend"):
        resolve_backend_options([MPSOptions(), MPSOptions(max_bond=2)])


def test_typed_objects_and_mappings_give_the_same_plan():
    program = compile_program(TINY, steps=3)
    prepare = get_backend("mps")
    by_text = prepare(program, BackendOptions(backend_options={"max_bond": "2"}))
    by_type = prepare(program, BackendOptions(backend_options=MPSOptions(max_bond=2)))
    assert by_text.max_bond == by_type.max_bond == 2


def test_options_as_dict_keeps_only_changes_and_round_trips():
    objects = resolve_backend_options({"max_bond": "16", "cache_dir": "none", "cutoff": "1e-9"})
    flat = options_as_dict(objects)
    assert flat == {"max_bond": 16, "cutoff": 1e-9, "cache_dir": None}
    assert resolve_backend_options(flat) == objects
    assert options_as_dict(resolve_backend_options({"max_window": 10})) == {}


def test_the_options_table_covers_every_field():
    rows = describe_options()
    expected = {(n, f.name) for n, cls in OPTIONS_BY_BACKEND.items() for f in fields(cls)}
    assert {(r[0], r[1]) for r in rows} == expected
    assert all(row[4] for row in rows)  # every option says what it means


def test_backend_error_is_a_project_error_and_a_runtime_error():
    assert issubclass(BackendError, Error) and issubclass(BackendError, RuntimeError)


def test_simulate_takes_backend_options():
    """A bond cap of 1 truncates an entangling cell; the exact bond agrees with the
    statevector."""
    words = [[0, 1, 1, 0, 1]]
    exact = simulate(TINY, None, words, backend="statevector", seed=3)
    capped = simulate(TINY, None, words, backend="mps", seed=3, backend_options={"max_bond": 1})
    full = simulate(TINY, None, words, backend="mps", seed=3, backend_options={"max_bond": 8})
    torch.testing.assert_close(full.probs, exact.probs, rtol=0, atol=1e-12)
    assert capped.discarded.max() > 0
    with pytest.raises(BackendError, match="max_bond"):
        simulate(TINY, None, words, backend="statevector", backend_options={"max_bond": 1})


def test_train_config_checks_and_records_typed_values():
    config = TrainConfig(backend="tensornet", steps=1, backend_options={"checkpoint": "False"})
    assert config.backend_options == {"checkpoint": False}
    config = TrainConfig(steps=1, backend_options=MPSOptions(max_bond=4))
    assert config.backend_options == {"max_bond": 4}
    with pytest.raises(BackendError, match="search_time='abc'"):
        TrainConfig(steps=1, backend_options={"search_time": "abc"})


def test_cli_checkpoint_false_turns_checkpointing_off():
    """``--backend-option checkpoint=False`` reaches the plan as ``False`` (text is parsed,
    not passed to ``bool``)."""
    from qrnn_tn.simulation import make_plan

    args = argparse.Namespace(backend_option=["checkpoint=False", "cache_dir=none"])
    program = compile_program(TINY, steps=2)
    plan, _ = make_plan(program, "tensornet", backend_options=backend_options(args))
    assert plan.checkpoint is False


@pytest.mark.parametrize("option", ["search_time=abc", "cutoff=x", "max_slices=-3", "x=1", "=1"])
def test_cli_bad_backend_option_exits_2_without_a_traceback(tmp_path, capsys, option):
    spec = tmp_path / "tiny.toml"
    spec.write_text("[cell]\nio = 1\nworkspace = 2\n[neuron]\ndegree = 2\norder = 1\n")
    code = main(["simulate", str(spec), "--words", "0,1", "--backend-option", option])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "error:" in err


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(sorted({r[1] for r in describe_options()}) + ["bogus"]),
    value=st.one_of(
        st.text(max_size=30),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=2),
    ),
)
def test_any_value_is_a_typed_option_or_a_backend_error(key, value):
    """Fuzz: every key/value pair either parses to its field's type within range or raises
    :class:`BackendError`; nothing else escapes."""
    try:
        objects = resolve_backend_options({key: value})
    except BackendError:
        return
    (obj,) = objects
    parsed = getattr(obj, key)
    if isinstance(parsed, float):
        assert math.isfinite(parsed) and parsed >= 0
    if isinstance(parsed, int) and not isinstance(parsed, bool):
        assert parsed >= 0

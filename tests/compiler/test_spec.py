"""Cell specs: loading from every source, defaults, round trips and strict validation."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler.spec import CellSpec, SpecError, Topology, load_spec

MINIMAL = {"cell": {"io": 2, "workspace": 3}}


def test_defaults_from_minimal_spec():
    spec = load_spec(MINIMAL)
    assert (spec.io, spec.workspace, spec.stages) == (2, 3, 1)
    assert (spec.neuron.degree, spec.neuron.order) == (2, 2)
    assert spec.neuron.topology == Topology("all")
    assert spec.neuron.offset == pytest.approx(math.pi / 2)
    assert (spec.init.bias_std, spec.init.weight_std, spec.init.rotation_std) == (0.1, 0.01, 0.01)


def test_toml_json_text_and_files_agree(tmp_path):
    toml_text = """
name = "demo"
[cell]
io = 2
workspace = 8
stages = 2
[neuron]
degree = 2
order = 2
topology = { local = 2 }
offset = 1.5707963267948966
"""
    from_toml = load_spec(toml_text)
    (tmp_path / "a.toml").write_text(toml_text)
    (tmp_path / "a.json").write_text(json.dumps(from_toml.to_dict()))
    assert load_spec(tmp_path / "a.toml") == from_toml
    assert load_spec(str(tmp_path / "a.json")) == from_toml
    assert load_spec(json.dumps(from_toml.to_dict())) == from_toml
    assert from_toml.neuron.topology == Topology("local", radius=2)
    assert from_toml.name == "demo"


def test_local_and_custom_sources():
    spec = load_spec({"cell": {"io": 2, "workspace": 4}, "neuron": {"topology": {"local": 1}}})
    assert spec.sources_of(0) == (1,)
    assert spec.sources_of(3) == (2, 4)
    assert spec.sources_of(5) == (4,)
    custom = {str(g): [] for g in range(3)} | {"0": [2, 1]}
    spec = load_spec(
        {"cell": {"io": 1, "workspace": 2}, "neuron": {"degree": 1, "topology": {"custom": custom}}}
    )
    assert spec.sources_of(0) == (1, 2)
    assert spec.sources_of(1) == ()


def test_local_chain_with_the_io_lanes_as_one_site():
    topology = {"local": 1, "io": "site"}
    spec = load_spec({"cell": {"io": 2, "workspace": 4}, "neuron": {"topology": topology}})
    # sites: o0 o1 -> 0, h0 -> 1, h1 -> 2, ...; a neuron sees the lanes within one site
    expected = [(1, 2), (0, 2), (0, 1, 3), (2, 4), (3, 5), (4,)]
    assert [spec.sources_of(g) for g in range(6)] == expected
    spec = load_spec(
        {"cell": {"io": 3, "workspace": 3}, "neuron": {"topology": topology | {"local": 2}}}
    )
    expected = [(1, 2, 3, 4), (0, 2, 3, 4), (0, 1, 3, 4), (0, 1, 2, 4, 5), (0, 1, 2, 3, 5), (3, 4)]
    assert [spec.sources_of(g) for g in range(6)] == expected
    assert spec.neuron.topology == Topology("local", radius=2, io="site")
    assert spec.neuron.topology.to_value() == {"local": 2, "io": "site"}
    assert spec.neuron.topology.describe() == '{ local = 2, io = "site" }'
    lanes = load_spec(
        {"cell": {"io": 2, "workspace": 4}, "neuron": {"topology": {"local": 1, "io": "lanes"}}}
    )
    assert lanes.neuron.topology == Topology("local", radius=1)
    assert lanes.neuron.topology.to_value() == {"local": 1}


def test_io_site_in_toml_and_json(tmp_path):
    text = '[cell]\nio = 2\nworkspace = 3\n[neuron]\ntopology = { local = 1, io = "site" }\n'
    (tmp_path / "a.toml").write_text(text)
    spec = load_spec(tmp_path / "a.toml")
    assert spec.neuron.topology.io == "site"
    assert load_spec(json.dumps(spec.to_dict())) == spec
    assert spec.n_parameters() == load_spec(spec.to_dict()).n_parameters()


topologies = st.one_of(
    st.just("all"),
    st.integers(1, 4).map(lambda r: {"local": r}),
    st.integers(1, 4).map(lambda r: {"local": r, "io": "site"}),
)


@given(
    io=st.integers(1, 4),
    workspace=st.integers(1, 6),
    stages=st.integers(0, 3),
    order=st.integers(1, 4),
    topology=topologies,
    data=st.data(),
)
def test_round_trip(io, workspace, stages, order, topology, data):
    base = {"cell": {"io": io, "workspace": workspace, "stages": stages}}
    probe = load_spec(base | {"neuron": {"degree": 1, "topology": topology}})
    max_src = max(len(probe.sources_of(g)) for g in range(probe.n_lanes))
    degree = data.draw(st.integers(1, max_src))
    spec = load_spec(base | {"neuron": {"degree": degree, "order": order, "topology": topology}})
    again = load_spec(spec.to_dict())
    assert again == spec
    assert isinstance(again, CellSpec)


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({}, "cell.io", "required"),
        ({"cell": {"io": 2}}, "cell.workspace", "required"),
        ({"cell": {"io": 0, "workspace": 2}}, "cell.io", ">= 1"),
        ({"cell": {"io": 2, "workspace": -1}}, "cell.workspace", ">= 1"),
        ({"cell": {"io": 2, "workspace": 2, "stages": -1}}, "cell.stages", ">= 0"),
        ({"cell": {"io": "2", "workspace": 2}}, "cell.io", "integer"),
        ({"cell": {"io": True, "workspace": 2}}, "cell.io", "integer"),
        ({"cell": {"io": 2, "workspace": 2, "colour": 1}}, "cell.colour", "unknown key"),
        ({"cells": {}}, "cells", "unknown key"),
        ({"cell": {"io": 2, "workspace": 2}, "neuron": {"order": 5}}, "neuron.order", "1, 2, 3"),
        ({"cell": {"io": 2, "workspace": 2}, "neuron": {"degree": 0}}, "neuron.degree", "between"),
        ({"cell": {"io": 2, "workspace": 2}, "neuron": {"degree": 4}}, "neuron.degree", "3"),
        (
            {"cell": {"io": 2, "workspace": 2}, "neuron": {"topology": "ring"}},
            "neuron.topology",
            "accepted",
        ),
        (
            {"cell": {"io": 2, "workspace": 2}, "neuron": {"topology": {"local": 0}}},
            "neuron.topology.local",
            ">= 1",
        ),
        (
            {"cell": {"io": 2, "workspace": 2}, "neuron": {"topology": {"local": 1, "io": "x"}}},
            "neuron.topology.io",
            '"site"',
        ),
        (
            {"cell": {"io": 2, "workspace": 2}, "neuron": {"topology": {"io": "site"}}},
            "neuron.topology.io",
            "local chain only",
        ),
        (
            {"cell": {"io": 2, "workspace": 2}, "neuron": {"topology": {"local": 1, "r": 2}}},
            "neuron.topology.r",
            "unknown key",
        ),
        (
            {"cell": {"io": 1, "workspace": 1}, "neuron": {"topology": {"custom": {"0": [0]}}}},
            "neuron.topology.custom.0",
            "self-loop",
        ),
        (
            {"cell": {"io": 1, "workspace": 1}, "neuron": {"topology": {"custom": {"0": [7]}}}},
            "neuron.topology.custom.0",
            "out of range",
        ),
        (
            {"cell": {"io": 1, "workspace": 1}, "neuron": {"topology": {"custom": {"0": [1]}}}},
            "neuron.topology.custom",
            "no source list for lanes [1]",
        ),
        (
            {"cell": {"io": 2, "workspace": 2}, "neuron": {"offset": math.inf}},
            "neuron.offset",
            "finite",
        ),
        ({"cell": {"io": 2, "workspace": 2}, "init": {"bias_std": -1}}, "init.bias_std", ">= 0"),
        (
            {"cell": {"io": 4, "workspace": 300}, "neuron": {"degree": 6}},
            "neuron.degree",
            "parameters",
        ),
        ({"cell": {"io": 2, "workspace": 10**9}}, "cell", "at most"),
    ],
)
def test_errors_name_key_value_and_fix(data, path, fragment):
    with pytest.raises(SpecError) as info:
        load_spec(data)
    assert info.value.path == path
    assert fragment in str(info.value)


def test_text_and_file_errors(tmp_path):
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec("[cell\nio = 2")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec('{"cell": ')
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
keys = st.sampled_from(["io", "workspace", "stages", "degree", "order", "topology", "offset", "x"])
sections = st.dictionaries(keys, json_values, max_size=4)
fuzzed = st.dictionaries(
    st.sampled_from(["cell", "neuron", "init", "name", "other"]),
    sections | json_values,
    max_size=4,
)


@given(fuzzed)
def test_fuzzed_specs_raise_only_spec_error(data):
    try:
        spec = load_spec(data)
    except SpecError:
        return
    assert load_spec(spec.to_dict()) == spec


topology_values = st.dictionaries(
    st.sampled_from(["local", "io", "custom", "x"]),
    json_values | st.sampled_from(["site", "lanes", "all"]) | st.integers(-1, 5),
    max_size=3,
)


@given(topology_values | json_values)
def test_fuzzed_topologies_raise_only_spec_error(topology):
    try:
        spec = load_spec({"cell": {"io": 2, "workspace": 3}, "neuron": {"topology": topology}})
    except SpecError:
        return
    assert load_spec(spec.to_dict()) == spec


def test_default_degree_is_capped_by_the_sources():
    spec = load_spec({"cell": {"io": 1, "workspace": 1}})
    assert spec.neuron.degree == 1
    with pytest.raises(SpecError, match="between 1 and 1"):
        load_spec({"cell": {"io": 1, "workspace": 1}, "neuron": {"degree": 2}})

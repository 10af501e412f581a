"""backend="auto": quick estimates, the cheapest exact backend, clear refusals."""

import re

import pytest

from compiler.unroll import compile_program
from qrnn_tn.backends import (
    BackendError,
    BackendOptions,
    check_backend_options,
    choose,
    get_backend,
    rank_backends,
    tensornet,
)
from qrnn_tn.backends.tensornet import plan as tensornet_plan


@pytest.fixture
def searches(monkeypatch):
    """The tensor network's path and slicing searches run while the test runs."""
    done = []
    search_tree, slice_search = tensornet_plan.search_tree, tensornet_plan.slice_search

    def spy_search(*args, **kwargs):
        done.append("path")
        return search_tree(*args, **kwargs)

    def spy_slice(*args, **kwargs):
        done.append("slicing")
        return slice_search(*args, **kwargs)

    monkeypatch.setattr(tensornet_plan, "search_tree", spy_search)
    monkeypatch.setattr(tensornet_plan, "slice_search", spy_slice)
    return done


def test_narrow_cell_gets_the_statevector_without_a_path_search(tmp_path, searches):
    program = compile_program("examples/dna.toml", steps=6)
    plan, choice = choose(
        program, BackendOptions(batch_size=4, backend_options={"cache_dir": tmp_path})
    )
    assert plan.cost.backend == "statevector"
    assert str(choice).startswith("chose statevector")
    assert searches == []


def test_wide_local_cell_gets_the_tensor_network(tmp_path, searches):
    spec = {"cell": {"io": 2, "workspace": 38}, "neuron": {"topology": {"local": 1}}}
    program = compile_program(spec, steps=1)
    options = BackendOptions(memory_budget=2**30, backend_options={"cache_dir": tmp_path})
    plan, choice = choose(program, options)
    assert plan.cost.backend == "tensornet"
    assert searches  # planned in full (the spy sees the searches the tests above rule out)
    assert "statevector" in choice.reason  # ruled out, and the reason says why
    assert choice.backend == plan.cost.backend and str(choice) == choice.reason


def test_estimate_bounds_the_planned_cost(tmp_path):
    spec = {"cell": {"io": 2, "workspace": 10}, "neuron": {"topology": {"local": 1}}}
    program = compile_program(spec, steps=2)
    options = BackendOptions(backend_options={"cache_dir": tmp_path})
    quick = tensornet.estimate(program, options).cost
    planned = get_backend("tensornet")(program, options).cost
    assert planned.flops <= quick.flops
    assert planned.width <= quick.width


def test_nothing_fits_names_every_backend():
    program = compile_program("examples/dna.toml", steps=3)
    with pytest.raises(BackendError) as info:
        choose(program, BackendOptions(memory_budget=10, backend_options={"cache_dir": None}))
    message = str(info.value)
    assert "statevector" in message and "tensornet" in message
    assert "fewer steps" in message


def test_ranking_is_cheapest_first_and_stops_costing_a_network_over_budget():
    program = compile_program("examples/dna.toml", steps=200)
    candidates, refused = rank_backends(program, BackendOptions(batch_size=4))
    seconds = [c.cost.predicted_seconds for c in candidates]
    assert seconds == sorted(seconds) and candidates[0].name == "statevector"
    why = refused["tensornet"].reason
    assert "over the memory budget" in why
    assert int(re.search(r"for step (\d+)'s", why).group(1)) < 3  # stopped early, not at step 199
    plan, _ = choose(program, BackendOptions(batch_size=4))
    assert plan.cost.backend == candidates[0].name


def test_a_network_whose_estimate_is_over_budget_is_planned_before_giving_up(tmp_path):
    spec = {"cell": {"io": 2, "workspace": 22}, "neuron": {"topology": {"local": 1}}}
    program = compile_program(spec, steps=3)
    extra = {"cache_dir": tmp_path, "search_time": 0.0}  # no time-boxed search: deterministic
    options = BackendOptions(memory_budget=2**26, backend_options=extra)
    candidates, refused = rank_backends(program, options)
    assert not candidates and refused["tensornet"].upper_bound
    plan, choice = choose(program, options)
    assert plan.cost.backend == "tensornet" and "planning it in full" in choice.reason
    assert plan.cost.peak_bytes_backward <= 2**26


def test_each_backend_gets_only_its_own_options(tmp_path):
    """auto passes ``max_bond`` to the MPS backend only (which, capped below the exact bond,
    ranks after every exact backend) and the cache directory to the tensor network only."""
    program = compile_program("examples/dna.toml", steps=4)
    extra = {"cache_dir": tmp_path, "max_bond": 2}
    candidates, refused = rank_backends(program, BackendOptions(backend_options=extra))
    names = [c.name for c in candidates]
    assert "statevector" in names and names[-1] == "mps"
    assert [c.cost.exact for c in candidates] == [True] * (len(names) - 1) + [False]
    assert "tensornet" not in refused or "option" not in refused["tensornet"].reason
    assert (
        get_backend("mps")(program, BackendOptions(backend_options={"max_bond": 2})).max_bond == 2
    )
    plan, choice = choose(program, BackendOptions(backend_options=extra))
    assert plan.cost.exact and "mps" in choice.reason and "(approximate)" in choice.reason


def test_an_approximate_backend_runs_only_where_no_exact_one_fits():
    """A 30-lane local cell over 6 steps: no statevector, an exact MPS bond of 2^15 and a
    tensor network over any small budget. Without a bond cap auto refuses and says how to
    allow truncation; with ``max_bond`` it runs the capped MPS and says it is approximate."""
    spec = {"cell": {"io": 2, "workspace": 28}, "neuron": {"topology": {"local": 1}}}
    program = compile_program(spec, steps=6)
    extra = {"cache_dir": None, "search_time": 0.0, "max_slices": 1}
    options = BackendOptions(batch_size=2, memory_budget=2**28, backend_options=extra)
    with pytest.raises(BackendError, match="max_bond"):
        choose(program, options)
    capped = BackendOptions(
        batch_size=2, memory_budget=2**28, backend_options={**extra, "max_bond": 8}
    )
    plan, choice = choose(program, capped)
    assert plan.cost.backend == "mps" and plan.max_bond == 8 and not plan.cost.exact
    assert "approximate: no exact backend fits" in choice.reason
    assert plan.cost.peak_bytes_backward <= 2**28


def test_a_capped_mps_that_fits_is_chosen_without_a_network_search(tmp_path, searches):
    """The 64-lane digits cell: the tensor network's quick estimate is over the budget (an
    upper bound that a search might beat), the capped MPS fits; auto takes the MPS at once
    and says that the tensor network was not searched."""
    program = compile_program("examples/digits_pixel_64_lanes.toml", steps=4)
    options = BackendOptions(
        batch_size=4,
        memory_budget=2**28,
        backend_options={"max_bond": 8, "cache_dir": tmp_path, "max_slices": 1},
    )
    _, refused = rank_backends(program, options)
    assert refused["tensornet"].upper_bound and refused["tensornet"].cost is None
    plan, choice = choose(program, options)
    assert searches == []
    assert plan.cost.backend == "mps" and not plan.cost.exact
    assert "tensornet not planned in full" in choice.reason


@pytest.mark.parametrize("backend", ["auto", "statevector", "mps", "tensornet"])
def test_a_misspelt_option_is_refused_with_the_accepted_ones(backend):
    first_listed = "mps" if backend == "auto" else backend  # auto lists every backend's keys
    with pytest.raises(BackendError, match=f"option.*max_bnd.*accepted: {first_listed}: "):
        check_backend_options({"max_bnd": 8}, backend)
    with pytest.raises(BackendError, match="option.*max_bnd.*accepted: mps: "):
        BackendOptions(backend_options={"max_bnd": 8})


def test_another_backends_options_are_refused():
    program = compile_program("examples/dna.toml", steps=2)
    with pytest.raises(BackendError, match="MPSOptions.*do not apply here; use StatevectorOptions"):
        get_backend("statevector")(program, BackendOptions(backend_options={"max_bond": 2}))


def test_small_cells_are_ranked_by_predicted_time_not_flops():
    """At 12 qubits, one step, the tensor network does 20x fewer flops than the statevector
    but launches twice as many tensor operations, and runs slower (0.0089 s against 0.0076 s
    fwd+bwd in ``python -m benchmarks.contraction_scaling --threads 1``): the per-operation
    term of the time model must put the statevector first; at 22 qubits, three steps, the
    tensor network's larger flop count is made of large products that ran 6.9x faster."""
    from benchmarks.contraction_scaling import spec_for

    def ranked(qubits, steps):
        program = compile_program(spec_for("local1", qubits), steps=steps)
        candidates, _ = rank_backends(program, BackendOptions(backend_options={"cache_dir": None}))
        return {c.name: c.cost for c in candidates}

    small = ranked(12, 1)
    assert small["tensornet"].flops < small["statevector"].flops
    assert small["statevector"].predicted_seconds < small["tensornet"].predicted_seconds
    wide = ranked(22, 3)
    assert wide["tensornet"].flops > wide["statevector"].flops
    assert wide["tensornet"].predicted_seconds < wide["statevector"].predicted_seconds

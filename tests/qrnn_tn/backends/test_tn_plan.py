"""Contraction-tree planning: the linear sweep width against cotengra's, and the path cache."""

from __future__ import annotations

import json
import warnings

import cotengra as ctg
import pytest

from compiler.unroll import compile_program
from qrnn_tn.backends.tn_network import iter_networks
from qrnn_tn.backends.tn_plan import (
    PathCacheWarning,
    PlannerOptions,
    clear_memory_cache,
    find_tree,
    search_count,
    slice_tree,
    sweep_tree,
    sweep_width,
)

CELLS = [
    ({"cell": {"io": 1, "workspace": 3}, "neuron": {"degree": 2, "order": 2}}, 3),
    ({"cell": {"io": 2, "workspace": 6}, "neuron": {"degree": 2, "topology": {"local": 1}}}, 2),
    ({"cell": {"io": 1, "workspace": 5}, "neuron": {"degree": 1, "order": 1}}, 2),
]


@pytest.mark.parametrize("form", ["hyper", "literal"])
@pytest.mark.parametrize(("spec", "steps"), CELLS)
def test_sweep_width_equals_cotengras_width_of_the_sweep_tree(spec, steps, form):
    program = compile_program(spec, steps=steps)
    for net in iter_networks(program, 2, form):
        assert sweep_width(net) == pytest.approx(sweep_tree(net).contraction_width())


# -- the path cache ------------------------------------------------------------------------

SPEC = {"cell": {"io": 2, "workspace": 4}, "neuron": {"degree": 2, "topology": {"local": 1}}}


def _net():
    return list(iter_networks(compile_program(SPEC, steps=2), 1, "hyper"))[-1]


def _valid_path(steps, n):
    """Independent check: an SSA path contracting ``n`` tensors, each exactly once."""
    alive = set(range(n))
    for k, (a, b) in enumerate(steps):
        assert a != b and a in alive and b in alive
        alive -= {a, b}
        alive.add(n + k)
    return len(alive) == 1


def _damaged_entries(n):
    good = [[0, 1]] + [[i, n + i - 2] for i in range(2, n)]
    swapped = [good[1], good[0], *good[2:]]  # uses an intermediate before it exists
    return {
        "empty object": {},
        "list": [1, 2],
        "wrong type": {"ssa_path": "01"},
        "swapped steps": {"ssa_path": swapped},
        "out of range": {"ssa_path": [[0, 10**6]] + good[1:]},
        "reused tensor": {"ssa_path": [[0, 1], [0, 2]] + good[2:]},
        "too short": {"ssa_path": good[:-1]},
        "not integers": {"ssa_path": [[0.0, 1]] + good[1:]},
    }


@pytest.mark.parametrize("case", list(_damaged_entries(4)))
def test_damaged_path_entry_is_searched_again_and_replaced(tmp_path, case):
    net = _net()
    n = len(net.leaves)
    entry = tmp_path / f"{net.key()}.json"
    entry.write_text(json.dumps(_damaged_entries(n)[case]))
    clear_memory_cache()
    before = search_count()
    with pytest.warns(PathCacheWarning, match="searching again"):
        tree = find_tree(net, PlannerOptions(cache_dir=tmp_path, search_time=0.0))
    assert search_count() == before + 1
    assert _valid_path(tree.get_ssa_path(), n)
    stored = json.loads(entry.read_text())["ssa_path"]
    assert _valid_path(stored, n)
    assert [tuple(p) for p in stored] == [tuple(p) for p in tree.get_ssa_path()]
    assert not list(tmp_path.glob("*.tmp"))


def test_unreadable_path_entry_is_searched_again(tmp_path):
    net = _net()
    (tmp_path / f"{net.key()}.json").write_bytes(b"\xff\xfe not json")
    clear_memory_cache()
    with pytest.warns(PathCacheWarning, match="unreadable"):
        tree = find_tree(net, PlannerOptions(cache_dir=tmp_path, search_time=0.0))
    assert _valid_path(tree.get_ssa_path(), len(net.leaves))


def test_valid_entry_is_used_without_a_search(tmp_path):
    net = _net()
    options = PlannerOptions(cache_dir=tmp_path, search_time=0.0)
    clear_memory_cache()
    first = find_tree(net, options)
    clear_memory_cache()
    before = search_count()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = find_tree(net, options)
    assert search_count() == before
    assert again.get_ssa_path() == first.get_ssa_path()


@pytest.mark.parametrize(
    "entry", [{}, {"sliced": "a"}, {"sliced": [10**6]}, {"sliced": [-1]}, {"sliced": []}, "out"]
)
def test_damaged_slice_entry_is_sliced_again(tmp_path, entry):
    net = _net()
    options = PlannerOptions(cache_dir=tmp_path, search_time=0.0)
    clear_memory_cache()
    tree = find_tree(net, options)
    target = tree.max_size() // 4
    if entry == "out":  # an output index may never be sliced
        entry = {"sliced": [net.output[0]]}
    path = tmp_path / f"{net.key()}.slice{target}.json"
    path.write_text(json.dumps(entry))
    with pytest.warns(PathCacheWarning, match="not a slicing"):
        sliced = slice_tree(net, tree, target, options)
    assert sliced.max_size() <= target
    assert not set(sliced.sliced_inds) & {ctg.get_symbol(i) for i in net.output}
    stored = json.loads(path.read_text())["sliced"]
    assert {ctg.get_symbol(i) for i in stored} == set(sliced.sliced_inds)


def test_unwritable_cache_directory_runs_uncached(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    net = _net()
    clear_memory_cache()
    with pytest.warns(PathCacheWarning, match="running uncached"):
        tree = find_tree(net, PlannerOptions(cache_dir=blocker / "paths", search_time=0.0))
    assert _valid_path(tree.get_ssa_path(), len(net.leaves))
    assert blocker.read_text().startswith("a file")


def test_unwritable_cache_directory_still_simulates(tmp_path):
    """End to end: the plan runs and agrees with the statevector backend."""
    import torch

    from qrnn_tn.backends import BackendOptions, get_backend

    blocker = tmp_path / "blocker"
    blocker.write_text("")
    program = compile_program(SPEC, steps=2)
    params = torch.linspace(-1, 1, program.n_params, dtype=torch.float64)
    words = torch.tensor([[0, 3, 1], [2, 1, 0]])
    extra = {"cache_dir": str(blocker / "paths"), "search_time": 0.0}
    clear_memory_cache()
    with pytest.warns(PathCacheWarning):
        tn = get_backend("tensornet")(program, BackendOptions(backend_options=extra, batch_size=2))
    reference = get_backend("statevector")(program, BackendOptions(batch_size=2))
    torch.testing.assert_close(
        tn.run(params, words).probs, reference.run(params, words).probs, rtol=0, atol=1e-10
    )

"""The path cache: hits, misses, damaged and unwritable entries, and one cache per plan."""

from __future__ import annotations

import json
import warnings

import cotengra as ctg
import pytest

from compiler.unroll import compile_program
from qrnn_tn.backends.tensornet.cache import PathCache, PathCacheWarning
from qrnn_tn.backends.tensornet.network import iter_networks
from qrnn_tn.backends.tensornet.plan import find_tree, slice_tree
from qrnn_tn.backends.tensornet.search import SearchOptions

QUICK = SearchOptions(search_time=0.0)

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
    cache = PathCache(tmp_path)
    with pytest.warns(PathCacheWarning, match="searching again"):
        tree = find_tree(net, cache, QUICK)
    assert cache.searches == 1
    assert _valid_path(tree.get_ssa_path(), n)
    stored = json.loads(entry.read_text())["ssa_path"]
    assert _valid_path(stored, n)
    assert [tuple(p) for p in stored] == [tuple(p) for p in tree.get_ssa_path()]
    assert not list(tmp_path.glob("*.tmp"))


def test_unreadable_path_entry_is_searched_again(tmp_path):
    net = _net()
    (tmp_path / f"{net.key()}.json").write_bytes(b"\xff\xfe not json")
    with pytest.warns(PathCacheWarning, match="unreadable"):
        tree = find_tree(net, PathCache(tmp_path), QUICK)
    assert _valid_path(tree.get_ssa_path(), len(net.leaves))


def test_valid_entry_is_used_without_a_search(tmp_path):
    net = _net()
    first = find_tree(net, PathCache(tmp_path), QUICK)
    cache = PathCache(tmp_path)  # as another plan, rank or worker would start
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = find_tree(net, cache, QUICK)
    assert cache.searches == 0
    assert again.get_ssa_path() == first.get_ssa_path()


@pytest.mark.parametrize(
    "entry", [{}, {"sliced": "a"}, {"sliced": [10**6]}, {"sliced": [-1]}, {"sliced": []}, "out"]
)
def test_damaged_slice_entry_is_sliced_again(tmp_path, entry):
    net = _net()
    cache = PathCache(tmp_path)
    tree = find_tree(net, cache, QUICK)
    target = tree.max_size() // 4
    if entry == "out":  # an output index may never be sliced
        entry = {"sliced": [net.output[0]]}
    path = tmp_path / f"{net.key()}.slice{target}.json"
    path.write_text(json.dumps(entry))
    with pytest.warns(PathCacheWarning, match="not a slicing"):
        sliced = slice_tree(net, tree, target, cache, QUICK)
    assert sliced.max_size() <= target
    assert not set(sliced.sliced_inds) & {ctg.get_symbol(i) for i in net.output}
    stored = json.loads(path.read_text())["sliced"]
    assert {ctg.get_symbol(i) for i in stored} == set(sliced.sliced_inds)


def test_unwritable_cache_directory_runs_uncached(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    net = _net()
    with pytest.warns(PathCacheWarning, match="running uncached"):
        tree = find_tree(net, PathCache(blocker / "paths"), QUICK)
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
    with pytest.warns(PathCacheWarning):
        tn = get_backend("tensornet")(program, BackendOptions(backend_options=extra, batch_size=2))
    reference = get_backend("statevector")(program, BackendOptions(batch_size=2))
    torch.testing.assert_close(
        tn.run(params, words).probs, reference.run(params, words).probs, rtol=0, atol=1e-10
    )


# -- the cache object ----------------------------------------------------------------------


class _Searches:
    """A search that counts its calls and returns a fixed tree (the lane sweep's)."""

    def __init__(self, net):
        self.calls = 0
        self.net = net

    def __call__(self):
        from qrnn_tn.backends.tensornet.search import sweep_tree

        self.calls += 1
        return sweep_tree(self.net)


def test_miss_searches_once_then_hits_in_memory(tmp_path):
    net = _net()
    cache = PathCache(tmp_path)
    search = _Searches(net)
    first = cache.tree(net, search)
    assert search.calls == 1 and cache.searches == 1
    assert cache.tree(net, search) is first  # a hit: the same tree, no search
    assert search.calls == 1 and cache.searches == 1
    assert _valid_path(
        json.loads((tmp_path / f"{net.key()}.json").read_text())["ssa_path"], len(net.leaves)
    )


def test_disk_hit_rebuilds_the_stored_path(tmp_path):
    net = _net()
    stored = PathCache(tmp_path).tree(net, _Searches(net)).get_ssa_path()
    search = _Searches(net)
    cache = PathCache(tmp_path)
    assert cache.tree(net, search).get_ssa_path() == stored
    assert search.calls == 0 and cache.searches == 0


def test_memory_only_cache_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = _net()
    cache = PathCache(None)
    search = _Searches(net)
    cache.tree(net, search)
    cache.tree(net, search)
    assert search.calls == 1
    assert not list(tmp_path.iterdir())


def test_corrupt_entry_is_refused_searched_and_replaced(tmp_path):
    net = _net()
    entry = tmp_path / f"{net.key()}.json"
    entry.write_text('{"ssa_path": [[0, 0]]}')
    cache = PathCache(tmp_path)
    search = _Searches(net)
    with pytest.warns(PathCacheWarning, match="not a contraction path"):
        tree = cache.tree(net, search)
    assert search.calls == 1 and cache.searches == 1
    assert json.loads(entry.read_text())["ssa_path"] == [list(p) for p in tree.get_ssa_path()]


def test_two_plans_have_separate_caches(tmp_path):
    """Plans own their caches: what one has searched or holds in memory, the other does not
    see (without a shared directory each searches for itself), and their counts are their own."""
    import torch

    from qrnn_tn.backends import BackendOptions, get_backend

    program = compile_program(SPEC, steps=2)
    options = BackendOptions(backend_options={"cache_dir": None, "search_time": 0.0})
    one = get_backend("tensornet")(program, options)
    two = get_backend("tensornet")(program, options)
    assert one.paths is not two.paths
    assert one.paths.searches == two.paths.searches == program.steps
    shared = BackendOptions(backend_options={"cache_dir": str(tmp_path), "search_time": 0.0})
    three = get_backend("tensornet")(program, shared)
    four = get_backend("tensornet")(program, shared)
    assert three.paths.searches == program.steps and four.paths.searches == 0  # from disk
    params = torch.linspace(-1, 1, program.n_params, dtype=torch.float64)
    words = torch.tensor([[0, 3, 1]])
    torch.testing.assert_close(one.run(params, words).probs, four.run(params, words).probs)

"""Contraction trees for readout networks: search, slicing, on-disk cache, cost estimates.

The search tries a structure-aware lane sweep (contract lane by lane from the far end of the
register towards the i/o lanes, every step of ket and bra at once; its width is the number of
bonds a lane cut crosses) and the best of several randomised greedy trials; when the best of
these is still wide it runs cotengra's ``HyperOptimizer`` for a time budget. Trees are stored
by structure key as JSON (SSA path plus sliced indices), so later runs and training steps do
no search; :func:`search_count` counts the searches actually performed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cotengra as ctg
from cotengra.slicer import SliceFinder

from qrnn_tn.backends.tn_network import StepNetwork

__all__ = [
    "PathCacheWarning",
    "PlannerOptions",
    "SegmentPlan",
    "TreeCost",
    "clear_memory_cache",
    "find_tree",
    "greedy_estimate_tree",
    "search_count",
    "segment_plan",
    "slice_tree",
    "sweep_tree",
    "sweep_width",
    "tree_cost",
    "tree_score",
]

#: Widths above this trigger the time-boxed hyper-optimiser (when the budget allows).
HYPER_WIDTH = 14
#: Greedy trials the tree must beat (the issue's yardstick: no wider than the best of 8).
GREEDY_TRIALS = 8
#: Extra width (log2 elements) a candidate may have over the narrowest one and still be
#: chosen when its flops-plus-traffic score is lower: a few times more memory per
#: intermediate buys far fewer writes than a narrow sweep (which rewrites its wide
#: intermediate at every absorbed leaf); slicing in ``prepare`` still enforces the budget.
WIDTH_SLACK = 3

#: Weight of an element written against a flop in a tree's score (:func:`tree_score`).
WRITE_WEIGHT = 256
#: Leaves per subtree that :func:`_refine` re-optimises exhaustively.
RECONFIGURE_SUBTREE = 8

#: Networks up to this many tensors get the refined Python greedy tree in quick estimates
#: (:func:`greedy_estimate_tree`: a fraction of a second per step at 22 qubits, 3 steps).
ESTIMATE_SEARCH_MAX_TENSORS = 1000

#: Networks up to this many tensors also get cotengra's pure-Python greedy path, the
#: subtree reconfiguration of the chosen tree (:func:`_refine`) and, when wide, the
#: hyper-optimiser. On these networks of hyperedges the Python greedy finds much
#: narrower trees than cotengrust's (the quick contraction benchmark's n = 100, 2-step point
#: runs about 6× slower on cotengrust's tree), but its time, and that of one hyper-optimiser
#: trial (not interruptible, so the time box overran by minutes), grows faster than the
#: size: planning an all-to-all cell of 12 qubits over 2 steps (24 456 tensors) with them
#: took 110 s against a 5 s box (README, "Benchmarks").
PYTHON_SEARCH_MAX_TENSORS = 8000

#: Seconds a search may spend on its trials beyond the first greedy one (more greedy trials,
#: the Python greedy path, subtree reconfiguration); the hyper-optimiser has its own
#: ``search_time``. Networks small enough to finish inside it (all but those of tens of
#: thousands of tensors) always get the same tree; past it, the best tree found so far is
#: kept, so a search of an all-to-all cell ends in seconds rather than minutes.
SEARCH_SECONDS = 5.0
#: Slicing trials per target size (cotengra's default is 16; each stops at ``max_slices``).
SLICE_TRIALS = 16

_SEARCHES = 0
_MEMO: dict[tuple[str, str], ctg.ContractionTree] = {}


def search_count() -> int:
    """Number of path or slicing searches performed in this process (cache hits excluded)."""
    return _SEARCHES


def clear_memory_cache() -> None:
    """Forget trees held in memory (the disk cache stays), as a fresh process would."""
    _MEMO.clear()


@dataclass(frozen=True)
class PlannerOptions:
    """How hard to search and where to keep the results.

    ``search_time`` is the hyper-optimiser budget in seconds per network (0 disables it;
    networks over :data:`PYTHON_SEARCH_MAX_TENSORS` tensors skip it);
    ``cache_dir`` ``None`` keeps trees in memory only. ``parallel`` is handed to cotengra's
    ``HyperOptimizer``: ``False`` runs its trials in this process; a
    ``dask.distributed.Client`` (or a ``concurrent.futures`` executor) runs them there.
    """

    cache_dir: Path | None = None
    search_time: float = 5.0
    seed: int = 0
    parallel: Any = field(default=False, compare=False)


def symbols(net: StepNetwork) -> tuple[list[tuple[str, ...]], tuple[str, ...], dict[str, int]]:
    """The network's inputs, output and sizes with cotengra's single-character indices."""
    sym = ctg.get_symbol
    inputs = [tuple(sym(i) for i in inds) for inds in net.inputs]
    output = tuple(sym(i) for i in net.output)
    sizes = {sym(i): d for i, d in net.size_dict.items()}
    return inputs, output, sizes


def _sweep_order(net: StepNetwork) -> list[int]:
    """Leaves in the lane sweep's order: lanes from last to first, ket before bra."""
    n = len(net.leaves)
    half = n // 2
    return sorted(range(n), key=lambda i: (-net.leaves[i].lane, i // half, i % half))


def _sweep_path(net: StepNetwork) -> list[tuple[int, int]]:
    """SSA path absorbing leaves one by one in :func:`_sweep_order`."""
    n = len(net.leaves)
    order = _sweep_order(net)
    path, current = [], order[0]
    for ssa, i in enumerate(order[1:], start=n):
        path.append((current, i))
        current = ssa
    return path


def sweep_width(net: StepNetwork) -> float:
    """The lane sweep's width (log2 of its largest intermediate), without building its tree.

    Linear in the network: an index is open on the running intermediate once one of its
    tensors is absorbed and until all are (output indices stay open). Building the sweep's
    tree and asking cotengra for its width took 47 s on the 27 790 tensors of a 41-qubit
    all-to-all cell over 2 steps, whose intermediates carry hundreds of indices.
    """
    n = len(net.leaves)
    if n < 2:
        return 0.0
    inputs = net.inputs
    total: dict[int, int] = {}
    for inds in inputs:
        for i in set(inds):
            total[i] = total.get(i, 0) + 1
    output = set(net.output)
    absorbed: dict[int, int] = {}
    bits = widest = 0.0
    for k, leaf in enumerate(_sweep_order(net)):
        for i in set(inputs[leaf]):
            seen = absorbed.get(i, 0)
            absorbed[i] = seen + 1
            if seen == 0:
                bits += math.log2(net.size_dict[i])
            if seen + 1 == total[i] and i not in output:
                bits -= math.log2(net.size_dict[i])
        if k:
            widest = max(widest, bits)
    return widest


def sweep_tree(net: StepNetwork) -> ctg.ContractionTree:
    """The lane-sweep tree of ``net``: no search, so it is cheap enough for cost estimates."""
    inputs, output, sizes = symbols(net)
    if len(inputs) == 1:
        return ctg.ContractionTree.from_path(inputs, output, sizes, path=[])
    return ctg.ContractionTree.from_path(inputs, output, sizes, ssa_path=_sweep_path(net))


def greedy_estimate_tree(net: StepNetwork) -> ctg.ContractionTree | None:
    """The refined Python greedy tree of a network of at most
    :data:`ESTIMATE_SEARCH_MAX_TENSORS` tensors (else ``None``), for quick cost estimates:
    no time-boxed search, yet far closer to the planned cost than the lane sweep (which
    overestimated 3-step local cells 10–40-fold, enough for ``backend="auto"`` to pick a
    statevector several times slower)."""
    inputs, output, sizes = symbols(net)
    if len(inputs) < 2 or len(inputs) > ESTIMATE_SEARCH_MAX_TENSORS:
        return None
    greedy = _tree_of(_python_greedy, inputs, output, sizes)
    return _refine(greedy, greedy.contraction_width())


def tree_score(tree: ctg.ContractionTree) -> float:
    """Flops plus :data:`WRITE_WEIGHT` × elements written (cotengra's combo cost).

    On CPU, writing the intermediates (permutes, copies) dominates the time of these networks
    of many small-dimension indices, so the weight on writes is high: at n = 100, 2 steps it
    picks a width-18 tree over a width-17 lane sweep that writes 16× more, and runs 3× faster.
    """
    return tree.combo_cost(factor=WRITE_WEIGHT)


def _in_symbols(
    tree: ctg.ContractionTree,
    inputs: list[tuple[str, ...]],
    output: tuple[str, ...],
    sizes: dict[str, int],
) -> ctg.ContractionTree:
    """``tree`` over the network's own index names.

    ``array_contract_tree`` renames indices canonically; sliced indices found on such a tree
    would be stored under the wrong names and a tree reloaded from the cache would differ.
    """
    if tuple(tuple(ix) for ix in tree.inputs) == tuple(inputs):
        return tree
    return ctg.ContractionTree.from_path(inputs, output, sizes, ssa_path=tree.get_ssa_path())


def _tree_of(optimize, inputs, output, sizes) -> ctg.ContractionTree:
    """The tree ``optimize`` finds, in the network's own index names (:func:`_in_symbols`)."""
    tree = ctg.array_contract_tree(inputs, output, sizes, optimize=optimize)
    return _in_symbols(tree, inputs, output, sizes)


def _python_greedy(inputs, output, sizes, **_) -> list[tuple[int, int]]:
    """cotengra's pure-Python greedy path (the ``"greedy"`` preset is cotengrust's when
    installed)."""
    return ctg.pathfinders.path_basic.optimize_greedy(inputs, output, sizes)


def _search(net: StepNetwork, options: PlannerOptions) -> ctg.ContractionTree:
    """The best of the lane sweep, greedy trials and (when those are wide) a time-boxed
    hyper-optimisation. Each candidate is rebuilt in this network's symbols once and its
    width computed once: on all-to-all cells the trees have ~10^5 nodes, and cotengra's
    per-node bookkeeping, not the search, dominated planning.

    Time-boxed: after the first greedy trial, further trials run only while
    :data:`SEARCH_SECONDS` remain (the hyper-optimiser gets ``search_time``), and the lane
    sweep is built only when its width (:func:`sweep_width`, linear) is within
    :data:`WIDTH_SLACK` of the greedy tree's.
    """
    global _SEARCHES
    _SEARCHES += 1
    deadline = time.monotonic() + SEARCH_SECONDS
    inputs, output, sizes = symbols(net)

    def found(optimize) -> ctg.ContractionTree:
        return _tree_of(optimize, inputs, output, sizes)

    small = len(inputs) <= PYTHON_SEARCH_MAX_TENSORS
    # in-process trials: a pool would split them into per-worker seeds, so the tree would
    # depend on the machine's core count. Small networks run all trials in one call (a
    # second or so); larger ones one trial per call, so the time box can stop them.
    per_call = GREEDY_TRIALS if small else 1
    greedy = ctg.RandomGreedyOptimizer(max_repeats=per_call, seed=options.seed, parallel=False)
    ssa = greedy.ssa_path(inputs, output, sizes)
    for _ in range(GREEDY_TRIALS // per_call - 1):
        if time.monotonic() > deadline:
            break
        ssa = greedy.ssa_path(inputs, output, sizes)
    best = ctg.ContractionTree.from_path(inputs, output, sizes, ssa_path=ssa)
    candidates, widths = [best], [best.contraction_width()]
    if len(inputs) > 1 and sweep_width(net) <= widths[0] + WIDTH_SLACK:
        candidates.insert(0, sweep_tree(net))
        widths.insert(0, candidates[0].contraction_width())
    if small and time.monotonic() < deadline:
        candidates.append(found(_python_greedy))
        widths.append(candidates[-1].contraction_width())
    if small and min(widths) > HYPER_WIDTH and options.search_time > 0:
        hyper = ctg.HyperOptimizer(
            methods=["greedy", "labels"],
            minimize="write",
            max_time=options.search_time,
            max_repeats=10_000,
            parallel=options.parallel,
            progbar=False,
        )
        candidates.append(_in_symbols(hyper.search(inputs, output, sizes), inputs, output, sizes))
        widths.append(candidates[-1].contraction_width())
    max_width = min(widths) + WIDTH_SLACK
    fit = [t for t, w in zip(candidates, widths, strict=True) if w <= max_width]
    if small:
        fit = [_refine(t, max_width) if time.monotonic() < deadline else t for t in fit]
    return min(fit, key=tree_score)


def _refine(tree: ctg.ContractionTree, max_width: float) -> ctg.ContractionTree:
    """``tree`` after cotengra's subtree reconfiguration, if that lowers its score.

    Greedy paths on these networks of hyperedges make many locally poor choices that an
    exhaustive re-optimisation of small subtrees undoes (it more than halves the Python
    greedy tree's score on a 30-qubit local cell over 3 steps: ``test_tensornet.py``); it is
    what brought n = 100 over 3 steps under the memory guard. Every candidate is refined, not
    just the best: the best before is not always the best after. Its time grows with the
    tree, so only networks up to :data:`PYTHON_SEARCH_MAX_TENSORS` tensors get it.
    """
    refined = tree.subtree_reconfigure(
        subtree_size=RECONFIGURE_SUBTREE, minimize=f"combo-{WRITE_WEIGHT}", seed=0, progbar=False
    )
    if refined.contraction_width() <= max_width and tree_score(refined) < tree_score(tree):
        return refined
    return tree


class PathCacheWarning(UserWarning):
    """A path-cache entry was unusable (damaged, or for another network) or could not be
    written: the tree is searched again, and the run goes on."""


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as err:
        warnings.warn(
            f"path cache entry {path} is unreadable ({err}); searching again",
            PathCacheWarning,
            stacklevel=3,
        )
        return None
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict) -> None:
    """Write ``data`` atomically; an unwritable cache directory only costs a warning (the
    run goes on uncached)."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(
            f"cannot write the path cache {path.parent} ({err}); running uncached",
            PathCacheWarning,
            stacklevel=3,
        )


def _valid_ssa_path(data: dict, n: int) -> list[tuple[int, int]] | None:
    """The stored SSA path if it contracts ``n`` tensors into one, each exactly once."""
    steps = data.get("ssa_path")
    if not isinstance(steps, list) or len(steps) != max(n - 1, 0):
        return None
    alive = set(range(n))
    path = []
    for k, step in enumerate(steps):
        if not (
            isinstance(step, list)
            and len(step) == 2
            and all(type(i) is int for i in step)
            and step[0] != step[1]
            and all(i in alive for i in step)
        ):
            return None
        alive -= set(step)
        alive.add(n + k)
        path.append((step[0], step[1]))
    return path


def _invalid(path: Path, what: str) -> None:
    warnings.warn(
        f"path cache entry {path} {what}; searching again and replacing it",
        PathCacheWarning,
        stacklevel=3,
    )


def find_tree(net: StepNetwork, options: PlannerOptions) -> ctg.ContractionTree:
    """The (unsliced) contraction tree of ``net``: memory, then disk, then a search.

    A disk entry is checked against the network before use (a path that contracts its
    tensors, each exactly once); one that is not is warned about (:class:`PathCacheWarning`),
    searched again and replaced atomically.
    """
    key = net.key()
    memo_key = (key, "")
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    inputs, output, sizes = symbols(net)
    path = options.cache_dir / f"{key}.json" if options.cache_dir else None
    data = _read(path) if path else None
    ssa = None
    if data is not None:
        ssa = _valid_ssa_path(data, len(inputs))
        if ssa is None:
            _invalid(path, f"is not a contraction path of this network's {len(inputs)} tensors")
    if ssa is not None:
        tree = ctg.ContractionTree.from_path(inputs, output, sizes, ssa_path=ssa)
    else:
        tree = _search(net, options)
        if path:
            _write(path, {"ssa_path": [list(p) for p in tree.get_ssa_path()]})
    _MEMO[memo_key] = tree
    return tree


def _cached_slicing(
    data: dict,
    net: StepNetwork,
    tree: ctg.ContractionTree,
    target_size: int,
    max_slices: int | None,
) -> ctg.ContractionTree | None:
    """``tree`` sliced on a cache entry's indices, if they are sliceable indices of ``net``
    (not outputs) and reach ``target_size`` (or, as a failed search's result would, pass
    ``max_slices``); else ``None``."""
    names = data.get("sliced")
    if not isinstance(names, list) or not all(
        type(i) is int and i in net.size_dict and i not in net.output for i in names
    ):
        return None
    sliced = tree.copy()
    # ``tree`` may itself be sliced (the budget loop slices step by step): the stored
    # indices include its own, which must not be removed twice.
    for ix in dict.fromkeys(names):
        if ctg.get_symbol(ix) not in sliced.sliced_inds:
            sliced.remove_ind_(ctg.get_symbol(ix))
    failed = max_slices is not None and sliced.nslices > max_slices
    return sliced if sliced.max_size() <= target_size or failed else None


def slice_tree(
    net: StepNetwork,
    tree: ctg.ContractionTree,
    target_size: int,
    options: PlannerOptions,
    max_slices: int | None = None,
) -> ctg.ContractionTree:
    """``tree`` sliced so no intermediate exceeds ``target_size`` elements (cached).

    Output indices are never sliced, so every slice yields the full (partial) output. Each
    of the :data:`SLICE_TRIALS` trials stops once it passes ``max_slices`` slices (the
    result then has more slices than that: the caller refuses it), so a tree that slicing
    barely narrows costs a bounded search.
    """
    if tree.max_size() <= target_size:
        return tree
    global _SEARCHES
    key = net.key()
    memo_key = (key, str(target_size))
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    path = options.cache_dir / f"{key}.slice{target_size}.json" if options.cache_dir else None
    data = _read(path) if path else None
    sliced = None
    if data is not None:
        sliced = _cached_slicing(data, net, tree, target_size, max_slices)
        if sliced is None:
            _invalid(path, f"is not a slicing of this network to {target_size} elements")
    if sliced is None:
        _SEARCHES += 1
        sliced = _slice(tree, target_size, max_slices, options.seed)
        if path:
            index = {ctg.get_symbol(i): i for i in net.size_dict}
            _write(path, {"sliced": [index[ix] for ix in sliced.sliced_inds]})
    _MEMO[memo_key] = sliced
    return sliced


def _slice(
    tree: ctg.ContractionTree, target_size: int, max_slices: int | None, seed: int
) -> ctg.ContractionTree:
    """cotengra's ``tree.slice`` search (same trials, same choice), except that each trial
    also stops once it passes ``max_slices`` slices; when no trial reached ``target_size``,
    the narrowest attempt is returned (its slice count tells the caller it failed)."""
    finder = SliceFinder(
        tree,
        target_size=target_size,
        minimize=tree.get_default_objective(),
        allow_outer=False,
        seed=seed,
    )
    cap = None if max_slices is None else max_slices + 1
    for _ in range(SLICE_TRIALS):
        finder.trial(target_size=target_size, target_slices=cap)
    found = finder.costs.items()
    valid = [item for item in found if item[1].size <= target_size]
    if valid:
        ix_sl, _ = min(valid, key=lambda x: (x[1].total_flops, x[1].nslices, x[1].size))
    else:
        ix_sl, _ = min(found, key=lambda x: (x[1].size, x[1].nslices))
    sliced = tree.copy()
    for ix in ix_sl:
        sliced.remove_ind_(ix)
    return sliced


@dataclass(frozen=True)
class SegmentPlan:
    """Where one slice's contraction sequence is cut into checkpointed segments.

    ``cuts``: step positions starting a new segment (the first segment starts at 0);
    ``retained``: elements of the segment-boundary intermediates kept for backward;
    ``recompute``: the largest number of elements one segment writes (its intermediates,
    kept while that segment is recomputed and differentiated).
    """

    cuts: tuple[int, ...]
    retained: int
    recompute: int

    @property
    def backward_elements(self) -> int:
        return self.retained + self.recompute


def _step_sizes(tree: ctg.ContractionTree) -> tuple[list[int], list[int], int]:
    """Per contraction (traversal order): output size, and live intermediates after it; and
    the peak of live elements, leaves included (as cotengra's ``peak_size``), all from one
    traversal."""
    sizes, live_after = [], []
    live: dict = {}
    leaves = sum(int(tree.get_size(leaf)) for leaf in tree.gen_leaves())
    total = peak = leaves
    for p, left, right in tree.traverse():
        size = int(tree.get_size(p))
        total += size
        peak = max(peak, total)
        total -= int(tree.get_size(left)) + int(tree.get_size(right))
        live.pop(left, None)
        live.pop(right, None)
        live[p] = size
        sizes.append(size)
        live_after.append(sum(live.values()))
    return sizes, live_after, peak


def _segments_for(sizes: list[int], live_after: list[int], limit: int) -> SegmentPlan:
    cuts, retained, acc, worst = [], 0, 0, 0
    for i, size in enumerate(sizes):
        if acc and acc + size > limit:
            cuts.append(i)
            retained += live_after[i - 1]
            worst = max(worst, acc)
            acc = 0
        acc += size
    worst = max(worst, acc)
    return SegmentPlan(tuple(cuts), retained, worst)


def segment_plan(tree: ctg.ContractionTree) -> SegmentPlan:
    """Cut the contraction sequence so boundaries plus one recomputed segment are smallest.

    Classic sqrt(N) checkpointing, but measured in elements written rather than steps: a
    segment limit ``L`` keeps about ``write / L`` boundary intermediates and recomputes at
    most ``L`` elements at once; the best ``L`` on a geometric grid around
    ``sqrt(write * max_size)`` is taken.
    """
    return _segment_plan(*_step_sizes(tree)[:2])


def _segment_plan(sizes: list[int], live_after: list[int]) -> SegmentPlan:
    if not sizes:
        return SegmentPlan((), 0, 0)
    total, largest = sum(sizes), max(sizes)
    best = SegmentPlan((), 0, total)
    limit = largest
    while limit < total:
        plan = _segments_for(sizes, live_after, limit)
        if plan.backward_elements < best.backward_elements:
            best = plan
        limit = int(limit * 1.25) + 1
    return best


@dataclass(frozen=True)
class TreeCost:
    """Predicted cost of one network's contraction with its tree, per full run.

    ``forward_elements``: peak live elements of one slice's forward pass;
    ``backward_elements``: elements held while differentiating one slice: the segment
    boundaries kept by the per-segment checkpoints (:func:`segment_plan`), one recomputed
    segment's intermediates, two gradient buffers of the largest intermediate, plus the
    forward peak.
    """

    width: float
    flops: float
    slices: int
    forward_elements: int
    backward_elements: int
    segments: SegmentPlan
    written_elements: int = 0

    def backward_elements_for(self, checkpoint: bool) -> int:
        """:attr:`backward_elements`, or without checkpoints (the backend option
        ``checkpoint=False``): autograd then keeps every intermediate of every slice, each
        with its rescaled copy and a permuted operand."""
        if checkpoint:
            return self.backward_elements
        kept = 3 * self.written_elements * self.slices
        return self.backward_elements - self.segments.backward_elements + kept


def tree_cost(tree: ctg.ContractionTree) -> TreeCost:
    """Width, flops (real multiply-adds counted as 2), slices, memory and checkpoint
    segments of ``tree``."""
    sizes, live_after, peak = _step_sizes(tree)
    segments = _segment_plan(sizes, live_after)
    return TreeCost(
        width=float(tree.contraction_width()),
        flops=float(tree.total_flops(dtype="float")),
        slices=int(tree.nslices),
        forward_elements=int(peak),
        backward_elements=int(segments.backward_elements + 2 * tree.max_size() + peak),
        segments=segments,
        written_elements=int(sum(sizes)),
    )

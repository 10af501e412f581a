"""Contraction-tree search for readout networks: the lane sweep, greedy trials, refinement.

The search tries a structure-aware lane sweep (contract lane by lane from the far end of the
register towards the i/o lanes, every step of ket and bra at once; its width is the number of
bonds a lane cut crosses) and the best of several randomised greedy trials; when the best of
these is still wide it runs cotengra's ``HyperOptimizer`` for a time budget. Candidates are
scored by flops plus weighted writes (:func:`tree_score`) within a width slack of the
narrowest. Slicing (:func:`slice_search`) is cotengra's slice finder with a cap on the slice
count. Results are kept by :class:`~qrnn_tn.backends.tensornet.cache.PathCache`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cotengra as ctg
from cotengra.slicer import SliceFinder

from qrnn_tn.backends.tensornet.network import StepNetwork

__all__ = [
    "SearchOptions",
    "greedy_estimate_tree",
    "refine",
    "search_tree",
    "slice_search",
    "sweep_tree",
    "sweep_width",
    "symbols",
    "tree_score",
]

#: Widths above this trigger the time-boxed hyper-optimiser (when the budget allows).
HYPER_WIDTH = 14
#: Greedy trials the tree must beat: it is no wider than the best of them.
GREEDY_TRIALS = 8
#: Extra width (log2 elements) a candidate may have over the narrowest one and still be
#: chosen when its flops-plus-traffic score is lower: a few times more memory per
#: intermediate buys far fewer writes than a narrow sweep (which rewrites its wide
#: intermediate at every absorbed leaf); slicing in the plan still enforces the budget.
WIDTH_SLACK = 3

#: Weight of an element written against a flop in a tree's score (:func:`tree_score`).
WRITE_WEIGHT = 256
#: Leaves per subtree that :func:`refine` re-optimises exhaustively.
RECONFIGURE_SUBTREE = 8

#: Networks up to this many tensors get the refined Python greedy tree in quick estimates
#: (:func:`greedy_estimate_tree`).
ESTIMATE_SEARCH_MAX_TENSORS = 1000

#: Networks up to this many tensors also get cotengra's pure-Python greedy path, the
#: subtree reconfiguration of the chosen tree (:func:`refine`) and, when wide, the
#: hyper-optimiser. On these networks of hyperedges the Python greedy finds much narrower
#: trees than cotengrust's, but its time, and that of one hyper-optimiser trial (which
#: cannot be interrupted, so it can overrun the time box), grows faster than the size.
PYTHON_SEARCH_MAX_TENSORS = 8000

#: Seconds a search may spend on its trials beyond the first greedy one (more greedy trials,
#: the Python greedy path, subtree reconfiguration); the hyper-optimiser has its own
#: ``search_time``. Networks small enough to finish inside it (all but those of tens of
#: thousands of tensors) always get the same tree; past it, the best tree found so far is
#: kept.
SEARCH_SECONDS = 5.0
#: Slicing trials per target size (cotengra's default is 16; each stops at ``max_slices``).
SLICE_TRIALS = 16


@dataclass(frozen=True)
class SearchOptions:
    """How hard to search, and where the hyper-optimiser's trials run.

    ``search_time`` is the hyper-optimiser budget in seconds per network (0 disables it;
    networks over :data:`PYTHON_SEARCH_MAX_TENSORS` tensors skip it). ``parallel`` is handed
    to cotengra's ``HyperOptimizer``: ``False`` runs its trials in this process; a
    ``dask.distributed.Client`` (or a ``concurrent.futures`` executor) runs them there.
    """

    search_time: float = 5.0
    seed: int = 0
    parallel: Any = field(default=False, compare=False)


def symbols(net: StepNetwork) -> tuple[list[tuple[str, ...]], tuple[str, ...], dict[str, int]]:
    """Return the network's inputs, output and sizes in cotengra's single-character indices."""
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
    """Return the lane sweep's width (log2 of its largest intermediate), without its tree.

    Linear in the network: an index is open on the running intermediate once one of its
    tensors is absorbed and until all are (output indices stay open). Building the sweep's
    tree and asking cotengra for its width costs far more on wide all-to-all cells, whose
    intermediates carry hundreds of indices.
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
    """Return the lane-sweep tree of ``net``: no search, so cheap enough for estimates."""
    inputs, output, sizes = symbols(net)
    if len(inputs) == 1:
        return ctg.ContractionTree.from_path(inputs, output, sizes, path=[])
    return ctg.ContractionTree.from_path(inputs, output, sizes, ssa_path=_sweep_path(net))


def greedy_estimate_tree(net: StepNetwork) -> ctg.ContractionTree | None:
    """Return the refined Python greedy tree of a small network, for quick cost estimates.

    ``None`` for networks of more than :data:`ESTIMATE_SEARCH_MAX_TENSORS` tensors. No
    time-boxed search, yet far closer to the planned cost than the lane sweep, which
    overestimates local cells over several steps many times over (enough for
    ``backend="auto"`` to prefer a slower backend).
    """
    inputs, output, sizes = symbols(net)
    if len(inputs) < 2 or len(inputs) > ESTIMATE_SEARCH_MAX_TENSORS:
        return None
    greedy = tree_of(python_greedy, inputs, output, sizes)
    return refine(greedy, greedy.contraction_width())


def tree_score(tree: ctg.ContractionTree) -> float:
    """Return flops plus :data:`WRITE_WEIGHT` × elements written (cotengra's combo cost).

    On CPU, writing the intermediates (permutes, copies) dominates the time of these networks
    of many small-dimension indices, so the weight on writes is high: a slightly wider tree
    that writes far less beats a narrow lane sweep.
    """
    return tree.combo_cost(factor=WRITE_WEIGHT)


def _in_symbols(
    tree: ctg.ContractionTree,
    inputs: list[tuple[str, ...]],
    output: tuple[str, ...],
    sizes: dict[str, int],
) -> ctg.ContractionTree:
    """Return ``tree`` over the network's own index names.

    ``array_contract_tree`` renames indices canonically; sliced indices found on such a tree
    would be stored under the wrong names and a tree reloaded from the cache would differ.
    """
    if tuple(tuple(ix) for ix in tree.inputs) == tuple(inputs):
        return tree
    return ctg.ContractionTree.from_path(inputs, output, sizes, ssa_path=tree.get_ssa_path())


def tree_of(
    optimize: Any,
    inputs: list[tuple[str, ...]],
    output: tuple[str, ...],
    sizes: dict[str, int],
) -> ctg.ContractionTree:
    """Return the tree ``optimize`` finds, in the network's own index names."""
    tree = ctg.array_contract_tree(inputs, output, sizes, optimize=optimize)
    return _in_symbols(tree, inputs, output, sizes)


def python_greedy(
    inputs: list[tuple[str, ...]], output: tuple[str, ...], sizes: dict[str, int], **_: Any
) -> list[tuple[int, int]]:
    """Return cotengra's pure-Python greedy path.

    cotengra's ``"greedy"`` preset is cotengrust's when that is installed.
    """
    return ctg.pathfinders.path_basic.optimize_greedy(inputs, output, sizes)


def search_tree(net: StepNetwork, options: SearchOptions) -> ctg.ContractionTree:
    """Return the best of the lane sweep, greedy trials and a hyper-optimisation.

    The hyper-optimisation runs, time-boxed, only when the others are wide. Each candidate
    is rebuilt in this network's symbols once and its width computed once: on all-to-all
    cells the trees are large, and cotengra's per-node bookkeeping, not the search, would
    dominate planning.

    Time-boxed: after the first greedy trial, further trials run only while
    :data:`SEARCH_SECONDS` remain (the hyper-optimiser gets ``search_time``), and the lane
    sweep is built only when its width (:func:`sweep_width`, linear) is within
    :data:`WIDTH_SLACK` of the greedy tree's.
    """
    deadline = time.monotonic() + SEARCH_SECONDS
    inputs, output, sizes = symbols(net)

    def found(optimize: Callable[..., Any]) -> ctg.ContractionTree:
        return tree_of(optimize, inputs, output, sizes)

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
        candidates.append(found(python_greedy))
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
        fit = [refine(t, max_width) if time.monotonic() < deadline else t for t in fit]
    return min(fit, key=tree_score)


def refine(tree: ctg.ContractionTree, max_width: float) -> ctg.ContractionTree:
    """Return ``tree`` after cotengra's subtree reconfiguration, if that lowers its score.

    Greedy paths on these networks of hyperedges make many locally poor choices that an
    exhaustive re-optimisation of small subtrees undoes (it more than halves the Python
    greedy tree's score on a local cell over several steps). Every candidate is refined, not
    just the best: the best before is not always the best after. Its time grows with the
    tree, so only networks up to :data:`PYTHON_SEARCH_MAX_TENSORS` tensors get it.
    """
    refined = tree.subtree_reconfigure(
        subtree_size=RECONFIGURE_SUBTREE, minimize=f"combo-{WRITE_WEIGHT}", seed=0, progbar=False
    )
    if refined.contraction_width() <= max_width and tree_score(refined) < tree_score(tree):
        return refined
    return tree


def slice_search(
    tree: ctg.ContractionTree, target_size: int, max_slices: int | None, seed: int
) -> ctg.ContractionTree:
    """Return ``tree`` sliced so no intermediate exceeds ``target_size`` elements.

    cotengra's ``tree.slice`` search (same trials, same choice), except that each of the
    :data:`SLICE_TRIALS` trials also stops once it passes ``max_slices`` slices; when no
    trial reached ``target_size``, the narrowest attempt is returned (its slice count tells
    the caller it failed). Output indices are never sliced, so every slice yields the full
    (partial) output.
    """
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

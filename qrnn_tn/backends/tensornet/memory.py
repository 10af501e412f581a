"""The memory model of a contraction: peak elements forward, and with checkpoints backward.

A differentiated slice keeps the boundaries of its checkpoint segments and recomputes one
segment at a time; :func:`segment_plan` places the cuts so that boundaries plus the largest
recomputed segment are smallest, and :func:`tree_cost` sums a tree's memory and flops.
"""

from __future__ import annotations

from dataclasses import dataclass

import cotengra as ctg

__all__ = ["SegmentPlan", "TreeCost", "segment_plan", "tree_cost"]


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
        """Elements held while differentiating: the boundaries plus one segment."""
        return self.retained + self.recompute


def step_sizes(tree: ctg.ContractionTree) -> tuple[list[int], list[int], int]:
    """Return per-contraction sizes, live elements after each, and the peak.

    Per contraction in traversal order: its output's size and the live intermediates after
    it; and the peak of live elements, leaves included (as cotengra's ``peak_size``), all
    from one traversal.
    """
    sizes: list[int] = []
    live_after: list[int] = []
    live: dict[object, int] = {}
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
    """Cut wherever a segment would write more than ``limit`` elements."""
    cuts: list[int] = []
    retained = acc = worst = 0
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
    return _segment_plan(*step_sizes(tree)[:2])


def _segment_plan(sizes: list[int], live_after: list[int]) -> SegmentPlan:
    """Return the best plan over a geometric grid of segment limits."""
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
        """Return :attr:`backward_elements`, or that without checkpoints.

        Without checkpoints (the backend option ``checkpoint=False``) autograd keeps every
        intermediate of every slice, each with its rescaled copy and a permuted operand.
        """
        if checkpoint:
            return self.backward_elements
        kept = 3 * self.written_elements * self.slices
        return self.backward_elements - self.segments.backward_elements + kept


def tree_cost(tree: ctg.ContractionTree) -> TreeCost:
    """Return the width, flops, slices, memory and checkpoint segments of ``tree``.

    Flops count a real multiply-add as 2.
    """
    sizes, live_after, peak = step_sizes(tree)
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

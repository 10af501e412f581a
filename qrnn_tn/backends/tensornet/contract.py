"""Executing a contraction tree on torch tensors, with per-sequence rescaling and checkpoints.

Intermediates are rescaled by their largest entry (per sequence where they carry the batch
index) every few contractions; the factors are kept as a log-scale beside the mantissa, so
products of hundreds of neuron amplitudes neither underflow nor overflow. The factors are
detached: readouts are ratios, invariant to them, so gradients stay exact. Each slice is one
checkpoint region (:func:`~qrnn_tn.backends.recompute.recompute`): the forward keeps only
leaves and outputs, the backward recomputes one slice at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cotengra as ctg
import torch
from cotengra.contract import einsum as bmm_einsum

from qrnn_tn.backends.recompute import recompute
from qrnn_tn.backends.tensornet.memory import SegmentPlan, segment_plan

__all__ = ["Contraction", "compile_contraction", "sum_rescaled"]

#: Leaves absorbed into an intermediate between two rescalings.
RESCALE_EVERY = 6


@dataclass(frozen=True)
class _Step:
    left: int
    right: int
    out: int
    eq: str
    batch_axis: int
    rescale: bool
    #: ``(axes, perm)`` when the pair contracts as a tensordot (no shared kept index).
    dot: tuple | None = None

    def contract(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Tensordot (plus permutation) when possible, else a fused-index batched matmul."""
        if self.dot is None:
            return bmm_einsum(self.eq, a, b)
        axes, perm = self.dot
        x = torch.tensordot(a, b, dims=axes)
        return x if perm is None else x.permute(perm)


@dataclass(frozen=True)
class _Segment:
    """Steps ``[start, stop)``; the temps it consumes from before and leaves for after."""

    start: int
    stop: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Contraction:
    """A compiled tree: pairwise einsum steps and the slicing of its inputs."""

    tree: ctg.ContractionTree
    pre: tuple[tuple[int, str], ...]
    steps: tuple[_Step, ...]
    root: int
    batch: int
    segments: tuple[_Segment, ...] = ()

    def _steps(self, start: int, stop: int, temps: dict, scales: dict) -> None:
        for st in self.steps[start:stop]:
            x = st.contract(temps.pop(st.left), temps.pop(st.right))
            log = scales.pop(st.left) + scales.pop(st.right)
            if st.rescale:
                x, log = _rescale(x, log, st.batch_axis)
            temps[st.out], scales[st.out] = x, log

    def _segment(self, seg: _Segment, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = len(seg.inputs)
        temps = dict(zip(seg.inputs, tensors[:n], strict=True))
        scales = dict(zip(seg.inputs, tensors[n:], strict=True))
        self._steps(seg.start, seg.stop, temps, scales)
        return tuple(temps[k] for k in seg.outputs) + tuple(scales[k] for k in seg.outputs)

    def _core(
        self, *arrays: torch.Tensor, segmented: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        temps = dict(enumerate(arrays))
        for i, eq in self.pre:
            temps[i] = torch.einsum(eq, temps[i])
        zero = torch.zeros(self.batch, dtype=torch.float64)
        scales = {i: zero for i in temps}
        if not segmented:
            self._steps(0, len(self.steps), temps, scales)
            return temps[self.root], scales[self.root]
        for seg in self.segments:
            ins = [temps.pop(k) for k in seg.inputs] + [scales.pop(k) for k in seg.inputs]
            outs = recompute(self._segment, seg, *ins)
            n = len(seg.outputs)
            temps.update(zip(seg.outputs, outs[:n], strict=True))
            scales.update(zip(seg.outputs, outs[n:], strict=True))
        return temps[self.root], scales[self.root]

    def _segmented(self, *arrays: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._core(*arrays, segmented=True)

    def run(
        self, arrays: list[torch.Tensor], checkpointed: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Contract: ``(mantissa [batch, ...output], log_scale [batch])``, slices summed."""
        results: list[tuple[torch.Tensor, ...]] = []
        for i in range(self.tree.nslices):
            sliced = self.tree.slice_arrays(arrays, i) if self.tree.nslices > 1 else arrays
            if checkpointed and len(self.segments) > 1 and self.tree.nslices > 1:
                results.append(recompute(self._segmented, *sliced))
            elif checkpointed and len(self.segments) > 1:
                results.append(self._segmented(*sliced))
            elif checkpointed:
                results.append(recompute(self._core, *sliced))
            else:
                results.append(self._core(*sliced))
        if len(results) == 1:
            mantissa, log = results[0]
            return mantissa, log
        logs = torch.stack([log for _, log in results])
        top = logs.max(0).values
        return sum_rescaled(results, top), top


def sum_rescaled(results: Sequence[tuple[torch.Tensor, ...]], top: torch.Tensor) -> torch.Tensor:
    """Sum the mantissas of ``(mantissa, log_scale)`` pairs, each rescaled to log-scale ``top``."""
    total: torch.Tensor | None = None
    for mantissa, log in results:
        weight = torch.exp(log - top).to(mantissa.dtype)
        term = mantissa * weight.reshape(-1, *([1] * (mantissa.dim() - 1)))
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no slice results to sum")
    return total


def _rescale(
    x: torch.Tensor, log: torch.Tensor, batch_axis: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Divide by the largest magnitude (per batch entry if ``batch_axis >= 0``)."""
    with torch.no_grad():
        if batch_axis < 0:
            low, high = torch.aminmax(x)
            big = torch.maximum(high, -low).reshape(1)
            shape: list[int] = []
        elif x.dim() > 1:
            rows = x.movedim(batch_axis, 0).reshape(x.shape[batch_axis], -1)
            low, high = torch.aminmax(rows, dim=1)
            big = torch.maximum(high, -low)
            shape = [1] * x.dim()
            shape[batch_axis] = -1
        else:
            big = x.abs()
            shape = [-1]
        big = torch.where(big > 0, big, torch.ones_like(big))
    factor = big.reshape(shape) if shape else big.squeeze()
    return x / factor, log + torch.log(big.to(torch.float64)).expand_as(log)


def compile_contraction(
    tree: ctg.ContractionTree, batch_symbol: str, batch: int, segments: SegmentPlan | None = None
) -> Contraction:
    """Turn ``tree`` into einsum steps; decide where to rescale and where the batch axis is.

    ``segments``: the tree's checkpoint segments when already known (``TreeCost.segments``).
    """
    leaves = list(tree.gen_leaves())
    ssa = {leaf: i for i, leaf in enumerate(leaves)}
    absorbed = {i: 1 for i in range(len(leaves))}
    steps = []
    nxt = len(leaves)
    for p, left, right in tree.traverse():
        li, ri = ssa.pop(left), ssa.pop(right)
        count = absorbed.pop(li) + absorbed.pop(ri)
        inds = tree.get_inds(p)
        rescale = count >= RESCALE_EVERY or tree.is_root(p)
        dot = (
            (tree.get_tensordot_axes(p), tree.get_tensordot_perm(p))
            if tree.get_can_dot(p)
            else None
        )
        eq = tree.get_einsum_eq(p)
        steps.append(_Step(li, ri, nxt, eq, inds.find(batch_symbol), rescale, dot))
        absorbed[nxt] = 0 if rescale else count
        ssa[p] = nxt
        nxt += 1
    pre = tuple((i, eq) for i, eq in tree.preprocessing.items())
    return Contraction(
        tree=tree,
        pre=pre,
        steps=tuple(steps),
        root=nxt - 1 if steps else 0,
        batch=batch,
        segments=_segments(steps, (segments or segment_plan(tree)).cuts),
    )


def _segments(steps: list[_Step], cuts: tuple[int, ...]) -> tuple[_Segment, ...]:
    """Each segment's consumed and surviving temps, from the cut positions."""
    bounds = [0, *cuts, len(steps)]
    made = {st.out: i for i, st in enumerate(steps)}
    used = {}
    for i, st in enumerate(steps):
        used[st.left] = used[st.right] = i
    out = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        inside = steps[start:stop]
        inputs = tuple(k for st in inside for k in (st.left, st.right) if made.get(k, -1) < start)
        outputs = tuple(st.out for st in inside if used.get(st.out, len(steps)) >= stop)
        out.append(_Segment(start, stop, inputs, outputs))
    return tuple(out)

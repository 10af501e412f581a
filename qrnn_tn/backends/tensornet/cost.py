"""The tensor network's cost: per-step tree costs summed into a plan's :class:`Cost`.

:func:`summarise_cost` adds the leaves, outputs and per-tensor bookkeeping to the trees'
memory model (:mod:`~qrnn_tn.backends.tensornet.memory`) and times the run with the machine
model; :func:`estimate` is the quick cost ``choose`` compares, without the time-boxed search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from compiler.unroll import Program
from qrnn_tn.backends.base import (
    BackendError,
    BackendOptions,
    Cost,
    CostDetails,
    Estimate,
    format_bytes,
)
from qrnn_tn.backends.options import TensorNetOptions
from qrnn_tn.backends.tensornet.memory import TreeCost, tree_cost
from qrnn_tn.backends.tensornet.network import StepNetwork, iter_networks
from qrnn_tn.backends.tensornet.search import (
    greedy_estimate_tree,
    sweep_tree,
    sweep_width,
    tree_score,
)
from qrnn_tn.backends.timing import MachineModel
from qrnn_tn.dtypes import real_dtype

__all__ = [
    "TENSOR_BYTES",
    "TensorNetCostDetails",
    "check_leaves",
    "estimate",
    "format_log2_bytes",
    "summarise_cost",
]


@dataclass(frozen=True)
class TensorNetCostDetails(CostDetails):
    """The tensor network's facts of a plan.

    Per step, the log2 width of its largest intermediate and the slices its contraction is
    cut into; the tensors of the last step's network (which holds every other); the bytes of
    per-tensor bookkeeping (torch tensors and autograd nodes) a run adds.
    """

    widths_per_step: tuple[float, ...]
    slices_per_step: tuple[int, ...]
    tensors_last_step: int
    tensor_bookkeeping_bytes: int

    def lines(self) -> list[str]:
        """Return the facts as the plan's description shows them."""
        return [
            f"widths per step: {list(self.widths_per_step)}",
            f"slices per step: {list(self.slices_per_step)}",
            f"tensors (last step): {self.tensors_last_step}",
            f"tensor bookkeeping: {format_bytes(self.tensor_bookkeeping_bytes)}",
        ]


#: Bytes of bookkeeping per torch tensor of a run (the tensor, its storage header and
#: allocation, its Python object, its autograd node), with room to spare.
TENSOR_BYTES = 1024


def summarise_cost(
    program: Program,
    last: StepNetwork,
    batch: int,
    costs: list[TreeCost],
    itemsize: int,
    contractions: int,
    machine: MachineModel,
    checkpoint: bool = True,
    tensors: int = 0,
) -> Cost:
    """Return one :class:`Cost` from the per-step tree costs, the leaves and the outputs.

    The leaves are those of the last step's network, which holds every other;
    ``contractions``: pairwise contractions of one run, slices included; ``tensors``: those
    of one slice of every step (the intermediates a run creates).
    """
    leaves = sum(math.prod(last.size_dict[i] for i in leaf.inds) for leaf in last.leaves)
    # the leaves, and as much again while they are filled from the words (bits, one-hot rows)
    base = (2 * leaves + batch * program.steps) * itemsize
    # every leaf and every pairwise contraction is a torch tensor (and, differentiated, an
    # autograd node holding its inputs' metadata): small, but a run has thousands
    # (slices run one after another: one slice's count)
    bookkeeping = TENSOR_BYTES * (len(last.leaves) + tensors)
    forward = max(c.forward_elements for c in costs) * itemsize + base + bookkeeping
    backward = max(c.backward_elements_for(checkpoint) for c in costs) * itemsize + 2 * base
    backward += 2 * bookkeeping
    flops = sum(c.flops for c in costs)
    return Cost(
        backend="tensornet",
        width=max(c.width for c in costs),
        flops=flops,
        seconds=contractions * machine.tensornet_contraction_seconds
        + flops * machine.tensornet_flop_seconds,
        peak_bytes_forward=int(forward),
        peak_bytes_backward=int(backward),
        details=TensorNetCostDetails(
            widths_per_step=tuple(round(c.width, 1) for c in costs),
            slices_per_step=tuple(c.slices for c in costs),
            tensors_last_step=len(last.leaves),
            tensor_bookkeeping_bytes=2 * bookkeeping,
        ),
    )


def estimate(program: Program, options: BackendOptions) -> Estimate:
    """Return a quick cost for every step: no time-boxed search, no slicing.

    The lane sweep's width (linear in the network), then its tree, decide whether each step
    fits the budget (cheap, so a long program stops being costed at the first step over
    it); once every step fits, the refined greedy tree
    (:func:`~qrnn_tn.backends.tensornet.search.greedy_estimate_tree`) replaces the sweep where it
    scores lower. The search in :func:`prepare` weighs both and keeps the lowest-scoring
    tree, so this is close to an upper bound that :func:`qrnn_tn.backends.choose` can
    compare without paying for the full search: a step over the budget unsliced gives an
    :class:`~qrnn_tn.backends.base.Estimate` marked ``upper_bound`` (slicing may still fit
    it). Before any tree, a leaf tensor that no slicing within ``max_slices`` brings under
    the budget rules the backend out at once.
    """
    itemsize = torch.finfo(real_dtype(options.dtype)).bits // 8
    own = options.of(TensorNetOptions)
    budget = options.budget()
    sweeps, contractions = [], 0
    for step, net in enumerate(iter_networks(program, options.batch_size, own.neuron_form)):
        contractions += len(net.leaves) - 1
        check_leaves(net, step, itemsize, budget, own.max_slices)
        bits = sweep_width(net) + math.log2(itemsize)
        if bits > math.log2(budget):  # later steps contain this one: no need to cost them
            return Estimate(
                "tensornet",
                None,
                f"estimated {format_log2_bytes(bits)} unsliced for step {step}'s contraction "
                f"(quick estimate: the lane sweep's largest intermediate), over the memory "
                f"budget of {format_bytes(budget)}",
                upper_bound=True,
            )
        try:
            sweep = sweep_tree(net)
            cost = tree_cost(sweep)
        except OverflowError:
            raise BackendError(
                "the contraction of this program exceeds 2^1024 operations "
                "(too many steps of a densely connected cell for a tensor network)"
            ) from None
        need = cost.forward_elements * itemsize
        if need > budget:  # later steps contain this one: no need to cost them
            return Estimate(
                "tensornet",
                None,
                f"estimated {format_bytes(need)} unsliced for step {step}'s contraction "
                f"(quick estimate), over the memory budget of {format_bytes(budget)}",
                upper_bound=True,
            )
        sweeps.append((tree_score(sweep), cost))
    # every step fits as swept: only now pay for the refined greedy trees
    costs = []
    nets = iter_networks(program, options.batch_size, own.neuron_form)
    for net, (score, cost) in zip(nets, sweeps, strict=True):
        greedy = greedy_estimate_tree(net)
        costs.append(
            tree_cost(greedy) if greedy is not None and tree_score(greedy) < score else cost
        )
    total = summarise_cost(
        program,
        net,
        options.batch_size,
        costs,
        itemsize,
        contractions,
        options.machine_model(),
        own.checkpoint,
        contractions,
    )
    return Estimate("tensornet", total)


def format_log2_bytes(bits: float) -> str:
    """Return ``2^bits`` bytes in binary units, for sizes far beyond a float."""
    return format_bytes(2**bits) if bits < 60 else f"2^{bits:.1f} B"


def check_leaves(net: StepNetwork, step: int, itemsize: int, budget: int, max_slices: int) -> None:
    """Refuse a network whose largest leaf no slicing brings under the budget.

    Raises :class:`BackendError` when the largest leaf of ``net`` stays over ``budget``
    even cut into ``max_slices`` slices (each slice at most halves it), without building a
    tree.
    """
    bits = max(sum(math.log2(net.size_dict[i]) for i in inds) for inds in net.inputs)
    fits = math.log2(max(budget / itemsize, 1))
    if bits - math.log2(max_slices) > fits:
        raise BackendError(
            f"step {step}'s network holds a tensor of 2^{bits:.0f} elements "
            f"({format_bytes(2**bits * itemsize)}), which {max_slices} slices cannot bring "
            f"under the memory budget of {format_bytes(budget)} (a neuron with many "
            "sources); use a local topology, or the statevector for few qubits"
        )

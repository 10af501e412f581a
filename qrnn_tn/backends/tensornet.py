"""The tensor-network backend: exact readouts by contracting ket and bra networks (issue 6).

``prepare(program, options)`` builds the readout network of every step
(:mod:`qrnn_tn.backends.tn_network`), finds or loads a contraction tree for each
(:mod:`qrnn_tn.backends.tn_plan`), slices it until the predicted memory of a differentiated
run fits the budget, and reports the cost, all before any tensor work. ``run`` fills the
leaves from parameters and words (:mod:`qrnn_tn.backends.tn_values`) and contracts each step
once for the whole batch (:mod:`qrnn_tn.backends.tn_contract`).

Options: :class:`~qrnn_tn.backends.options.TensorNetOptions` (the path cache's directory,
search time, neuron form, slicing limit, checkpointing, and where the search runs its trials,
see :class:`~qrnn_tn.backends.tn_plan.PlannerOptions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cotengra as ctg
import torch

from compiler.unroll import Program
from qrnn_tn.backends.base import (
    BackendError,
    BackendOptions,
    Cost,
    CostDetails,
    Estimate,
    RunResult,
    check_params,
    check_words,
    format_bytes,
    register_backend,
    target_probs,
)
from qrnn_tn.backends.options import TensorNetOptions
from qrnn_tn.backends.tn_contract import Contraction, compile_contraction
from qrnn_tn.backends.tn_executor import run_on_executor
from qrnn_tn.backends.tn_network import (
    BATCH,
    NetworkSet,
    StepNetwork,
    build_networks,
    iter_networks,
)
from qrnn_tn.backends.tn_plan import (
    PlannerOptions,
    TreeCost,
    find_tree,
    greedy_estimate_tree,
    search_count,
    slice_tree,
    sweep_tree,
    sweep_width,
    tree_cost,
    tree_score,
)
from qrnn_tn.backends.tn_values import LeafValues
from qrnn_tn.dtypes import real_dtype

__all__ = ["TensorNetCostDetails", "TensorNetPlan", "estimate", "prepare", "search_count"]


#: What a user can change when a plan does not fit the memory budget.
WAYS_OUT = (
    "Ways out: fewer steps, a smaller batch, more slicing (the backend option max_slices), "
    "a local topology, a larger memory_budget, or another backend (statevector for few "
    "qubits, mps for long sequences)."
)


@dataclass
class _BatchPlan:
    """Networks, compiled contractions and per-step costs for one batch size."""

    networks: NetworkSet
    contractions: list[Contraction]
    costs: list[TreeCost]


class TensorNetPlan:
    """A program prepared for exact tensor-network contraction (see the module docstring)."""

    def __init__(self, program: Program, options: BackendOptions):
        self.program = program
        self.options = options
        self.dtype = real_dtype(options.dtype)
        own = options.of(TensorNetOptions)
        self.planner = PlannerOptions(
            cache_dir=own.cache_dir, search_time=own.search_time, parallel=own.parallel
        )
        self.neuron_form = own.neuron_form
        self.max_slices = own.max_slices
        self.checkpoint = own.checkpoint
        self._plans: dict[int, _BatchPlan] = {}
        self._plan(options.batch_size)

    @property
    def itemsize(self) -> int:
        return torch.finfo(self.dtype).bits // 8

    def _plan(self, batch: int) -> _BatchPlan:
        if batch in self._plans:
            return self._plans[batch]
        if batch < 1:
            raise BackendError(f"batch size must be >= 1; got {batch}")
        networks = build_networks(self.program, batch, self.neuron_form)
        budget = self.options.budget()
        contractions, costs = [], []
        for net in networks.networks:
            tree = find_tree(net, self.planner)
            sliced, cost = self._fit(net, tree, budget)
            contractions.append(
                compile_contraction(sliced, ctg.get_symbol(BATCH), batch, cost.segments)
            )
            costs.append(cost)
        plan = _BatchPlan(networks, contractions, costs)
        self._plans[batch] = plan
        return plan

    def _fit(self, net, tree: ctg.ContractionTree, budget: int):
        """Slice ``tree`` until a differentiated run fits ``budget``, else BackendError.

        Before any slicing search (a cotengra trial per index, slow on trees of 10^4 nodes):
        ``max_slices`` slices divide the largest intermediate by at most ``max_slices``, and a
        differentiated slice holds it three times (forward peak and two gradient buffers), so a
        tree whose largest intermediate stays over the budget that way is refused at once.
        """
        floor = 3 * tree.max_size() * self.itemsize
        if floor > budget * self.max_slices:
            raise BackendError(
                f"tensornet: step {net.step}'s best contraction tree found (width "
                f"{tree.contraction_width():.0f}) needs at least "
                f"{_format_log2_bytes(math.log2(floor / self.max_slices))} per slice to run "
                f"with gradients even cut into max_slices={self.max_slices} slices, over the "
                f"memory budget of {format_bytes(budget)}. " + WAYS_OUT
            )
        cost = tree_cost(tree)
        best = cost
        target = tree.max_size()

        def backward(c: TreeCost) -> int:
            return c.backward_elements_for(self.checkpoint)

        while backward(cost) * self.itemsize > budget or cost.slices > self.max_slices:
            target //= 2
            if target < 16 or cost.slices > self.max_slices:
                if best.slices > 1:
                    sliced = f"still over budget with {best.slices} slices"
                else:
                    sliced = "slicing does not reduce it"
                if cost.slices > self.max_slices:
                    # Slicing hyperedges barely narrows a tree, so the count can be
                    # astronomical: report its order of magnitude, not the integer.
                    need = f"2^{math.log2(cost.slices):.0f}"
                    sliced += f" within max_slices={self.max_slices} (it would take {need})"
                raise BackendError(
                    f"tensornet: step {net.step} needs about "
                    f"{format_bytes(backward(best) * self.itemsize)} to run with "
                    f"gradients (width {best.width:.0f}; {sliced}; budget "
                    f"{format_bytes(budget)}). " + WAYS_OUT
                )
            tree = slice_tree(net, tree, target, self.planner, self.max_slices)
            cost = tree_cost(tree)
            if cost.slices <= self.max_slices and (
                backward(cost) < backward(best) or best.slices == 1
            ):
                best = cost
        return tree, cost

    @property
    def cost(self) -> Cost:
        """Predicted cost for ``options.batch_size`` (no tensor work)."""
        plan = self._plan(self.options.batch_size)
        networks = plan.networks
        last = networks.networks[-1]
        pairs = zip(plan.contractions, plan.costs, strict=True)
        contractions = sum(len(c.steps) * cost.slices for c, cost in pairs)
        tensors = sum(len(c.steps) for c in plan.contractions)
        return _summarise_cost(
            self.program,
            last,
            networks.batch,
            plan.costs,
            self.itemsize,
            contractions,
            self.checkpoint,
            tensors,
        )

    def run(
        self,
        params: torch.Tensor,
        words: torch.Tensor,
        *,
        mode: str = "teacher",
        generator: torch.Generator | None = None,
        executor: Any = None,
    ) -> RunResult:
        """Per-step distributions of every sequence (``words``: ``[batch, steps + 1]``).

        ``executor``: a :class:`concurrent.futures.Executor` or ``dask.distributed.Client``
        (anything with ``submit``); the slices of every step, and their gradients, are then
        contracted there (:mod:`qrnn_tn.backends.tn_executor`). ``None``: in this process.
        """
        program = self.program
        words = check_words(program, words, mode, "tensornet")
        params = check_params(program, params, "tensornet").to(self.dtype)
        batch = words.shape[0]
        plan = self._plan(batch)
        values = LeafValues(program, params, words)
        values.prepare_neurons(plan.networks.neurons)
        grad = torch.is_grad_enabled() and params.requires_grad and self.checkpoint
        probs, log_norm = [], None
        for t, (net, contraction) in enumerate(
            zip(plan.networks.networks, plan.contractions, strict=True)
        ):
            arrays = [values.value(leaf) for leaf in net.leaves]
            if executor is None:
                mantissa, log_scale = contraction.run(arrays, grad)
            else:
                mantissa, log_scale = run_on_executor(contraction, arrays, executor)
            unnorm = mantissa.reshape(batch, -1)
            norm = unnorm.sum(1)
            p = unnorm / norm[:, None]
            probs.append(p)
            log_norm = torch.log(norm.to(torch.float64)) + log_scale
            if mode == "sample":
                drawn = torch.multinomial(p.detach().clamp_min(0), 1, generator=generator)
                words[:, t + 1] = drawn[:, 0]
        out = torch.stack(probs, 1)
        target = target_probs(program, out, words)
        return RunResult(probs=out, target_prob=target, log_norm=log_norm, words=words)


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


#: Time model of a forward+backward run (:attr:`Cost.seconds`): seconds per pairwise
#: contraction (its forward, recomputation, backward and rescaling launches) and per flop of
#: the tree's count; fitted to the local r = 1 points of ``python -m
#: benchmarks.contraction_scaling --threads 1`` (8–22 qubits, 1–3 steps: about 100 µs per
#: contraction at every size, 0.2 ns per flop once the flops dominate).
CONTRACTION_SECONDS = 100e-6
FLOP_SECONDS = 0.2e-9
#: Bytes of bookkeeping per torch tensor of a run (the tensor, its storage header and
#: allocation, its Python object, its autograd node): about 0.6 KiB in
#: ``tests/qrnn_tn/backends/test_memory_guard.py``'s networks of a few hundred tensors.
TENSOR_BYTES = 1024


def _summarise_cost(
    program: Program,
    last: StepNetwork,
    batch: int,
    costs: list[TreeCost],
    itemsize: int,
    contractions: int,
    checkpoint: bool = True,
    tensors: int = 0,
) -> Cost:
    """One :class:`Cost` from the per-step tree costs plus the leaves (of the last step's
    network, which holds every other) and the outputs; ``contractions``: pairwise
    contractions of one run, slices included; ``tensors``: those of one slice of every step
    (the intermediates a run creates)."""
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
        seconds=contractions * CONTRACTION_SECONDS + flops * FLOP_SECONDS,
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
    """A quick cost for every step: no time-boxed search, no slicing.

    The lane sweep's width (linear in the network), then its tree, decide whether each step
    fits the budget (cheap, so a long program stops being costed at the first step over
    it); once every step fits, the refined greedy tree
    (:func:`~qrnn_tn.backends.tn_plan.greedy_estimate_tree`) replaces the sweep where it
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
        _check_leaves(net, step, itemsize, budget, own.max_slices)
        bits = sweep_width(net) + math.log2(itemsize)
        if bits > math.log2(budget):  # later steps contain this one: no need to cost them
            return Estimate(
                "tensornet",
                None,
                f"estimated {_format_log2_bytes(bits)} unsliced for step {step}'s contraction "
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
    cost = _summarise_cost(
        program,
        net,
        options.batch_size,
        costs,
        itemsize,
        contractions,
        own.checkpoint,
        contractions,
    )
    return Estimate("tensornet", cost)


def _format_log2_bytes(bits: float) -> str:
    """Format ``2^bits`` bytes in binary units, for sizes far beyond a float."""
    return format_bytes(2**bits) if bits < 60 else f"2^{bits:.1f} B"


def _check_leaves(net: StepNetwork, step: int, itemsize: int, budget: int, max_slices: int):
    """:class:`BackendError` when the largest leaf of ``net`` stays over ``budget`` even cut
    into ``max_slices`` slices (each slice at most halves it), without building a tree."""
    bits = max(sum(math.log2(net.size_dict[i]) for i in inds) for inds in net.inputs)
    fits = math.log2(max(budget / itemsize, 1))
    if bits - math.log2(max_slices) > fits:
        raise BackendError(
            f"step {step}'s network holds a tensor of 2^{bits:.0f} elements "
            f"({format_bytes(2**bits * itemsize)}), which {max_slices} slices cannot bring "
            f"under the memory budget of {format_bytes(budget)} (a neuron with many "
            "sources); use a local topology, or the statevector for few qubits"
        )


def prepare(program: Program, options: BackendOptions) -> TensorNetPlan:
    """Build, plan and cost ``program`` for the tensor-network backend."""
    return TensorNetPlan(program, options)


register_backend("tensornet", prepare, estimate, options=TensorNetOptions)

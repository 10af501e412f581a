"""The tensor-network plan: readout networks, their trees and slicing, then runs.

``prepare(program, options)`` builds the readout network of every step
(:mod:`~qrnn_tn.backends.tensornet.network`), finds or loads a contraction tree for each
(:mod:`~qrnn_tn.backends.tensornet.search`, kept by the plan's
:class:`~qrnn_tn.backends.tensornet.cache.PathCache`), slices it until the predicted memory of
a differentiated run (:mod:`~qrnn_tn.backends.tensornet.memory`) fits the budget, and reports
the cost (:mod:`~qrnn_tn.backends.tensornet.cost`), all before any tensor work. ``run`` fills
the leaves from parameters and words (:mod:`~qrnn_tn.backends.tensornet.values`) and contracts
each step once for the whole batch (:mod:`~qrnn_tn.backends.tensornet.contract`), in this
process or on an executor (:mod:`~qrnn_tn.backends.tensornet.executor`).
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
    RunResult,
    check_params,
    check_words,
    format_bytes,
    target_probs,
)
from qrnn_tn.backends.options import TensorNetOptions
from qrnn_tn.backends.tensornet.cache import PathCache
from qrnn_tn.backends.tensornet.contract import Contraction, compile_contraction
from qrnn_tn.backends.tensornet.cost import format_log2_bytes, summarise_cost
from qrnn_tn.backends.tensornet.executor import run_on_executor
from qrnn_tn.backends.tensornet.memory import TreeCost, tree_cost
from qrnn_tn.backends.tensornet.network import BATCH, NetworkSet, StepNetwork, build_networks
from qrnn_tn.backends.tensornet.search import SearchOptions, search_tree, slice_search
from qrnn_tn.backends.tensornet.values import LeafValues
from qrnn_tn.dtypes import real_dtype

__all__ = ["BatchPlan", "TensorNetPlan", "find_tree", "prepare", "slice_tree"]


#: What a user can change when a plan does not fit the memory budget.
WAYS_OUT = (
    "Ways out: fewer steps, a smaller batch, more slicing (the backend option max_slices), "
    "a local topology, a larger memory_budget, or another backend (statevector for few "
    "qubits, mps for long sequences)."
)


def find_tree(net: StepNetwork, paths: PathCache, options: SearchOptions) -> ctg.ContractionTree:
    """Return the unsliced contraction tree of ``net``: cached, else searched."""
    return paths.tree(net, lambda: search_tree(net, options))


def slice_tree(
    net: StepNetwork,
    tree: ctg.ContractionTree,
    target_size: int,
    paths: PathCache,
    options: SearchOptions,
    max_slices: int | None = None,
) -> ctg.ContractionTree:
    """Return ``tree`` sliced so no intermediate exceeds ``target_size`` elements (cached).

    A search stops once it passes ``max_slices`` slices (the result then has more slices
    than that: the caller refuses it), so a tree that slicing barely narrows costs a bounded
    search.
    """
    if tree.max_size() <= target_size:
        return tree
    return paths.sliced(
        net,
        tree,
        target_size,
        max_slices,
        lambda: slice_search(tree, target_size, max_slices, options.seed),
    )


@dataclass
class BatchPlan:
    """Networks, compiled contractions and per-step costs for one batch size."""

    networks: NetworkSet
    contractions: list[Contraction]
    costs: list[TreeCost]


class TensorNetPlan:
    """A program prepared for exact tensor-network contraction (see the module docstring).

    ``paths`` is the plan's own :class:`~qrnn_tn.backends.tensornet.cache.PathCache` (in
    the option ``cache_dir``, when set); ``search`` says how its misses are searched.
    """

    def __init__(self, program: Program, options: BackendOptions):
        self.program = program
        self.options = options
        self.dtype = real_dtype(options.dtype)
        own = options.of(TensorNetOptions)
        self.paths = PathCache(own.cache_dir)
        self.search = SearchOptions(search_time=own.search_time, parallel=own.parallel)
        self.neuron_form = own.neuron_form
        self.max_slices = own.max_slices
        self.checkpoint = own.checkpoint
        self._plans: dict[int, BatchPlan] = {}
        self.batch_plan(options.batch_size)

    @property
    def itemsize(self) -> int:
        """Bytes of one element of the run's real dtype."""
        return torch.finfo(self.dtype).bits // 8

    def batch_plan(self, batch: int) -> BatchPlan:
        """Return the networks, contractions and costs of a run of ``batch`` sequences.

        Planned on first use (trees found or loaded, sliced to the budget, compiled) and
        kept by the plan, so later runs of the same batch size reuse them.
        """
        if batch in self._plans:
            return self._plans[batch]
        if batch < 1:
            raise BackendError(f"batch size must be >= 1; got {batch}")
        networks = build_networks(self.program, batch, self.neuron_form)
        budget = self.options.budget()
        contractions, costs = [], []
        for net in networks.networks:
            tree = find_tree(net, self.paths, self.search)
            sliced, cost = self._fit(net, tree, budget)
            contractions.append(
                compile_contraction(sliced, ctg.get_symbol(BATCH), batch, cost.segments)
            )
            costs.append(cost)
        plan = BatchPlan(networks, contractions, costs)
        self._plans[batch] = plan
        return plan

    def _fit(
        self, net: StepNetwork, tree: ctg.ContractionTree, budget: int
    ) -> tuple[ctg.ContractionTree, TreeCost]:
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
                f"{format_log2_bytes(math.log2(floor / self.max_slices))} per slice to run "
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
            tree = slice_tree(net, tree, target, self.paths, self.search, self.max_slices)
            cost = tree_cost(tree)
            if cost.slices <= self.max_slices and (
                backward(cost) < backward(best) or best.slices == 1
            ):
                best = cost
        return tree, cost

    @property
    def cost(self) -> Cost:
        """Predicted cost for ``options.batch_size`` (no tensor work)."""
        plan = self.batch_plan(self.options.batch_size)
        networks = plan.networks
        last = networks.networks[-1]
        pairs = zip(plan.contractions, plan.costs, strict=True)
        contractions = sum(len(c.steps) * cost.slices for c, cost in pairs)
        tensors = sum(len(c.steps) for c in plan.contractions)
        return summarise_cost(
            self.program,
            last,
            networks.batch,
            plan.costs,
            self.itemsize,
            contractions,
            self.options.machine_model(),
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
        contracted there (:mod:`~qrnn_tn.backends.tensornet.executor`). ``None``: in this process.
        """
        program = self.program
        words = check_words(program, words, mode, "tensornet")
        params = check_params(program, params, "tensornet").to(self.dtype)
        batch = words.shape[0]
        plan = self.batch_plan(batch)
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
        if log_norm is None:
            raise BackendError("tensornet: the program has no readout to simulate")
        out = torch.stack(probs, 1)
        target = target_probs(program, out, words)
        return RunResult(probs=out, target_prob=target, log_norm=log_norm, words=words)


def prepare(program: Program, options: BackendOptions) -> TensorNetPlan:
    """Build, plan and cost ``program`` for the tensor-network backend."""
    return TensorNetPlan(program, options)

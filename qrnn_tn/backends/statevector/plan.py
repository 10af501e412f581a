"""The statevector plan: lowering, fusion and checkpoints prepared once, runs on demand.

Gradients: a custom :class:`torch.autograd.Function` keeps one state every ``segment``
state-changing kernels (default ``⌈√kernels⌉``) and, in the backward pass, replays each
segment from its checkpoint and runs every kernel's exact adjoint (a block's gradient, summed
over its uses, goes back through its kernels once): peak memory about ``2√kernels`` states,
where autograd keeps several per kernel.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

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
from qrnn_tn.backends.options import StatevectorOptions
from qrnn_tn.backends.statevector.cost import Schedule, predict_cost
from qrnn_tn.backends.statevector.fusion import fuse
from qrnn_tn.backends.statevector.kernels import Kernel
from qrnn_tn.backends.statevector.lowering import (
    DECAY_LIMIT_BITS,
    Lowering,
    check_program,
    sampleable,
)
from qrnn_tn.backends.statevector.run import Run
from qrnn_tn.backends.statevector.tables import Tables, cache_tables
from qrnn_tn.dtypes import real_dtype

__all__ = ["StatevectorPlan", "prepare", "segments"]


def segments(kernels: list[Kernel], length: int) -> list[tuple[int, int]]:
    """Return kernel ranges, each with at most ``length`` state-changing kernels."""
    bounds, count = [0], 0
    for i, kernel in enumerate(kernels):
        if kernel.changes_state:
            if count == length:
                bounds.append(i)
                count = 0
            count += 1
    bounds.append(len(kernels))
    return list(zip(bounds[:-1], bounds[1:], strict=True))


class _Adjoint(torch.autograd.Function):
    """Forward keeping one checkpoint per segment; backward replays segments in reverse."""

    @staticmethod
    def forward(
        ctx: Any,
        params: torch.Tensor,
        plan: StatevectorPlan,
        words: torch.Tensor,
        mode: str,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        run = plan._new_run(params, words, mode, generator)
        checkpoints: list[torch.Tensor] = []
        plan._forward(run, checkpoints)
        ctx.save_for_backward(params)
        ctx.plan, ctx.run, ctx.checkpoints = plan, run, checkpoints
        probs, log_norm = run.outputs()
        ctx.mark_non_differentiable(run.words)
        return probs, log_norm, run.words

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_probs: torch.Tensor, grad_log_norm: torch.Tensor, grad_words: Any
    ) -> tuple[torch.Tensor, None, None, None, None]:
        (params,) = ctx.saved_tensors
        run = ctx.run
        run.tables.start_backward(params)
        run.grad_probs, run.grad_log_norm = grad_probs, grad_log_norm
        return ctx.plan._backward(run, ctx.checkpoints), None, None, None, None


class StatevectorPlan:
    """A :class:`Program` prepared for exact batched statevector simulation.

    ``run(params, words)`` returns per-step distributions ``[batch, steps, 2^io]``; see the
    package docstring for the algorithm and :class:`StatevectorOptions` for the options.
    """

    def __init__(self, program: Program, options: BackendOptions) -> None:
        check_program(program)
        self.program, self.options = program, options
        self.real_dtype = real_dtype(options.dtype)
        own = options.of(StatevectorOptions)
        self.gradient = own.gradient
        lowered = Lowering(program, DECAY_LIMIT_BITS[self.real_dtype])
        kernels, sizes = lowered.kernels, lowered.sizes
        if self.gradient == "recompute" and not options.dtype.is_complex and own.fuse is not False:
            item = self.real_dtype.itemsize
            machine = options.machine_model()
            kernels, sizes = fuse(kernels, sizes, options.batch_size, item, own.fuse, machine)
        changing = sum(k.changes_state for k in kernels)
        segment = own.segment or math.ceil(math.sqrt(changing))
        self.schedule = Schedule(
            kernels=kernels,
            sizes=sizes,
            providers=lowered.providers,
            arrangements=lowered.arrangements,
            segments=segments(kernels, segment),
            segment=segment,
        )
        self._cache_option = own.cache_tables
        self._sampleable = sampleable(program)

    # -- cost ---------------------------------------------------------------------------

    @property
    def cost(self) -> Cost:
        """Predicted cost for ``options.batch_size`` sequences (no tensor work)."""
        return self.cost_for(self.options.batch_size)

    def _cache_tables(self) -> bool:
        table_bytes = self.schedule.table_bytes(self.real_dtype.itemsize)
        return cache_tables(self._cache_option, table_bytes, self.options.budget())

    def cost_for(self, batch: int) -> Cost:
        """Return the predicted cost of a run of ``batch`` sequences (no tensor work).

        Peak bytes (forward; forward + backward), flops and seconds.
        """
        cached = self._cache_tables()
        return predict_cost(self.program, self.options, self.schedule, self.gradient, cached, batch)

    # -- running ------------------------------------------------------------------------

    def run(
        self,
        params: torch.Tensor,
        words: torch.Tensor,
        *,
        mode: str = "teacher",
        generator: torch.Generator | None = None,
    ) -> RunResult:
        """Simulate ``words [batch, steps + 1]`` (``[batch, 1]`` prompts in ``"sample"`` mode).

        Raises :class:`BackendError` before allocating when the predicted peak memory exceeds
        ``options.budget()``, and for malformed parameters or words.
        """
        params = self._check_params(params)
        words = self._check_words(words, mode)
        grad = torch.is_grad_enabled() and params.requires_grad
        self._check_budget(words.shape[0], grad)
        if grad and self.gradient == "recompute":
            probs, log_norm, words = _Adjoint.apply(params, self, words, mode, generator)
        else:
            run = self._new_run(params, words, mode, generator)
            with torch.set_grad_enabled(grad):
                self._forward(run, None)
            probs, log_norm = run.outputs()
            words = run.words
        target = target_probs(self.program, probs, words)
        return RunResult(probs=probs, target_prob=target, log_norm=log_norm, words=words)

    def _check_params(self, params: torch.Tensor) -> torch.Tensor:
        params = check_params(self.program, params, "statevector")
        return params.to(device=self.options.device, dtype=self.real_dtype)

    def _check_words(self, words: torch.Tensor, mode: str) -> torch.Tensor:
        words = check_words(self.program, words, mode, "statevector")
        if mode == "sample" and not self._sampleable:
            raise BackendError(
                "statevector: this program uses a token before the readout that samples it"
            )
        return words.to(device=self.options.device)

    def _check_budget(self, batch: int, grad: bool) -> None:
        cost = self.cost_for(batch)
        need = cost.peak_bytes_backward if grad else cost.peak_bytes_forward
        budget = self.options.budget()
        if need > budget:
            raise BackendError(
                f"statevector: this run needs about {format_bytes(need)} "
                f"({'forward + backward' if grad else 'forward'}; "
                f"{self.program.dag.n_qubits} qubits, batch {batch}, {self.program.steps} "
                f"steps, {self.options.dtype}) but the memory budget is "
                f"{format_bytes(budget)}; use a "
                "smaller batch, fewer steps, float32, or a larger BackendOptions.memory_budget"
            )

    def _new_run(
        self,
        params: torch.Tensor,
        words: torch.Tensor,
        mode: str,
        generator: torch.Generator | None,
    ) -> Run:
        cached = self._cache_tables()
        schedule = self.schedule
        tables = Tables(schedule.providers, schedule.arrangements, params, cached)
        return Run(words, mode, generator, tables, self.program.steps, self.program.io)

    def _forward(self, run: Run, checkpoints: list[torch.Tensor] | None) -> None:
        dtype, device = self.options.dtype, self.options.device
        kernels = self.schedule.kernels
        psi = torch.ones(1, run.batch, dtype=dtype, device=device)
        for start, stop in self.schedule.segments:
            if checkpoints is not None:
                checkpoints.append(psi)
            for kernel in kernels[start:stop]:
                psi = kernel.forward(psi, run)

    def _backward(self, run: Run, checkpoints: list[torch.Tensor]) -> torch.Tensor:
        mode, run.mode = run.mode, "replay"
        grad = None
        pairs = zip(reversed(self.schedule.segments), reversed(checkpoints), strict=True)
        for (start, stop), psi in pairs:
            kernels = self.schedule.kernels[start:stop]
            states = [psi]
            for kernel in kernels:
                states.append(kernel.forward(states[-1], run))
            if grad is None:
                grad = torch.zeros_like(states[-1])
            for i in range(len(kernels) - 1, -1, -1):
                grad = kernels[i].backward(states[i], states[i + 1], grad, run)
            del states
        run.mode = mode
        run.blocks.finish(run)
        return run.tables.finish()


def prepare(program: Program, options: BackendOptions) -> StatevectorPlan:
    """Prepare ``program`` for the statevector backend (cheap: no tensor work)."""
    return StatevectorPlan(program, options)

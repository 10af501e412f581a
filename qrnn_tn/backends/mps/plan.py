"""The MPS backend's plan: options, checkpointing and the runner of lowered instructions.

See :mod:`qrnn_tn.backends.mps` for the options and the truncation error bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch

from compiler.ir import WordBit
from compiler.unroll import Program
from qrnn_tn.backends.base import (
    BackendError,
    BackendOptions,
    Cost,
    RunResult,
    check_params,
    check_words,
    register_backend,
    target_probs,
)
from qrnn_tn.backends.mps.cost import bond_bound, mps_cost
from qrnn_tn.backends.mps.lowering import (
    ApplyNeuron,
    FlipOnBit,
    Lowered,
    ProjectToken,
    ReadOut,
    Rotate,
    Swap,
    lower_mps,
)
from qrnn_tn.backends.mps.state import BlockMPS
from qrnn_tn.backends.options import MPSOptions
from qrnn_tn.backends.recompute import recompute
from qrnn_tn.backends.threads import backward_threads, run_threads
from qrnn_tn.dtypes import real_dtype
from qrnn_tn.semantics import angle_value, neuron_amplitudes, token_bits

__all__ = ["MPSPlan", "prepare", "default_cutoff", "SINGLE_THREAD_BOND"]

#: Bond bound up to which a run takes one intra-op thread by default: below it the site
#: tensors are too small for a second thread to pay (``python -m benchmarks.mps_training
#: --parts threads``; at 100 lanes with every bond saturated at 32, two threads gained 20 %
#: on an idle machine and lost several times over on a busy one).
SINGLE_THREAD_BOND = 32


def default_cutoff(dtype: torch.dtype) -> float:
    """Relative singular-value cutoff that drops numerical zeros only."""
    return 1e-14 if dtype == torch.float64 else 1e-7


class _Tables:
    """Per-run coefficient tensors: ``c``, ``s`` of every neuron layout, RY cos/sin."""

    def __init__(self, neurons: list, rotations: list) -> None:
        self.neurons, self.rotations = neurons, rotations

    @property
    def flat(self) -> list[torch.Tensor]:
        return [t for pair in self.neurons + self.rotations for t in pair]

    @classmethod
    def unflatten(cls, lowered: Lowered, flat: Sequence[torch.Tensor]) -> _Tables:
        pairs = list(zip(flat[0::2], flat[1::2], strict=True))
        k = len(lowered.neurons)
        return cls(pairs[:k], pairs[k:])

    @classmethod
    def build(cls, lowered: Lowered, params: torch.Tensor) -> _Tables:
        """``c``, ``s`` of every neuron layout and RY cos/sin from the parameters."""
        neurons = []
        for table in lowered.neurons:
            slots = torch.as_tensor(table.slots, device=params.device)
            c, s = neuron_amplitudes(params, slots, table.monomials, table.offset, table.order)
            branch = torch.as_tensor(table.branch, device=params.device)
            neurons.append((c[branch].reshape(table.shape), s[branch].reshape(table.shape)))
        rotations = []
        for rotation in lowered.rotations:
            angle = angle_value(params, rotation)
            rotations.append((torch.cos(angle / 2), torch.sin(angle / 2)))
        return cls(neurons, rotations)


class MPSPlan:
    """A program prepared for the MPS backend (see the module doc for the options)."""

    def __init__(self, program: Program, options: BackendOptions) -> None:
        own = options.of(MPSOptions)
        self.program = program
        self.options = options
        self.dtype = real_dtype(options.dtype)
        self.max_bond = own.max_bond
        self.cutoff = default_cutoff(self.dtype) if own.cutoff is None else own.cutoff
        try:
            self.lowered = lower_mps(program, own.max_window)
        except ValueError as err:
            raise BackendError(str(err)) from err
        self.checkpoint_steps = own.checkpoint_steps
        self.threads_option = own.threads
        self.checkpoint_outer = self._outer_block(own.checkpoint_outer)
        self.cost = self._cost_at(self.checkpoint_outer)

    def _cost_at(self, checkpoint_outer: int) -> Cost:
        return mps_cost(
            self.program,
            self.lowered,
            batch=self.options.batch_size,
            max_bond=self.max_bond,
            exact=self.cutoff <= default_cutoff(self.dtype),
            itemsize=torch.finfo(self.dtype).bits // 8,
            checkpoint_steps=self.checkpoint_steps,
            checkpoint_outer=checkpoint_outer,
            machine=self.options.machine_model(),
        )

    def _outer_block(self, option: int | str) -> int:
        """Resolve ``checkpoint_outer`` to steps per outer block.

        A multiple of ``checkpoint_steps``, 0 for one level; ``"auto"`` as the package doc
        says. The backward memory grows with
        the outer block beyond ``√T``, so the longest block that fits is found by bisection.
        """
        inner, steps = self.checkpoint_steps, self.program.steps
        if not isinstance(option, str):
            if option and inner > 0 and option % inner:
                raise BackendError(
                    f"checkpoint_outer must be 'auto', 0 or a positive multiple of "
                    f"checkpoint_steps ({inner}); got {option!r}"
                )
            return option
        if option != "auto":
            raise BackendError(f"checkpoint_outer must be 'auto' or an integer; got {option!r}")
        budget = self.options.budget()
        if inner <= 0 or self._cost_at(0).peak_bytes_backward <= budget:
            return 0
        low = max(math.ceil(math.sqrt(steps) / inner), 1)  # in units of inner blocks
        high = max((steps - 1) // inner, low)
        if self._cost_at(low * inner).peak_bytes_backward > budget:
            return low * inner
        while low < high:  # invariant: low fits
            mid = (low + high + 1) // 2
            if self._cost_at(mid * inner).peak_bytes_backward <= budget:
                low = mid
            else:
                high = mid - 1
        return low * inner

    def run(
        self,
        params: torch.Tensor,
        words: torch.Tensor,
        *,
        mode: str = "teacher",
        generator: torch.Generator | None = None,
    ) -> RunResult:
        """Return the per-step distributions of ``words [batch, steps + 1]``.

        ``[batch, 1]`` prompts in ``"sample"`` mode; see :class:`RunResult`. Runs on :attr:`threads`
        intra-op threads, and so does its backward pass (:mod:`~qrnn_tn.backends.threads`).
        """
        program = self.program
        words = check_words(program, words, mode, "mps")
        params = check_params(program, params, "mps")
        device = self.options.device
        params = params.to(dtype=self.dtype, device=device)
        words = words.to(device=device)
        uniforms = None
        if mode == "sample":
            uniforms = torch.rand(
                words.shape[0], program.steps, generator=generator, dtype=self.dtype, device="cpu"
            ).to(device)
        threads = self.threads
        with run_threads(threads):
            run = partial(self._run, words=words, uniforms=uniforms)
            words, probs, log_norm, discarded = backward_threads(threads, params, run)
        return RunResult(
            probs=probs,
            target_prob=target_probs(program, probs, words),
            log_norm=log_norm.sum(dim=1),
            words=words,
            discarded=discarded.detach(),  # a diagnostic: truncation is not differentiated
        )

    @property
    def threads(self) -> int:
        """Intra-op threads of a run.

        The ``threads`` option, else one while the bond bound is at most
        :data:`SINGLE_THREAD_BOND`, else torch's current setting.
        """
        if self.threads_option is not None:
            return self.threads_option
        if bond_bound(self.program.n_lanes, self.max_bond) <= SINGLE_THREAD_BOND:
            return 1
        return torch.get_num_threads()

    def _run(
        self, params: torch.Tensor, *, words: torch.Tensor, uniforms: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        """``(words, probs, log_norm [B, steps], discarded)`` of a run from ``params``."""
        program, device = self.program, self.options.device
        batch = words.shape[0]
        tables = _Tables.build(self.lowered, params)
        state = BlockMPS.zeros(
            program.n_lanes, program.io, batch, self.dtype, device, self.max_bond, self.cutoff
        )
        flat = [state.block, *(site for site in state.sites if site is not None)]
        steps = range(program.steps)
        differentiable = params.requires_grad and torch.is_grad_enabled()
        checkpointed = differentiable and self.checkpoint_steps > 0
        inner = self.checkpoint_steps if self.checkpoint_steps > 0 else program.steps
        steps_fn = partial(self._run_steps, differentiable=differentiable)
        run = partial(self._chunks, size=inner, run=steps_fn, checkpointed=checkpointed)
        if checkpointed and self.checkpoint_outer:
            run = partial(self._chunks, size=self.checkpoint_outer, run=run, checkpointed=True)
        out = run(steps, uniforms, words, *flat, *tables.flat)
        return (out[0], *out[-3:])

    def _chunks(
        self,
        steps: range,
        uniforms: torch.Tensor | None,
        words: torch.Tensor,
        *tensors: torch.Tensor,
        size: int,
        run: Callable[..., tuple[torch.Tensor, ...]],
        checkpointed: bool,
    ) -> tuple[torch.Tensor, ...]:
        """Run ``steps`` in chunks of ``size`` steps through ``run``.

        Each chunk runs under a checkpoint but the last when ``checkpointed`` (the backward
        pass would recompute the last chunk at once, so its graph is kept instead); arguments
        and returns as :meth:`_run_steps`.
        A shorter remainder chunk comes first, so the chunk not recomputed is a full one.
        """
        n_state = self.program.n_lanes - self.program.io + 1
        flat, tables = tensors[:n_state], tensors[n_state:]
        outputs = []
        head = len(steps) % size or size
        starts = [steps.start, *range(steps.start + head, steps.stop, size)]
        for first, stop in zip(starts, [*starts[1:], steps.stop], strict=True):
            last = stop == steps.stop
            args = (range(first, stop), uniforms, words)
            if checkpointed and not last:
                out = recompute(run, *args, *flat, *tables)
            else:
                out = run(*args, *flat, *tables)
            words, flat = out[0], out[1:-3]
            outputs.append(out[-3:])
        joined = (torch.cat(x, dim=1) for x in zip(*outputs, strict=True))
        return (words, *flat, *joined)

    def _run_steps(
        self,
        steps: range,
        uniforms: torch.Tensor | None,
        words: torch.Tensor,
        *tensors: torch.Tensor,
        differentiable: bool,
    ) -> tuple[torch.Tensor, ...]:
        """Run ``steps`` from a state whose block is the i/o lanes (a checkpointable function).

        ``tensors`` are the block, the other sites in order, then the flat coefficient tables.
        Returns ``(words, block, *sites, probs, log_norm, discarded)``, the state again with
        its block on the i/o lanes. ``differentiable`` picks the gradient-safe splits (the
        same in a checkpoint's forward pass and its recomputation).
        """
        io, n = self.program.io, self.program.n_lanes
        block, sites = tensors[0], list(tensors[1 : n - io + 1])
        tables = _Tables.unflatten(self.lowered, tensors[n - io + 1 :])
        state = BlockMPS(
            [None] * io + sites, block, 0, io - 1, self.max_bond, self.cutoff, differentiable
        )
        words = words.clone()
        probs: list[torch.Tensor] = []
        log_norm: list[torch.Tensor] = []
        discarded: list[torch.Tensor] = []
        for step in steps:
            state.discarded = torch.zeros_like(state.discarded)
            norms: list[torch.Tensor] = []  # squared norms, their logs summed at the end
            p_step: torch.Tensor | None = None
            for ins in self.lowered.steps[step]:
                match ins:
                    case ApplyNeuron(a=a, b=b, target=target, table=table):
                        cos, sin = tables.neurons[table]
                        norms.append(state.neuron(a, b, target, cos, sin))
                    case Rotate(pos=pos, rotation=rotation):
                        cos, sin = tables.rotations[rotation]
                        state.rotate(pos, cos, sin)
                    case FlipOnBit(pos=pos, token=token, bit=bit):
                        state.flip(pos, token_bits(words, [WordBit(token, bit)], io).bool())
                    case Swap(pos=pos):
                        state.swap(pos)
                    case ReadOut():
                        p_step = state.marginal(io)
                        if uniforms is not None:
                            words[:, step + 1] = _sample(p_step, uniforms[:, step])
                    case ProjectToken(token=token):
                        word = words[:, token].clone()
                        p_token = state.marginal(io).gather(1, word[:, None])[:, 0]
                        state.project(io, word, p_token)
                        norms.append(p_token)
            if p_step is None:
                raise BackendError(f"mps: step {step} of the program has no readout")
            probs.append(p_step)
            log_norm.append(
                torch.log(torch.stack(norms)).sum(dim=0)
                if norms
                else torch.zeros_like(state.discarded)
            )
            discarded.append(state.discarded)
        state.cover(0, io - 1)
        return (
            words,
            state.block,
            *(state.site(k) for k in range(io, n)),
            torch.stack(probs, dim=1),
            torch.stack(log_norm, dim=1),
            torch.stack(discarded, dim=1),
        )


def _sample(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling with pre-drawn uniforms (so checkpoint recomputation agrees)."""
    cdf = probs.detach().cumsum(dim=1)
    index = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None])[:, 0]
    return index.clamp_max(probs.shape[1] - 1)


def prepare(program: Program, options: BackendOptions) -> MPSPlan:
    """Prepare ``program`` for the MPS backend (no tensor work; ``plan.cost`` is cheap)."""
    return MPSPlan(program, options)


register_backend("mps", prepare, options=MPSOptions)

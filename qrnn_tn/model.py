"""The QRNN as a torch module: canonical parameters, per-length programs, losses, labels.

:class:`QRNN` owns one flat parameter vector ``theta`` in the canonical slot order of
QRNN.md §5 and hands it to a backend plan (``qrnn_tn.backends``). Programs are compiled
per sequence length and plans prepared per ``(length, batch)``, both cached.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compiler.ir import Slot
from compiler.lower import build_slots
from compiler.spec import CellSpec, load_spec
from compiler.unroll import Program, compile_program
from qrnn_tn.backends import (
    BackendChoice,
    BackendOptions,
    Plan,
    RunResult,
    check_backend_options,
    choose,
    get_backend,
)
from qrnn_tn.backends.options import OptionsInput
from qrnn_tn.dtypes import real_dtype
from qrnn_tn.semantics import check_tokens

__all__ = ["QRNN", "LOSS_KINDS", "init_params", "step_losses", "step_targets", "sequence_loss"]

#: Loss kinds accepted by :meth:`QRNN.loss` (QRNN.md §6).
LOSS_KINDS = ("nll", "paper")
#: Prepared plans kept per model (least recently used are dropped).
_PLAN_CACHE_SIZE = 32


def step_targets(words: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """Return the word each step is projected on and scored against, ``[batch, L - 1]``.

    ``targets`` when given (a target stream of its own), else the next inputs ``words[:, 1:]``.
    """
    return words[:, 1:] if targets is None else targets


def step_losses(probs: torch.Tensor, targets: torch.Tensor, kind: str = "nll") -> torch.Tensor:
    """Per-step losses ``[batch, steps]`` of teacher-forced distributions.

    Parameters
    ----------
    probs
        ``[batch, steps, 2^io]`` per-step distributions.
    targets
        ``[batch, steps]`` the word step ``t`` is scored on (:func:`step_targets`).
    kind
        ``"nll"``: ``-log p_t(v_t)``. ``"paper"``: cross-entropy of the probabilities
        taken as logits minus that of a one-hot prediction, so a perfect prediction scores 0.
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss kind {kind!r} is unknown; accepted: {', '.join(LOSS_KINDS)}")
    p_target = probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if kind == "nll":
        return -torch.log(p_target.clamp_min(torch.finfo(probs.dtype).tiny))
    perfect = -1.0 + math.log(math.e + probs.shape[-1] - 1)
    return -p_target + torch.logsumexp(probs, dim=-1) - perfect


def sequence_loss(
    probs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, kind: str = "nll"
) -> torch.Tensor:
    """Mean of :func:`step_losses` over the unmasked steps (bool ``mask [batch, steps]``)."""
    if not bool(mask.any()):
        raise ValueError("the mask selects no step: there is nothing to score in this batch")
    return step_losses(probs, targets, kind)[mask].mean()


def init_params(
    program_or_slots: Program | Sequence[Slot],
    spec: CellSpec,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw parameters with the spec's initialisation (QRNN.md §5), float64, canonical order.

    Bias slots ``~ N(0, init.bias_std)``, weight slots ``~ N(0, init.weight_std)``, rotation
    slots ``~ N(0, init.rotation_std)``; :attr:`compiler.ir.Slot.kind` tells which.
    """
    slots = program_or_slots.slots if isinstance(program_or_slots, Program) else program_or_slots
    std = {
        "bias": spec.init.bias_std,
        "weight": spec.init.weight_std,
        "rotation": spec.init.rotation_std,
    }
    scale = torch.tensor([std[slot.kind] for slot in slots], dtype=torch.float64)
    return torch.randn(len(slots), dtype=torch.float64, generator=generator) * scale


class QRNN(nn.Module):
    """A quantum recurrent neural network cell (Bausch 2020) with trainable angles.

    Parameters
    ----------
    spec
        Anything :func:`compiler.spec.load_spec` accepts.
    backend
        A registered backend name, or ``"auto"`` to let :func:`qrnn_tn.backends.choose`
        pick the cheapest exact one for each sequence length (see :meth:`plan`).
    dtype
        Simulation dtype handed to the backend; ``theta`` uses its real counterpart.
    init
        Initial parameters in canonical order (length ``n_params``); default: the spec's
        normal initialisation drawn from ``generator`` (or a generator seeded with
        ``seed``, or torch's global generator).
    generator, seed
        Source of the initial parameters.
    memory_budget
        Bytes allowed to a plan (default: the available memory).
    backend_options
        Backend-specific options: a mapping such as ``{"max_bond": 32}`` (with ``"auto"``
        each backend receives the keys it reads) or typed objects such as
        ``MPSOptions(max_bond=32)`` (:mod:`qrnn_tn.backends.options`); checked here, once.

    Attributes
    ----------
    theta : nn.Parameter
        The angles in canonical order; ``slot_names[i]`` names ``theta[i]``.
    backend_choice : BackendChoice or None
        The backend of the latest plan and why it was chosen (``str()`` is a sentence; with
        ``backend="auto"`` it names the other candidates and their predicted times); ``None``
        before the first run. The run's :class:`~qrnn_tn.backends.RunResult` carries the MPS's
        discarded weight (``result.discarded``).
    """

    def __init__(
        self,
        spec: CellSpec | dict | str | Path,
        backend: str = "auto",
        dtype: torch.dtype = torch.float64,
        init: torch.Tensor | np.ndarray | Sequence[float] | None = None,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        memory_budget: int | None = None,
        backend_options: OptionsInput = None,
    ) -> None:
        super().__init__()
        self.spec = load_spec(spec)
        self.backend = backend
        self.dtype = dtype
        self.memory_budget = memory_budget
        self.backend_options = check_backend_options(backend_options, backend)
        slots = build_slots(self.spec)
        self.slot_names: tuple[str, ...] = tuple(s.name for s in slots)
        if init is None:
            if generator is None and seed is not None:
                generator = torch.Generator().manual_seed(seed)
            values = init_params(slots, self.spec, generator)
        else:
            values = torch.as_tensor(init, dtype=torch.float64).detach().clone()
            if values.shape != (len(slots),):
                raise ValueError(
                    f"init has shape {tuple(values.shape)}; this cell has {len(slots)} "
                    "parameters, so init must be a flat vector of that length in canonical order"
                )
        self.theta = nn.Parameter(values.to(real_dtype(dtype)))
        self._programs: dict[tuple[int, bool], Program] = {}
        self._plans: OrderedDict[tuple[int, int, bool], Plan] = OrderedDict()
        self._chosen: dict[tuple[int, bool], str] = {}  # program key -> backend choose() picked
        self.backend_choice: BackendChoice | None = None

    @property
    def io(self) -> int:
        """Bits per token (i/o lanes)."""
        return self.spec.io

    @property
    def n_params(self) -> int:
        """The number of trainable parameters."""
        return self.theta.numel()

    def slot_values(self) -> dict[str, float]:
        """Return the current angles by slot name (``in.h0.[]`` …), in canonical order."""
        return dict(zip(self.slot_names, self.theta.detach().tolist(), strict=True))

    def get_extra_state(self) -> dict[str, Any]:
        """Return what ``state_dict()`` saves beside ``theta``: the spec and the slot names."""
        return {"spec": self.spec.to_dict(), "slot_names": list(self.slot_names)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Check the saved slot names against this model's (see :meth:`get_extra_state`)."""
        names = tuple(state.get("slot_names", ()))
        if names != self.slot_names:
            raise ValueError(
                f"the state dict is for a cell with {len(names)} parameters "
                f"({', '.join(names[:3])}, …); this model has {len(self.slot_names)} "
                f"({', '.join(self.slot_names[:3])}, …): build the model from the saved spec"
            )

    def program(self, steps: int, separate_targets: bool = False) -> Program:
        """Return the compiled program for ``steps`` steps (cached).

        See :class:`Program` for ``separate_targets``.
        """
        key = (steps, separate_targets)
        if key not in self._programs:
            self._programs[key] = compile_program(
                self.spec, steps, separate_targets=separate_targets
            )
        return self._programs[key]

    def plan(self, steps: int, batch: int, separate_targets: bool = False) -> Plan:
        """Return the backend plan for ``steps`` steps and ``batch`` sequences (cached).

        With ``backend="auto"``, :func:`~qrnn_tn.backends.choose` runs once per length;
        other batch sizes of that length reuse its choice while it fits the memory budget,
        and choose again otherwise.
        """
        key = (steps, batch, separate_targets)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        options = BackendOptions(
            dtype=self.dtype,
            device=self.theta.device,
            memory_budget=self.memory_budget,
            batch_size=batch,
            backend_options=self.backend_options,
        )
        program = self.program(steps, separate_targets)
        if self.backend == "auto":
            plan = None
            program_key = (steps, separate_targets)
            if program_key in self._chosen:
                name = self._chosen[program_key]
                own = tuple(o for o in self.backend_options if o.backend == name)
                plan = get_backend(name)(program, replace(options, backend_options=own))
                if plan.cost.peak_bytes_backward > options.budget():
                    plan = None
            if plan is None:
                plan, self.backend_choice = choose(program, options)
                self._chosen[program_key] = plan.cost.backend
        else:
            plan = get_backend(self.backend)(program, options)
            reason = f"backend {self.backend} (as configured)"
            self.backend_choice = BackendChoice(self.backend, reason, plan.cost, "caller")
        self._plans[key] = plan
        if len(self._plans) > _PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
        return plan

    def check_words(self, words: torch.Tensor | np.ndarray, where: str = "words") -> torch.Tensor:
        """``words`` as an int64 tensor ``[batch, L]`` with ``L >= 2`` and ``io``-bit tokens."""
        words = torch.as_tensor(words)
        if words.ndim != 2 or words.shape[1] < 2 or words.shape[0] < 1:
            raise ValueError(
                f"{where} must have shape [batch, L] with batch >= 1 and L >= 2 tokens; "
                f"got {tuple(words.shape)}"
            )
        return self._tokens(words, where)

    def _tokens(self, tokens: torch.Tensor, where: str) -> torch.Tensor:
        """Return ``tokens`` as int64 on the model's device.

        Non-integers and words outside ``0 … 2^io - 1`` raise ``ValueError``.
        """
        return check_tokens(tokens, self.io, where, ValueError).to(self.theta.device)

    def check_targets(
        self, targets: torch.Tensor | np.ndarray | None, words: torch.Tensor
    ) -> torch.Tensor | None:
        """``targets`` as int64 ``[batch, L - 1]`` matching ``words`` (``None`` stays ``None``)."""
        if targets is None:
            return None
        targets = torch.as_tensor(targets)
        expected = (words.shape[0], words.shape[1] - 1)
        if tuple(targets.shape) != expected:
            raise ValueError(
                f"targets must have shape [batch, L-1] = {list(expected)} (one word per step); "
                f"got {list(targets.shape)}"
            )
        return self._tokens(targets, "targets")

    def run(
        self,
        words: torch.Tensor | np.ndarray,
        *,
        targets: torch.Tensor | np.ndarray | None = None,
        mode: str = "teacher",
        generator: torch.Generator | None = None,
    ) -> RunResult:
        """Return the backend's full :class:`RunResult` for ``words [batch, L]`` (``L - 1`` steps).

        ``targets [batch, L - 1]`` gives each step a word to be projected on other than the
        next input (teacher mode only); ``RunResult.words`` then holds the inputs followed by
        the targets.
        """
        words = self.check_words(words)
        targets = self.check_targets(targets, words)
        batch, length = words.shape
        if targets is not None:
            words = torch.cat([words, targets], dim=1)
        plan = self.plan(length - 1, batch, targets is not None)
        return plan.run(self.theta, words, mode=mode, generator=generator)

    def forward(
        self, words: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray | None = None
    ) -> torch.Tensor:
        """Teacher-forced per-step distributions ``[batch, L - 1, 2^io]`` (differentiable).

        Step ``t`` reads ``words[:, t]`` and is projected on ``targets[:, t]`` when given,
        else on the next input ``words[:, t + 1]``.
        """
        return self.run(words, targets=targets).probs

    def check_mask(self, mask: torch.Tensor | np.ndarray, words: torch.Tensor) -> torch.Tensor:
        """``mask`` as a bool tensor ``[batch, L - 1]`` matching ``words``."""
        mask = torch.as_tensor(mask, device=words.device)
        expected = (words.shape[0], words.shape[1] - 1)
        if mask.dtype != torch.bool or tuple(mask.shape) != expected:
            raise ValueError(
                f"mask must be a bool tensor of shape [batch, L-1] = {list(expected)}; "
                f"got {mask.dtype} of shape {list(mask.shape)}"
            )
        return mask

    def loss(
        self,
        words: torch.Tensor | np.ndarray,
        mask: torch.Tensor | np.ndarray | None = None,
        kind: str = "nll",
        targets: torch.Tensor | np.ndarray | None = None,
    ) -> torch.Tensor:
        """Mean loss over the unmasked steps (all steps without a mask): :func:`sequence_loss`.

        ``targets`` as in :meth:`forward`.
        """
        if kind not in LOSS_KINDS:
            raise ValueError(f"loss kind {kind!r} is unknown; accepted: {', '.join(LOSS_KINDS)}")
        words = self.check_words(words)
        targets = self.check_targets(targets, words)
        if mask is None:
            mask = torch.ones(words.shape[0], words.shape[1] - 1, dtype=torch.bool)
        mask = self.check_mask(mask, words)
        probs = self(words, targets)
        return sequence_loss(probs, step_targets(words, targets), mask, kind)

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor | np.ndarray | Sequence[int],
        steps: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Free-running generation: ``steps`` tokens sampled after each prompt.

        ``prompt`` is ``[batch, P]`` (or one sequence ``[P]``) of ``P >= 1`` tokens. Each
        step after the prompt projects on a word sampled from its distribution (QRNN.md §3,
        step 7). A one-token prompt is one run of the backend's ``"sample"`` mode; a longer
        prompt is teacher-forced, then each token is sampled from a teacher-forced run of the
        sequence so far (``steps`` runs). Returns ``[batch, P + steps]`` (``[P + steps]``
        for one sequence).
        """
        prompt = torch.as_tensor(prompt)
        single = prompt.ndim == 1
        if single:
            prompt = prompt.unsqueeze(0)
        if prompt.ndim != 2 or prompt.shape[1] < 1:
            raise ValueError(f"prompt must be [batch, P] with P >= 1; got {list(prompt.shape)}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
        batch, n_prompt = prompt.shape
        words = torch.zeros(batch, n_prompt + steps, dtype=torch.int64)
        words[:, :n_prompt] = prompt
        words = self.check_words(words, "prompt")
        if n_prompt == 1:
            words = self.run(words, mode="sample", generator=generator).words
        else:
            for t in range(n_prompt, n_prompt + steps):
                p_next = self(words[:, : t + 1])[:, -1]  # token t is only read after step t-1
                words[:, t] = torch.multinomial(p_next, 1, generator=generator).squeeze(1)
        return words[0] if single else words

    def label_distribution(
        self,
        words: torch.Tensor | np.ndarray,
        n_label_steps: int,
        targets: torch.Tensor | np.ndarray | None = None,
    ) -> torch.Tensor:
        """Exact joint distribution of the last ``n_label_steps`` label words (QRNN.md §3).

        Entry ``[b, v]`` is ``Π_i p_t(v_i)`` for the label words ``v = (v_1 … v_k)`` read as
        one integer MSB-first, each step teacher-forced on the branch's earlier label words
        (the collapse onto ``v_i`` shapes the later steps). Branches sharing ``v_1 … v_{k-1}``
        share one run, so ``2^(io (k-1))`` runs of the batch are made. With ``targets`` (as in
        :meth:`forward`) the label words are the last targets and the inputs stay as given.

        Returns
        -------
        torch.Tensor
            ``[batch, 2^(io k)]``, each row summing to 1.
        """
        words = self.check_words(words)
        targets = self.check_targets(targets, words)
        batch, length = words.shape
        k = n_label_steps
        if not 1 <= k <= length - 1:
            raise ValueError(f"n_label_steps must be in 1 … L-1 = 1 … {length - 1}; got {k}")
        n_words = 2**self.io
        n_prefix = n_words ** (k - 1)
        prefixes = torch.arange(n_prefix, device=words.device)
        shifts = self.io * torch.arange(k - 2, -1, -1, device=words.device)
        prefix_words = (prefixes[:, None] >> shifts[None, :]) & (n_words - 1)  # [M, k-1]
        # prefix-major rows m * batch + b; the targets of steps length-1-k … length-3 (the
        # next inputs when there is no target stream) are the branch's label words
        branched = step_targets(words, targets).repeat(n_prefix, 1)
        branched[:, length - 1 - k : length - 2] = prefix_words.repeat_interleave(batch, dim=0)
        if targets is None:
            probs = self(torch.cat([words[:, :1].repeat(n_prefix, 1), branched], dim=1))
        else:
            probs = self(words.repeat(n_prefix, 1), branched)
        probs = probs.view(n_prefix, batch, length - 1, n_words)
        first = length - 1 - k  # the step that predicts the first label word
        joint = torch.ones(n_prefix, batch, dtype=probs.dtype, device=probs.device)
        for i in range(k - 1):
            step_probs = probs[:, :, first + i, :]  # [M, batch, n_words]
            index = prefix_words[:, i].view(n_prefix, 1, 1).expand(n_prefix, batch, 1)
            joint = joint * step_probs.gather(-1, index).squeeze(-1)
        last = probs[:, :, length - 2, :] * joint.unsqueeze(-1)  # [M, batch, n_words]
        return last.permute(1, 0, 2).reshape(batch, n_prefix * n_words)

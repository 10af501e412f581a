"""The backend contract shared by every simulator (DESIGN.md).

``prepare(program, options) -> Plan``; ``Plan.cost`` is known before any tensor work;
``Plan.run(params, words, mode=...)`` returns a :class:`RunResult` of torch tensors that
autograd can differentiate with respect to ``params``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Protocol, TypeVar

import torch

from compiler.unroll import Program
from qrnn_tn.backends.options import (
    OPTIONS_BY_BACKEND,
    OptionsInput,
    SpecificOptions,
    resolve_backend_options,
)
from qrnn_tn.errors import BackendError
from qrnn_tn.semantics import check_tokens

__all__ = [
    "BackendError",
    "Cost",
    "RunResult",
    "Plan",
    "BackendOptions",
    "available_memory",
    "check_params",
    "check_words",
    "format_bytes",
    "register_backend",
    "get_backend",
    "backend_names",
    "choose",
    "BackendChoice",
    "Candidate",
    "rank_backends",
]


logger = logging.getLogger(__name__)

#: Seconds per flop for a backend with no time model of its own (:attr:`Cost.seconds`).
DEFAULT_FLOP_SECONDS = 1e-9


@dataclass(frozen=True)
class Cost:
    """Predicted cost of a plan, computed without running it.

    ``width`` is log2 of the largest intermediate (elements); ``flops`` and the peak bytes
    are for one full run of the batch the plan was costed for. ``seconds``: the backend's own
    model of a forward+backward run on one CPU core (per-operation overhead plus time per
    flop); backends without one are timed as :data:`DEFAULT_FLOP_SECONDS` per flop. Flops
    alone mislead between backends: small tensor operations cost their launch, not their
    flops, and a flop of a large matrix product is several times cheaper than one of the
    statevector's memory-bound passes. The models are fitted to single sequences on cells
    the statevector does not fuse; they rank backends, and are only an order of magnitude
    elsewhere (the statevector's fused blocks ran about ten times faster than predicted in a
    ``qrnn-tn train`` of the paper's digits cell at batch 216).
    """

    backend: str
    width: float
    flops: float
    peak_bytes_forward: int
    peak_bytes_backward: int
    exact: bool = True
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None

    @property
    def predicted_seconds(self) -> float:
        """``seconds``, or the flops at :data:`DEFAULT_FLOP_SECONDS` when not modelled."""
        return self.seconds if self.seconds is not None else self.flops * DEFAULT_FLOP_SECONDS

    def describe(self) -> str:
        """A human-readable one-paragraph summary (as opt_einsum's PathInfo)."""
        lines = [
            f"backend: {self.backend} ({'exact' if self.exact else 'approximate'})",
            f"  largest intermediate: 2^{self.width:.1f} elements",
            f"  flops: {self.flops:.3e}",
            f"  predicted time (fwd+bwd, one core, rough): {self.predicted_seconds:.2g} s",
            f"  peak memory: forward {format_bytes(self.peak_bytes_forward)},"
            f" forward+backward {format_bytes(self.peak_bytes_backward)}",
        ]
        lines += [f"  {k}: {v}" for k, v in self.details.items()]
        return "\n".join(lines)


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units (``1.5 GiB``); beyond PiB in powers of two."""
    if n >= 2**60:
        return f"2^{math.log2(n):.1f} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


@dataclass
class RunResult:
    """What a run returns (torch tensors; differentiable where marked).

    probs:        ``[batch, steps, 2^io]`` per-step distributions (differentiable).
    target_prob:  ``[batch, steps]`` probability of the word each step was projected on.
    log_norm:     ``[batch]`` accumulated log of the squared norms removed by renormalising
                  (neuron success probabilities and projections): the log-probability of the
                  whole postselected history on a device.
    words:        ``[batch, steps + 1]`` the tokens used (the sampled ones in ``"sample"`` mode).
    discarded:    ``[batch, steps]`` the weight each step lost to bond truncation (a backend
                  that truncates, the MPS under ``max_bond``; not differentiated), or
                  ``None`` for an exact run. The MPS backend bounds the error by it.
    """

    probs: torch.Tensor
    target_prob: torch.Tensor
    log_norm: torch.Tensor
    words: torch.Tensor
    discarded: torch.Tensor | None = None


_Specific = TypeVar("_Specific", bound=SpecificOptions)


@dataclass(frozen=True)
class BackendOptions:
    """How to prepare a plan: what every backend reads, and each backend's own options.

    ``backend_options`` takes a flat mapping (``{"max_bond": 32}``), a typed options object
    (:class:`~qrnn_tn.backends.options.MPSOptions` …) or a sequence of them, and holds them
    as typed objects (:func:`~qrnn_tn.backends.options.resolve_backend_options`); a backend
    reads its own with :meth:`of`.
    """

    dtype: torch.dtype = torch.float64
    device: str | torch.device = "cpu"
    memory_budget: int | None = None
    batch_size: int = 1
    backend_options: tuple[SpecificOptions, ...] = ()

    def __post_init__(self) -> None:
        resolved = resolve_backend_options(self.backend_options)  # type: ignore[arg-type]
        object.__setattr__(self, "backend_options", resolved)

    def budget(self) -> int:
        """The memory budget in bytes (:func:`available_memory` when not set)."""
        return self.memory_budget if self.memory_budget is not None else available_memory()

    def of(self, cls: type[_Specific]) -> _Specific:
        """The options of the backend that ``cls`` belongs to (its defaults when not given)."""
        for obj in self.backend_options:
            if isinstance(obj, cls):
                return obj
        return cls()


class Plan(Protocol):
    """A program prepared for one backend: get one from :func:`get_backend` ``(name)(program,
    options)``, from :func:`choose`, or from :meth:`qrnn_tn.QRNN.plan` ``(steps, batch)``.

    Examples
    --------
    >>> from compiler.unroll import compile_program
    >>> program = compile_program("examples/elman_xor.toml", steps=2)
    >>> plan, choice = choose(program, BackendOptions(batch_size=4))
    >>> plan.cost.backend == choice.backend
    True
    """

    program: Program
    options: BackendOptions

    @property
    def cost(self) -> Cost:
        """The predicted cost of a run of ``options.batch_size`` sequences (width, flops,
        peak memory with and without gradients, predicted time), known before any tensor
        work; ``print(plan.cost.describe())`` shows it."""
        ...

    def run(
        self,
        params: torch.Tensor,
        words: torch.Tensor,
        *,
        mode: str = "teacher",
        generator: torch.Generator | None = None,
    ) -> RunResult:
        """Run the program: ``params`` ``[n_params]`` in canonical slot order (autograd
        differentiates the result with respect to them) and ``words`` ``[batch, n_tokens]``.

        ``mode="teacher"`` projects each step on the given next token; ``"sample"`` draws it
        from the step's distribution (with ``generator``), reading only ``words[:, 0]``.
        Returns a :class:`RunResult`.
        """
        ...


def available_memory() -> int:
    """Bytes of memory available to this process: ``MemAvailable`` (else ``$QRNN_TN_MEMORY``,
    else 8 GiB), shared evenly among the processes of a ``torchrun`` launch on this machine
    (``$LOCAL_WORLD_SIZE``), so that ranks planning at the same time do not each count on
    all of it."""
    total = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    total = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if total is None:
        total = int(os.environ.get("QRNN_TN_MEMORY", 8 * 2**30))
    ranks = os.environ.get("LOCAL_WORLD_SIZE", "1")
    return total // (int(ranks) if ranks.isdigit() and int(ranks) > 0 else 1)


MODES = ("teacher", "sample")


def check_params(program: Program, params: torch.Tensor, backend: str) -> torch.Tensor:
    """``params`` as a float tensor of shape ``[n_params]``, or :class:`BackendError`."""
    params = torch.as_tensor(params)
    n = program.n_params
    if params.shape != (n,) or not params.dtype.is_floating_point:
        raise BackendError(
            f"{backend}: params must be a float tensor of shape [{n}] (one per slot, "
            f"canonical order); got {params.dtype} of shape {list(params.shape)}"
        )
    return params


def check_words(program: Program, words: torch.Tensor, mode: str, backend: str) -> torch.Tensor:
    """Validated tokens as int64 ``[batch, program.n_tokens]``.

    In ``"teacher"`` mode ``words`` holds every token (with separate targets: the inputs,
    then the targets). In ``"sample"`` mode it is the prompt ``[batch, 1]`` (or a full
    ``[batch, steps + 1]`` of which only the first token is used); the returned tensor has
    zeros where the run will write the sampled tokens.
    """
    if mode not in MODES:
        raise BackendError(f"{backend}: mode {mode!r}; accepted: 'teacher', 'sample'")
    if mode == "sample" and program.separate_targets:
        raise BackendError(
            f"{backend}: sample mode draws each step's word as the next input, so it needs a "
            "program whose targets are the next inputs (compiled without separate_targets)"
        )
    words = torch.as_tensor(words)
    length = program.n_tokens
    lengths = (length,) if mode == "teacher" else (1, length)
    if words.ndim != 2 or words.shape[0] < 1 or words.shape[1] not in lengths:
        expected = " or ".join(f"[batch, {n}]" for n in lengths)
        raise BackendError(
            f"{backend}: in {mode} mode words must have shape {expected} for a program of "
            f"{program.steps} steps; got {list(words.shape)}"
        )
    checked = words if mode == "teacher" else words[:, :1]
    check_tokens(checked, program.io, f"{backend}: words", BackendError)
    words = words.to(torch.int64)
    if mode == "sample":
        out = words.new_zeros(words.shape[0], length)
        out[:, 0] = words[:, 0]
        return out
    return words.clone()


def target_probs(program: Program, probs: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """``p_t(v_t)`` ``[batch, steps]``: each step's probability of the word it is projected on."""
    index = torch.as_tensor(program.target_tokens, device=words.device)
    return probs.gather(2, words[:, index, None])[..., 0]


Estimator = Callable[[Program, BackendOptions], Cost]


@dataclass(frozen=True)
class _Registered:
    prepare: Callable[[Program, BackendOptions], Plan]
    estimate: Estimator | None


_BACKENDS: dict[str, _Registered] = {}


def register_backend(
    name: str,
    prepare: Callable[[Program, BackendOptions], Plan],
    estimate: Estimator | None = None,
    options: type[SpecificOptions] | None = None,
) -> None:
    """Make ``prepare`` available under ``name`` (for :func:`get_backend` and ``choose``).

    ``estimate`` gives a quick upper bound on the cost without the work of ``prepare``
    (e.g. without a path search); :func:`choose` uses it when given. ``options`` is the
    backend's options class (a frozen :class:`~qrnn_tn.backends.options.SpecificOptions`
    subclass whose ``backend`` is ``name``); its fields are the keys the backend accepts.
    """
    if options is None:
        options = make_dataclass(
            f"{name}Options", [], bases=(SpecificOptions,), frozen=True, namespace={"backend": name}
        )
    if options.backend != name:
        raise ValueError(f"options class {options.__name__} is for backend {options.backend!r}")
    OPTIONS_BY_BACKEND[name] = options
    _BACKENDS[name] = _Registered(prepare, estimate)


def backend_names() -> list[str]:
    """The registered backends, sorted."""
    return sorted(_BACKENDS)


def check_backend_options(options: OptionsInput, backend: str) -> tuple[SpecificOptions, ...]:
    """``options`` resolved for ``backend`` (``"auto"``: any backend), or :class:`BackendError`:
    the one check at a boundary (model, simulate, CLI), before any data is built."""
    if backend != "auto" and backend not in _BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; available: {', '.join(backend_names())}")
    return resolve_backend_options(options, backend)


def get_backend(name: str) -> Callable[[Program, BackendOptions], Plan]:
    """The backend's ``prepare(program, options)``; it refuses options of other backends."""
    if name not in _BACKENDS:
        raise BackendError(f"unknown backend {name!r}; available: {', '.join(backend_names())}")
    prepare = _BACKENDS[name].prepare

    def checked(program: Program, options: BackendOptions) -> Plan:
        check_backend_options(options.backend_options, name)
        return prepare(program, options)

    return checked


def _quick_cost(name: str, program: Program, options: BackendOptions) -> tuple[Cost, Plan | None]:
    """The backend's quick estimate, or its prepared plan's cost (with the plan, for reuse)."""
    entry = _BACKENDS[name]
    if entry.estimate is not None:
        return entry.estimate(program, options), None
    plan = entry.prepare(program, options)
    return plan.cost, plan


@dataclass(frozen=True)
class BackendChoice:
    """Which backend runs a program and why: what :func:`choose` decided (``chosen_by``
    ``"auto"``) or the backend the caller named (``"caller"``), with its predicted cost.

    ``str(choice)`` is the one-sentence reason the command line prints.
    """

    backend: str
    reason: str
    cost: Cost
    chosen_by: str = "auto"

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Candidate:
    """A backend that can run a program exactly within the budget, with its predicted cost;
    ``plan`` is set when costing it already prepared it (reused by :func:`choose`)."""

    name: str
    cost: Cost
    plan: Plan | None = None


def rank_backends(
    program: Program, options: BackendOptions
) -> tuple[list[Candidate], dict[str, str]]:
    """The backends that fit the memory budget, and the reason each other one was ruled out.

    Exact backends come first, fastest predicted first (:attr:`Cost.predicted_seconds`);
    after them those that the options make approximate (the MPS backend under a
    ``max_bond`` below the exact bond), in the same order. Costs come from each backend's
    quick estimate where it has one (no path search). Each backend reads its own options.
    """
    budget = options.budget()
    candidates: list[Candidate] = []
    refused: dict[str, str] = {}
    for name in backend_names():
        try:
            cost, plan = _quick_cost(name, program, options)
        except BackendError as err:
            refused[name] = str(err)
            continue
        if cost.peak_bytes_backward > budget:
            refused[name] = f"estimated {format_bytes(cost.peak_bytes_backward)}"
        else:
            candidates.append(Candidate(name, cost, plan))
    candidates.sort(key=lambda c: (not c.cost.exact, c.cost.predicted_seconds))
    return candidates, refused


def _planned_past_estimate(
    program: Program, options: BackendOptions, refused: dict[str, str]
) -> Candidate | None:
    """A backend whose quick estimate was over the budget may fit once planned (the tensor
    network slices to the budget, and its search beats the estimate's tree): the first
    that does."""
    for name in backend_names():
        if _BACKENDS[name].estimate is None or not refused.get(name, "").startswith("estimated"):
            continue
        try:
            plan = _BACKENDS[name].prepare(program, options)
        except BackendError as err:
            refused[name] += f"; planned: {err}"
            continue
        if plan.cost.exact and plan.cost.peak_bytes_backward <= options.budget():
            return Candidate(name, plan.cost, plan)
    return None


def choose(program: Program, options: BackendOptions) -> tuple[Plan, BackendChoice]:
    """Pick the cheapest exact backend that fits the memory budget, and prepare it.

    The ranking is :func:`rank_backends`', so only the chosen backend pays for its planning.
    When no quick estimate of an exact backend fits, backends whose estimate is only an
    upper bound are planned in full; only then does an approximate candidate (one the
    options allow to truncate, e.g. ``max_bond``) get the run. Returns the plan and the
    :class:`BackendChoice` (its ``str`` is a sentence saying what was chosen and why; it is
    also logged at level INFO). Raises :class:`BackendError` naming every
    candidate's estimate when none fits.
    """
    candidates, refused = rank_backends(program, options)
    exact = any(c.cost.exact for c in candidates)
    planned = None if exact else _planned_past_estimate(program, options, refused)
    if planned is not None:
        candidates = [planned]
    if not candidates:
        raise BackendError(
            f"no exact backend fits the memory budget of {format_bytes(options.budget())}: "
            + "; ".join(f"{name}: {why.rstrip('.')}" for name, why in refused.items())
            + ". Use fewer steps, a smaller batch or a larger budget, or allow an approximate "
            "run: the backend option max_bond (e.g. 32) caps the MPS backend's bond and "
            "reports the weight it discards."
        )
    best = candidates[0]
    plan = best.plan
    if plan is None:
        plan = _BACKENDS[best.name].prepare(program, options)
    others = (
        ", ".join(
            f"{c.name} {c.cost.predicted_seconds:.2g} s"
            + ("" if c.cost.exact else " (approximate)")
            for c in candidates[1:]
        )
        or "none"
    )
    reason = (
        f"chose {best.name}: predicted time {best.cost.predicted_seconds:.2g} s (a rough "
        f"model that ranks backends; {best.cost.flops:.2e} flops), peak "
        f"{format_bytes(best.cost.peak_bytes_backward)} with gradients "
        f"(other candidates: {others})"
    )
    if planned is not None:
        reason += " after planning it in full: its quick estimate was over the budget"
    if not best.cost.exact:
        reason += (
            "; approximate: no exact backend fits, and the options let this one truncate "
            "(the discarded weight is reported)"
        )
    if refused:
        reason += "; ruled out: " + "; ".join(f"{n}: {why}" for n, why in refused.items())
    logger.info("%s", reason)
    return plan, BackendChoice(best.name, reason, plan.cost)

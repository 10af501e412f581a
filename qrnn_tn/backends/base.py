"""The backend contract shared by every simulator (DESIGN.md).

``prepare(program, options) -> Plan``; ``Plan.cost`` is known before any tensor work;
``Plan.run(params, words, mode=...)`` returns a :class:`RunResult` of torch tensors that
autograd can differentiate with respect to ``params``.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, fields, make_dataclass, replace
from typing import Protocol, TypeVar

import torch

from compiler.unroll import Program
from qrnn_tn.backends.options import (
    OPTIONS_BY_BACKEND,
    OptionsInput,
    SpecificOptions,
    resolve_backend_options,
)
from qrnn_tn.backends.timing import CPU, MachineModel, machine_model
from qrnn_tn.errors import BackendError
from qrnn_tn.semantics import check_tokens

__all__ = [
    "BackendError",
    "Cost",
    "CostDetails",
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
    "Estimate",
    "estimate_backend",
    "rank_backends",
]


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CostDetails:
    """A backend's own facts about a plan's cost (slices, bonds, kernels …), typed per backend.

    ``str`` lists them one per line, as :meth:`Cost.describe` shows them.
    """

    def lines(self) -> list[str]:
        """``label: value`` lines; by default one per field, its name spelt out."""
        return [f"{f.name.replace('_', ' ')}: {getattr(self, f.name)}" for f in fields(self)]

    def __str__(self) -> str:
        """Return the facts, one per line."""
        return "\n".join(self.lines())


@dataclass(frozen=True)
class Cost:
    """Predicted cost of a plan, computed without running it.

    ``width`` is log2 of the largest intermediate (elements); ``flops`` and the peak bytes
    are for one full run of the batch the plan was costed for. ``seconds``: the backend's own
    model of a forward+backward run on one CPU core (per-operation overhead plus time per
    flop, constants of :mod:`~qrnn_tn.backends.timing`); backends without one are timed at the
    CPU model's ``flop_seconds`` per flop. Flops
    alone mislead between backends: small tensor operations cost their launch, not their
    flops, and a flop of a large matrix product is several times cheaper than one of the
    statevector's memory-bound passes. The models are fitted to single sequences on cells
    the statevector does not fuse; they rank backends, and are only an order of magnitude
    elsewhere (the statevector's fused blocks ran about ten times faster than predicted in a
    ``qrnn-tn train`` of the paper's digits cell at batch 216). ``details``: the backend's
    own :class:`CostDetails` (e.g. the tensor network's slices per step). ``str(cost)`` is
    :meth:`describe`.
    """

    backend: str
    width: float
    flops: float
    peak_bytes_forward: int
    peak_bytes_backward: int
    exact: bool = True
    details: CostDetails | None = None
    seconds: float | None = None

    @property
    def predicted_seconds(self) -> float:
        """``seconds``, or the flops at the CPU model's ``flop_seconds`` when not modelled."""
        return self.seconds if self.seconds is not None else self.flops * CPU.flop_seconds

    def describe(self) -> str:
        """Describe the cost in one human-readable paragraph (as opt_einsum's PathInfo)."""
        lines = [
            f"backend: {self.backend} ({'exact' if self.exact else 'approximate'})",
            f"  largest intermediate: 2^{self.width:.1f} elements",
            f"  flops: {self.flops:.3e}",
            f"  predicted time (fwd+bwd, one core, rough): {self.predicted_seconds:.2g} s",
            f"  peak memory: forward {format_bytes(self.peak_bytes_forward)},"
            f" forward+backward {format_bytes(self.peak_bytes_backward)}",
        ]
        if self.details is not None:
            lines += [f"  {line}" for line in self.details.lines()]
        return "\n".join(lines)

    def __str__(self) -> str:
        """Return :meth:`describe`."""
        return self.describe()


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
    reads its own with :meth:`of`. ``machine``: the time constants the plans predict
    :attr:`Cost.seconds` with (default: the fitted model of ``device``'s kind; see
    :meth:`~qrnn_tn.backends.timing.MachineModel.calibrate`).
    """

    dtype: torch.dtype = torch.float64
    device: str | torch.device = "cpu"
    memory_budget: int | None = None
    batch_size: int = 1
    backend_options: tuple[SpecificOptions, ...] = ()
    machine: MachineModel | None = None

    def __post_init__(self) -> None:
        """Resolve ``backend_options`` into typed options objects."""
        resolved = resolve_backend_options(self.backend_options)
        object.__setattr__(self, "backend_options", resolved)

    def budget(self) -> int:
        """Return the memory budget in bytes (:func:`available_memory` when not set)."""
        if self.memory_budget is not None:
            return self.memory_budget
        return available_memory(self.device)

    def machine_model(self) -> MachineModel:
        """Return :attr:`machine`, or the fitted model of :attr:`device`'s kind."""
        return self.machine if self.machine is not None else machine_model(self.device)

    def of(self, cls: type[_Specific]) -> _Specific:
        """Return the options of ``cls``'s backend (its defaults when not given)."""
        for obj in self.backend_options:
            if isinstance(obj, cls):
                return obj
        return cls()


class Plan(Protocol):
    """A program prepared for one backend.

    Get one from :func:`get_backend` ``(name)(program, options)``, from :func:`choose`, or
    from :meth:`qrnn_tn.QRNN.plan` ``(steps, batch)``.

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
        """Predict the cost of a run of ``options.batch_size`` sequences.

        Width, flops, peak memory with and without gradients and predicted time, known
        before any tensor work; ``print(plan.cost)`` shows it.
        """
        ...

    def run(
        self,
        params: torch.Tensor,
        words: torch.Tensor,
        *,
        mode: str = "teacher",
        generator: torch.Generator | None = None,
    ) -> RunResult:
        """Run the program on ``params`` and ``words``.

        ``params`` ``[n_params]`` are in canonical slot order (autograd differentiates the
        result with respect to them); ``words`` are ``[batch, n_tokens]``.

        ``mode="teacher"`` projects each step on the given next token; ``"sample"`` draws it
        from the step's distribution (with ``generator``), reading only ``words[:, 0]``.
        Returns a :class:`RunResult`.
        """
        ...


def available_memory(device: str | torch.device = "cpu") -> int:
    """Return the bytes of memory available to a run on ``device``.

    On a CUDA device, the free memory of that device (``torch.cuda.mem_get_info``): each
    process of a launch has its own. Otherwise ``MemAvailable`` (else ``$QRNN_TN_MEMORY``,
    else 8 GiB), shared evenly among the processes of a ``torchrun`` launch on this machine
    (``$LOCAL_WORLD_SIZE``), so that ranks planning at the same time do not each count on
    all of it.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
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
    """Validate the tokens; return them as int64 ``[batch, program.n_tokens]``.

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


@dataclass(frozen=True)
class Estimate:
    """One backend's quick answer for a program, before any planning.

    :func:`choose` ranks these.

    ``cost`` is the predicted cost (``None`` when the backend refused before costing);
    ``reason`` says why the backend cannot run the program within the budget (empty when it
    can: :attr:`fits`); ``upper_bound`` marks a refusal that planning in full may overturn
    (the tensor network's estimate neither slices nor searches); ``plan`` is set when costing
    already prepared the backend, for reuse. ``str(estimate)`` is the reason, or the cost in
    one line.
    """

    name: str
    cost: Cost | None
    reason: str = ""
    upper_bound: bool = False
    plan: Plan | None = None

    @property
    def fits(self) -> bool:
        """Whether the backend runs the program within the memory budget."""
        return not self.reason

    def __str__(self) -> str:
        """Return the reason, or the cost in one line."""
        if self.reason or self.cost is None:
            return self.reason
        return (
            f"{self.name}: predicted {self.cost.predicted_seconds:.2g} s, peak "
            f"{format_bytes(self.cost.peak_bytes_backward)} with gradients"
        )


Estimator = Callable[[Program, BackendOptions], Estimate]


@dataclass(frozen=True)
class _Registered:
    prepare: Callable[[Program, BackendOptions], Plan]
    estimate: Estimator | None


_BACKENDS: dict[str, _Registered] = {}

#: The project's backend modules; each registers itself when imported.
BUILTIN_BACKENDS = (
    "qrnn_tn.backends.mps",
    "qrnn_tn.backends.statevector",
    "qrnn_tn.backends.tensornet",
)


def _registry() -> dict[str, _Registered]:
    """Return the registered backends, importing the built-in ones first (once)."""
    for module in BUILTIN_BACKENDS:
        importlib.import_module(module)
    return _BACKENDS


def register_backend(
    name: str,
    prepare: Callable[[Program, BackendOptions], Plan],
    estimate: Estimator | None = None,
    options: type[SpecificOptions] | None = None,
) -> None:
    """Make ``prepare`` available under ``name`` (for :func:`get_backend` and ``choose``).

    ``estimate`` gives a quick :class:`Estimate` without the work of ``prepare`` (e.g.
    without a path search); :func:`choose` uses it when given, else it prepares the backend
    to cost it. ``options`` is the backend's options class (a frozen
    :class:`~qrnn_tn.backends.options.SpecificOptions` subclass whose ``backend`` is
    ``name``); its fields are the keys the backend accepts.
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
    """Return the registered backends, sorted."""
    return sorted(_registry())


def check_backend_options(options: OptionsInput, backend: str) -> tuple[SpecificOptions, ...]:
    """Resolve ``options`` for ``backend`` (``"auto"``: any backend), or :class:`BackendError`.

    The one check at a boundary (model, simulate, CLI), before any data is built.
    """
    if backend != "auto" and backend not in _registry():
        raise BackendError(f"unknown backend {backend!r}; available: {', '.join(backend_names())}")
    return resolve_backend_options(options, backend)


def get_backend(name: str) -> Callable[[Program, BackendOptions], Plan]:
    """Return the backend's ``prepare(program, options)``; it refuses others' options."""
    if name not in _registry():
        raise BackendError(f"unknown backend {name!r}; available: {', '.join(backend_names())}")
    prepare = _registry()[name].prepare

    def checked(program: Program, options: BackendOptions) -> Plan:
        check_backend_options(options.backend_options, name)
        return prepare(program, options)

    return checked


def _refusal(name: str, err: BackendError, upper_bound: bool = False) -> Estimate:
    reason = str(err).removeprefix(f"{name}: ")
    return Estimate(name, None, reason, upper_bound=upper_bound)


def estimate_backend(name: str, program: Program, options: BackendOptions) -> Estimate:
    """Return ``name``'s quick :class:`Estimate` for ``program``.

    Its estimator where it has one, else the cost of its prepared plan; a cost over the
    budget becomes the reason.
    """
    entry = _registry()[name]
    try:
        if entry.estimate is not None:
            quick = entry.estimate(program, options)
        else:
            plan = entry.prepare(program, options)
            quick = Estimate(name, plan.cost, plan=plan)
    except BackendError as err:
        return _refusal(name, err)
    if quick.fits and quick.cost is not None:
        need = quick.cost.peak_bytes_backward
        if need > options.budget():
            return replace(
                quick,
                reason=f"estimated {format_bytes(need)} with gradients, over the memory "
                f"budget of {format_bytes(options.budget())}",
                upper_bound=entry.estimate is not None,
            )
    return quick


def rank_backends(
    program: Program, options: BackendOptions
) -> tuple[list[Estimate], dict[str, Estimate]]:
    """Estimate every backend: those that fit the memory budget, ranked, and the others.

    Returns the fitting :class:`Estimate` objects in rank order and the others by name
    (``str`` of each is its reason).

    Exact backends come first, fastest predicted first (:attr:`Cost.predicted_seconds`);
    after them those that the options make approximate (the MPS backend under a
    ``max_bond`` below the exact bond), in the same order. Nothing is searched: costs come
    from each backend's quick estimate where it has one. Each backend reads its own options.
    """
    fitting: list[Estimate] = []
    refused: dict[str, Estimate] = {}
    for name in backend_names():
        quick = estimate_backend(name, program, options)
        if quick.fits:
            fitting.append(quick)
        else:
            refused[name] = quick
    fitting.sort(key=lambda e: (not e.cost.exact, e.cost.predicted_seconds))  # type: ignore[union-attr]
    return fitting, refused


def _planned_past_estimate(
    program: Program, options: BackendOptions, refused: dict[str, Estimate]
) -> Estimate | None:
    """Plan in full the backends whose quick estimate was an upper bound over the budget.

    They may fit once planned (the tensor network slices to the budget, and its search beats
    the estimate's tree): the first that does is returned. ``refused`` gets the planned
    reasons of the others.
    """
    for name, quick in list(refused.items()):
        if not quick.upper_bound:
            continue
        try:
            plan = _registry()[name].prepare(program, options)
        except BackendError as err:
            refused[name] = replace(quick, reason=f"{quick.reason}; planned: {err}")
            continue
        if plan.cost.exact and plan.cost.peak_bytes_backward <= options.budget():
            return Estimate(name, plan.cost, plan=plan)
    return None


@dataclass(frozen=True)
class BackendChoice:
    """Which backend runs a program and why, with its predicted cost.

    What :func:`choose` decided (``chosen_by`` ``"auto"``) or the backend the caller named
    (``"caller"``).

    ``str(choice)`` is the one-sentence reason the command line prints.
    """

    backend: str
    reason: str
    cost: Cost
    chosen_by: str = "auto"

    def __str__(self) -> str:
        """Return the reason."""
        return self.reason


def choose(program: Program, options: BackendOptions) -> tuple[Plan, BackendChoice]:
    """Pick the cheapest exact backend that fits the memory budget, and prepare it.

    Every backend's quick estimate comes first (:func:`rank_backends`), so only the chosen
    backend pays for its planning. When no exact backend's estimate fits, an approximate
    one that does (one the options allow to truncate, e.g. the MPS under ``max_bond``) runs
    without any tensor-network search; only when none does are the backends whose estimate
    is an upper bound (the tensor network) planned in full. Returns the plan and the
    :class:`BackendChoice` (its ``str`` is a sentence saying what was chosen and why; it is
    also logged at level INFO). Raises :class:`BackendError` naming every candidate's
    estimate when none fits.
    """
    fitting, refused = rank_backends(program, options)
    planned = None
    if not fitting:
        planned = _planned_past_estimate(program, options, refused)
        fitting = [planned] if planned is not None else []
    if not fitting:
        raise BackendError(
            f"no exact backend fits the memory budget of {format_bytes(options.budget())}: "
            + "; ".join(f"{name}: {why.reason.rstrip('.')}" for name, why in refused.items())
            + ". Use fewer steps, a smaller batch or a larger budget, or allow an approximate "
            "run: the backend option max_bond (e.g. 32) caps the MPS backend's bond and "
            "reports the weight it discards."
        )
    best = fitting[0]
    cost = best.cost
    assert cost is not None  # an estimate that fits has a cost
    plan = best.plan if best.plan is not None else _registry()[best.name].prepare(program, options)
    others = (
        ", ".join(
            f"{e.name} {e.cost.predicted_seconds:.2g} s"
            + ("" if e.cost.exact else " (approximate)")
            for e in fitting[1:]
            if e.cost is not None
        )
        or "none"
    )
    reason = (
        f"chose {best.name}: predicted time {cost.predicted_seconds:.2g} s (a rough "
        f"model that ranks backends; {cost.flops:.2e} flops), peak "
        f"{format_bytes(cost.peak_bytes_backward)} with gradients "
        f"(other candidates: {others})"
    )
    if planned is not None:
        reason += " after planning it in full: its quick estimate was over the budget"
    if not cost.exact:
        reason += (
            "; approximate: no exact backend fits, and the options let this one truncate "
            "(the discarded weight is reported)"
        )
        searchable = [name for name, e in refused.items() if e.upper_bound]
        if searchable:
            reason += (
                f"; {', '.join(searchable)} not planned in full (its quick estimate is over "
                "the budget; name it as the backend to search for a plan that fits)"
            )
    if refused:
        reason += "; ruled out: " + "; ".join(f"{n}: {why}" for n, why in refused.items())
    logger.info("%s", reason)
    return plan, BackendChoice(best.name, reason, plan.cost)

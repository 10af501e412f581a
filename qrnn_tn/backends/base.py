"""The backend contract shared by every simulator (DESIGN.md).

``prepare(program, options) -> Plan``; ``Plan.cost`` is known before any tensor work;
``Plan.run(params, words, mode=...)`` returns a :class:`RunResult` of torch tensors that
autograd can differentiate with respect to ``params``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from compiler.unroll import Program

__all__ = [
    "BackendError",
    "Cost",
    "RunResult",
    "Plan",
    "BackendOptions",
    "available_memory",
    "register_backend",
    "get_backend",
    "backend_names",
    "choose",
]


class BackendError(RuntimeError):
    """A backend cannot run a program as asked (too large, bad input, unsupported)."""


@dataclass(frozen=True)
class Cost:
    """Predicted cost of a plan, computed without running it.

    ``width`` is log2 of the largest intermediate (elements); ``flops`` and the peak bytes
    are for one full run of the batch the plan was costed for.
    """

    backend: str
    width: float
    flops: float
    peak_bytes_forward: int
    peak_bytes_backward: int
    exact: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A human-readable one-paragraph summary (as opt_einsum's PathInfo)."""
        lines = [
            f"backend: {self.backend} ({'exact' if self.exact else 'approximate'})",
            f"  largest intermediate: 2^{self.width:.1f} elements",
            f"  flops: {self.flops:.3e}",
            f"  peak memory: forward {_bytes(self.peak_bytes_forward)},"
            f" forward+backward {_bytes(self.peak_bytes_backward)}",
        ]
        lines += [f"  {k}: {v}" for k, v in self.details.items()]
        return "\n".join(lines)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
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
    """

    probs: torch.Tensor
    target_prob: torch.Tensor
    log_norm: torch.Tensor
    words: torch.Tensor


@dataclass(frozen=True)
class BackendOptions:
    """Options every backend understands; backends may read more from ``extra``."""

    dtype: torch.dtype = torch.float64
    device: str | torch.device = "cpu"
    memory_budget: int | None = None
    batch_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def budget(self) -> int:
        return self.memory_budget if self.memory_budget is not None else available_memory()


class Plan(Protocol):
    """A program prepared for one backend."""

    program: Program
    options: BackendOptions

    @property
    def cost(self) -> Cost: ...

    def run(
        self,
        params: torch.Tensor,
        words: torch.Tensor,
        *,
        mode: str = "teacher",
        generator: torch.Generator | None = None,
    ) -> RunResult: ...


def available_memory() -> int:
    """Bytes of memory available to this process (``MemAvailable``; 8 GiB if unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.environ.get("QRNN_TN_MEMORY", 8 * 2**30))


_BACKENDS: dict[str, Callable[[Program, BackendOptions], Plan]] = {}


def register_backend(name: str, prepare: Callable[[Program, BackendOptions], Plan]) -> None:
    """Make ``prepare`` available under ``name`` (for :func:`get_backend` and ``choose``)."""
    _BACKENDS[name] = prepare


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name: str) -> Callable[[Program, BackendOptions], Plan]:
    if name not in _BACKENDS:
        raise BackendError(f"unknown backend {name!r}; available: {', '.join(backend_names())}")
    return _BACKENDS[name]


def choose(program: Program, options: BackendOptions) -> tuple[Plan, str]:
    """Prepare every exact backend, pick the cheapest that fits the memory budget.

    Returns the plan and a sentence saying what was chosen and why. Raises
    :class:`BackendError` naming every candidate's estimate when none fits.
    """
    budget = options.budget()
    candidates: list[tuple[float, Plan]] = []
    refused: list[str] = []
    for name in backend_names():
        try:
            plan = get_backend(name)(program, options)
        except BackendError as err:
            refused.append(f"{name}: {err}")
            continue
        cost = plan.cost
        if not cost.exact:
            continue
        if cost.peak_bytes_backward > budget:
            refused.append(f"{name}: needs {_bytes(cost.peak_bytes_backward)}")
            continue
        candidates.append((cost.flops, plan))
    if not candidates:
        raise BackendError(
            f"no exact backend fits the memory budget of {_bytes(budget)}: "
            + "; ".join(refused)
            + ". Use fewer steps, a smaller batch, a larger budget or an approximate backend."
        )
    candidates.sort(key=lambda c: c[0])
    plan = candidates[0][1]
    others = ", ".join(f"{p.cost.backend} {f:.2e}" for f, p in candidates[1:]) or "none"
    reason = (
        f"chose {plan.cost.backend}: {plan.cost.flops:.2e} flops, peak "
        f"{_bytes(plan.cost.peak_bytes_backward)} (other candidates: {others})"
    )
    return plan, reason

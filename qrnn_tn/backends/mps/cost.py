"""Cost model of the MPS backend: flops and peak memory from lanes, bond cap, windows, steps.

The bond at cut ``k`` (between sites ``k-1`` and ``k``) is at most
``min(2^k, 2^(n-k), max_bond)``; the model uses that bound everywhere, so it is exact in
the shapes and an upper bound on a run whose bonds stay smaller. Per neuron of window ``w``
the dominant work is one SVD of a ``[2D, 2^(w-1) D]`` matrix (~``14 m n min(m, n)`` flops
for a thin SVD) and the contraction ``2 D^2 2^w D``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.unroll import Program
from qrnn_tn.backends.base import Cost, CostDetails
from qrnn_tn.backends.mps.lowering import Lowered
from qrnn_tn.backends.timing import CPU, MachineModel

__all__ = ["MPSCostDetails", "mps_cost", "bond_bound"]


@dataclass(frozen=True)
class MPSCostDetails(CostDetails):
    """The MPS's facts of a plan.

    The bond cap (``None``: exact), the largest bond the cost assumes, the widest neuron window
    (lanes), the swaps per step that bring a neuron's lanes together, and the gradient checkpointing
    (steps per block, outer blocks).
    """

    max_bond: int | None
    bond_bound: float
    widest_window: int
    swaps_per_step: float
    checkpoint_steps: int
    checkpoint_outer: int


def bond_bound(n: int, max_bond: int | None) -> float:
    """Largest bond of an ``n``-site chain under the cap (float: may exceed int64)."""
    full = 2.0 ** (n // 2)
    return full if max_bond is None else min(full, float(max_bond))


def mps_cost(
    program: Program,
    lowered: Lowered,
    *,
    batch: int,
    max_bond: int | None,
    exact: bool,
    itemsize: int,
    checkpoint_steps: int,
    checkpoint_outer: int = 0,
    machine: MachineModel = CPU,
) -> Cost:
    """Predicted :class:`Cost` of one forward (and forward+backward) run of ``batch``.

    Its seconds are the site operations and flops at ``machine``'s rates.
    """
    n, steps = program.n_lanes, program.steps
    d = bond_bound(n, max_bond)
    chain = sum(
        min(2.0**k, 2.0 ** (n - k), d) * 2 * min(2.0 ** (k + 1), 2.0 ** (n - k - 1), d)
        for k in range(n)
    )
    per_step_neurons = len(lowered.windows) / steps
    wide = max(lowered.windows, default=1)
    flops_step = 0.0
    act_step = 0.0
    for w in lowered.windows[: math.ceil(per_step_neurons)]:
        m, k = 2 * d, 2.0 ** (w - 1) * d
        flops_step += 14 * m * k * min(m, k) + 2 * d * d * 2.0**w * d
        # kept for backward: the block twice (neuron and split inputs), the split-off C
        # twice (renormalisation and the next absorption), the split's eigenvectors
        act_step += 2 * m * k + 2 * d * k + m * min(m, k)
    moves = 2 * n * (program.spec.stages + 1) + lowered.swaps / steps
    flops_step += moves * 14 * (2 * d) * d * d
    act_step += moves * 6 * d * d
    block = d * d * 2.0**wide
    state = chain + block
    if checkpoint_steps <= 0:
        boundaries, per_block = 0, steps
    elif checkpoint_outer > 0:  # outer block starts, plus the inner starts of one outer block
        boundaries = math.ceil(steps / checkpoint_outer) + checkpoint_outer // checkpoint_steps
        per_block = checkpoint_steps
    else:
        boundaries, per_block = math.ceil(steps / checkpoint_steps), checkpoint_steps
    forward = batch * itemsize * (state + block * 4)
    backward = batch * itemsize * (boundaries * state + per_block * act_step + state)
    fully_exact = exact and (max_bond is None or max_bond >= 2 ** (n // 2))
    flops = batch * steps * flops_step
    operations = steps * (per_step_neurons + moves)
    return Cost(
        backend="mps",
        width=math.log2(max(block, 1.0)),
        flops=flops,
        seconds=operations * machine.mps_operation_seconds + flops * machine.flop_seconds,
        peak_bytes_forward=int(min(forward, 2**62)),
        peak_bytes_backward=int(min(backward, 2**62)),
        exact=fully_exact,
        details=MPSCostDetails(
            max_bond=max_bond,
            bond_bound=d,
            widest_window=wide,
            swaps_per_step=lowered.swaps / steps,
            checkpoint_steps=checkpoint_steps,
            checkpoint_outer=checkpoint_outer,
        ),
    )

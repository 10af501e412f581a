"""The statevector's cost model: peak bytes, flops and time of a run, before any tensor work.

Bytes are those of live tensors; the process may hold more: glibc keeps freed blocks of a few
MB resident (up to about twice the prediction; within 10 % with
``MALLOC_MMAP_THRESHOLD_=131072``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.unroll import Program
from qrnn_tn.backends.base import BackendOptions, Cost, CostDetails, format_bytes
from qrnn_tn.backends.statevector.blocks import Block
from qrnn_tn.backends.statevector.kernels import Kernel, Rotate
from qrnn_tn.backends.statevector.layout import Arrangement
from qrnn_tn.backends.statevector.tables import TableProvider
from qrnn_tn.dtypes import real_dtype

__all__ = ["Schedule", "StatevectorCostDetails", "predict_cost"]


@dataclass(frozen=True)
class StatevectorCostDetails(CostDetails):
    """The statevector's facts of a plan.

    Qubits, the largest state (log2 amplitudes per sequence) for the batch, the steps and
    dtype, the kernels run (and distinct fused blocks), the gradient method (with its
    checkpoints under ``"recompute"``), the neuron tables (cached or rebuilt per use, and
    their bytes) and the forward flops.
    """

    qubits: int
    largest_state: int
    batch: int
    steps: int
    dtype: str
    kernels: int
    fused_blocks: int
    gradient: str
    checkpoint_every: int | None
    checkpoints: int | None
    tables_cached: bool
    table_bytes: int
    forward_flops: float

    def lines(self) -> list[str]:
        """Return the facts as the plan's description shows them."""
        gradient = self.gradient
        if self.checkpoint_every is not None:
            gradient += (
                f" (checkpoint every {self.checkpoint_every} kernels, {self.checkpoints} stored)"
            )
        return [
            f"qubits: {self.qubits}",
            f"largest state: 2^{self.largest_state} amplitudes x batch {self.batch}",
            f"steps: {self.steps}",
            f"dtype: {self.dtype}",
            f"kernels: {self.kernels} ({self.fused_blocks} distinct fused blocks)",
            f"gradient: {gradient}",
            f"tables: {'cached' if self.tables_cached else 'rebuilt per use'}, "
            f"{format_bytes(self.table_bytes)}",
            f"forward flops: {self.forward_flops:.3e}",
        ]


@dataclass(frozen=True)
class Schedule:
    """What a plan runs: kernels, tables and checkpoint segments.

    ``kernels[i]`` works on a state of ``sizes[i]`` quantum qubits; ``providers`` build the
    tables that ``arrangements`` lay out; ``segments`` are the kernel ranges between two
    checkpoints, each with at most ``segment`` state-changing kernels.
    """

    kernels: list[Kernel]
    sizes: list[int]
    providers: list[TableProvider]
    arrangements: list[Arrangement]
    segments: list[tuple[int, int]]
    segment: int

    def blocks(self) -> list[Block]:
        """Return one block per distinct matrix."""
        return list({k.key: k for k in self.kernels if isinstance(k, Block)}.values())

    def table_bytes(self, item: int) -> int:
        """Return the bytes of every arranged table at ``item`` bytes an element."""
        return sum(a.nbytes(item) for a in self.arrangements)


def predict_cost(
    program: Program,
    options: BackendOptions,
    schedule: Schedule,
    gradient: str,
    cached: bool,
    batch: int,
) -> Cost:
    """Return the predicted cost of a run of ``batch`` sequences.

    Peak bytes (forward; forward + backward), flops and seconds; ``cached``: whether the run
    caches its tables.
    """
    itemsize = options.dtype.itemsize
    real = real_dtype(options.dtype).itemsize
    sizes = [2**q * batch * itemsize for q in schedule.sizes]
    largest = max(sizes, default=batch * itemsize)
    table = max((a.nbytes(real) for a in schedule.arrangements), default=0)
    tables = schedule.table_bytes(real) if cached else 4 * table
    steps, words = program.steps, 2**program.io
    outputs = batch * steps * words * real + 8 * batch * (steps + 1)
    blocks = schedule.blocks()
    block_bytes = [2**b.size * b.columns * real for b in blocks]
    block_building = max(
        (m * (len(b.kernels) + 1) for m, b in zip(block_bytes, blocks, strict=True)),
        default=0,
    )
    # held by the providers for the plan's lifetime, and while one table is built
    # (its provider's temporaries, then arranging it: a permuted copy and the stack)
    constants = sum(p.constant_bytes(real) for p in schedule.providers)
    building = max((p.workspace_bytes(real) for p in schedule.providers), default=0)
    building += 3 * table
    # the state, a kernel's output, its two products (c·ψ₀, s·ψ₁) and their views'
    # copies at the widest: up to 5 states measured (test_memory_guard.py), 6 allowed
    forward = 6 * largest + tables + outputs + 3 * sum(block_bytes) + constants + building
    # the backward builds and differentiates tables while the forward's are held
    differentiating = constants + 3 * building
    if gradient == "autograd":
        backward = 3 * sum(sizes) + 4 * largest + 2 * tables + 2 * outputs
        backward += differentiating
    else:
        segments = schedule.segments
        starts = [sizes[start - 1] if start else sizes[0] for start, _ in segments]
        replay = max(sum(sizes[start:stop]) for start, stop in segments)
        backward = sum(starts) + replay + 9 * largest + 2 * tables + 2 * outputs
        backward += 2 * sum(block_bytes) + max(building, block_building)
        backward += differentiating
    flops = _flops(schedule, batch, cached, options.dtype.is_complex)
    machine = options.machine_model()
    seconds = len(schedule.kernels) * machine.statevector_kernel_seconds
    seconds += sum(flops) * machine.statevector_flop_seconds
    recompute = gradient == "recompute"
    return Cost(
        backend="statevector",
        width=math.log2(largest / itemsize),
        flops=float(sum(flops)),
        seconds=seconds,
        peak_bytes_forward=int(forward),
        peak_bytes_backward=int(backward),
        details=StatevectorCostDetails(
            qubits=program.dag.n_qubits,
            largest_state=max(schedule.sizes, default=0),
            batch=batch,
            steps=steps,
            dtype=str(options.dtype).removeprefix("torch."),
            kernels=len(schedule.kernels),
            fused_blocks=len(blocks),
            gradient=gradient,
            checkpoint_every=schedule.segment if recompute else None,
            checkpoints=len(schedule.segments) if recompute else None,
            tables_cached=cached,
            table_bytes=int(tables),
            forward_flops=flops[0],
        ),
    )


def _flops(schedule: Schedule, batch: int, cached: bool, complex_: bool) -> tuple[float, float]:
    """Element operations of the forward and of the forward + backward."""
    scale = 2 if complex_ else 1
    forward = backward = 0.0
    previous = 0
    for kernel, size in zip(schedule.kernels, schedule.sizes, strict=True):
        f, b = kernel.flops()
        elements = 2 ** max(size, previous) * batch * scale
        forward += f * elements
        backward += (f + b) * elements
        previous = size
        if isinstance(kernel, Rotate) and not cached:
            arrangement = schedule.arrangements[kernel.arrangement]
            table = schedule.providers[arrangement.provider].flops()
            forward += table
            backward += 3 * table
    if cached:
        tables = sum(p.flops() for p in schedule.providers)
        forward += tables
        backward += 2 * tables
    for block in schedule.blocks():
        build, build_backward = block.build_flops()
        forward += build
        backward += build + build_backward
    return forward, backward

"""Where to fuse: runs of rotations and flips become :class:`~.blocks.Block` s where that pays.

A run's matrices cost their construction once per run (the run's kernels acting on the
identity, forward and backward) and one matrix product per use and group of sequences; the
kernels cost their launches and their passes over the state at every use. The machine
model's fusion constants weigh the two.
"""

from __future__ import annotations

from collections.abc import Hashable

from qrnn_tn.backends.statevector.bits import Bit
from qrnn_tn.backends.statevector.blocks import Block
from qrnn_tn.backends.statevector.kernels import Flip, Kernel, Rotate
from qrnn_tn.backends.timing import MachineModel

__all__ = ["MAX_BLOCK_BYTES", "fuse", "linear_runs", "worthwhile"]

#: The largest block matrices (all values of a block's bits together).
MAX_BLOCK_BYTES = 64 * 2**20


def variables(kernels: list[Kernel]) -> tuple[Bit, ...]:
    """Return the distinct classical bits the kernels read, in order of first use."""
    seen: dict[Bit, None] = {}
    for kernel in kernels:
        if isinstance(kernel, Rotate):
            bits: tuple[Bit | None, ...] = kernel.runtime
        elif isinstance(kernel, Flip):
            bits = (kernel.bit,)
        else:
            bits = ()
        seen.update((bit, None) for bit in bits if bit is not None)
    return tuple(seen)


def signature(kernels: list[Kernel], bits: tuple[Bit, ...]) -> tuple[Hashable, ...]:
    """Return what a block computes, with its bits replaced by their positions in ``bits``."""
    place = {bit: i for i, bit in enumerate(bits)}
    out: list[Hashable] = []
    for k in kernels:
        if isinstance(k, Rotate):
            out.append((k.arrangement, k.layout, tuple(place[b] for b in k.runtime)))
        elif isinstance(k, Flip):
            out.append((k.shape, None if k.bit is None else place[k.bit]))
    return tuple(out)


def worthwhile(
    size: int,
    n_bits: int,
    n_kernels: int,
    uses: int,
    batch: int,
    item: int,
    machine: MachineModel,
) -> bool:
    """Whether matrices beat the kernels, by the machine model's fusion constants."""
    columns = 2 ** (size + n_bits)
    if 2**size * columns * item > MAX_BLOCK_BYTES:
        return False
    amplitude = machine.fusion_amplitude_seconds
    kernels = n_kernels * (machine.fusion_kernel_seconds + amplitude * 2**size * batch)
    per_use = 3 * (4 + 3 * 2**n_bits) * machine.fusion_call_seconds
    per_use += 8 * 4**size * batch * machine.fusion_flop_seconds * item / 4
    build = 2 * n_kernels * (machine.fusion_kernel_seconds + amplitude * 2**size * columns)
    return uses * per_use + build < uses * kernels


def linear_runs(kernels: list[Kernel]) -> list[tuple[int, int]]:
    """Return the maximal ranges of two or more consecutive rotations and flips."""
    runs, start = [], 0
    for i, kernel in enumerate([*kernels, None]):
        if not isinstance(kernel, (Rotate, Flip)):
            if i - start >= 2:
                runs.append((start, i))
            start = i + 1
    return runs


def fuse(
    kernels: list[Kernel],
    sizes: list[int],
    batch: int,
    item: int,
    force: bool | None,
    machine: MachineModel,
) -> tuple[list[Kernel], list[int]]:
    """Replace runs of rotations and flips by :class:`Block` s where that pays (or ``force``).

    Runs that compute the same thing up to which token bits they read share one block key;
    the first run's kernels build its matrices. Returns the kernels and, per kernel, the
    qubits of the state it works on.
    """
    groups: dict[tuple[Hashable, ...], list[tuple[int, int, tuple[Bit, ...]]]] = {}
    for start, stop in linear_runs(kernels):
        bits = variables(kernels[start:stop])
        key = (sizes[start], signature(kernels[start:stop], bits))
        groups.setdefault(key, []).append((start, stop, bits))
    blocks: dict[int, tuple[int, Block]] = {}
    for key_index, uses in enumerate(groups.values()):
        first, stop, build = uses[0]
        size, n_kernels = sizes[first], stop - first
        if force is None:
            fused = worthwhile(size, len(build), n_kernels, len(uses), batch, item, machine)
        else:
            fused = force and 4**size * 2 ** len(build) * item <= MAX_BLOCK_BYTES
        for start, end, bits in uses if fused else ():
            blocks[start] = (end, Block(key_index, kernels[first:stop], build, bits, size))
    return splice(kernels, sizes, blocks)


def splice(
    kernels: list[Kernel], sizes: list[int], blocks: dict[int, tuple[int, Block]]
) -> tuple[list[Kernel], list[int]]:
    """Return the kernel list with each ``blocks[start] = (end, block)`` replacing its range."""
    out_kernels: list[Kernel] = []
    out_sizes: list[int] = []
    i = 0
    while i < len(kernels):
        if i in blocks:
            i, block = blocks[i]
            out_kernels.append(block)
            out_sizes.append(block.size)
        else:
            out_kernels.append(kernels[i])
            out_sizes.append(sizes[i])
            i += 1
    return out_kernels, out_sizes

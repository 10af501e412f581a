"""The machine model: every fitted time constant of the backends, in one place.

Backends predict :attr:`~qrnn_tn.backends.base.Cost.seconds` as counts (kernels, pairwise
contractions, MPS site operations) times a per-launch time plus flops times a per-flop time;
:func:`~qrnn_tn.backends.base.choose` ranks backends by that prediction, and the statevector
decides which runs of kernels to fuse with it. A :class:`MachineModel` holds those constants
for one device kind; :data:`CPU` is the model fitted on one CPU core, and
:meth:`MachineModel.calibrate` rescales a model to the machine it runs on.

Examples
--------
Calibrate once and hand the model to every plan:

>>> from qrnn_tn.backends import BackendOptions
>>> machine = MachineModel.calibrate("cpu")  # doctest: +SKIP
>>> options = BackendOptions(machine=machine)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

__all__ = [
    "CPU",
    "MachineModel",
    "PROBE_OF",
    "machine_model",
    "probe_call",
    "probe_elements",
    "probe_matmul",
]


@dataclass(frozen=True)
class MachineModel:
    """Fitted time constants of one device kind, in seconds.

    The per-launch constants (``*_kernel_seconds``, ``*_contraction_seconds``,
    ``*_operation_seconds``, ``fusion_call_seconds``) are dominated by the overhead of a torch
    call; the per-flop and per-amplitude constants by memory traffic, or, for
    ``fusion_flop_seconds`` and ``tensornet_flop_seconds``, by matrix products. The three
    probe times say what the machine the constants describe measures on the probes of
    :meth:`calibrate`.

    Attributes
    ----------
    device
        The device kind (``"cpu"``, ``"cuda"``).
    flop_seconds
        Per flop, for a backend with no time model of its own, and the MPS backend's flops.
    statevector_kernel_seconds, statevector_flop_seconds
        A statevector run (forward and backward): per kernel of the program, per counted flop.
    fusion_kernel_seconds, fusion_amplitude_seconds
        One elementwise statevector kernel (forward, replay and backward): per kernel and per
        amplitude, as the fusion decision weighs it.
    fusion_call_seconds, fusion_flop_seconds
        A fused block's matrix product: per torch call and per flop.
    tensornet_contraction_seconds, tensornet_flop_seconds
        A tensor-network run: per pairwise contraction (forward, recomputation, backward and
        rescaling launches) and per flop of the tree's count.
    mps_operation_seconds
        An MPS run: per site operation (a neuron window or a move: several small torch calls
        and an SVD, forward and backward, however small the bond); without it a few-qubit
        cell's bond-bounded flops would look cheaper than the statevector's kernels.
    call_seconds, element_seconds, matmul_flop_seconds
        The probes of :meth:`calibrate` on this machine: one small torch call, one element of
        a large multiply-add, one flop of a matrix product.
    """

    device: str = "cpu"
    flop_seconds: float = 1e-9
    statevector_kernel_seconds: float = 120e-6
    statevector_flop_seconds: float = 0.9e-9
    fusion_kernel_seconds: float = 80e-6
    fusion_amplitude_seconds: float = 3.5e-9
    fusion_call_seconds: float = 2e-6
    fusion_flop_seconds: float = 0.04e-9
    tensornet_contraction_seconds: float = 100e-6
    tensornet_flop_seconds: float = 0.2e-9
    mps_operation_seconds: float = 150e-6
    call_seconds: float = 1.6e-6
    element_seconds: float = 2.7e-9
    matmul_flop_seconds: float = 3.0e-11

    @classmethod
    def calibrate(
        cls, device: str | torch.device = "cpu", base: MachineModel | None = None
    ) -> MachineModel:
        """Measure the probes on ``device`` and return ``base`` scaled to them.

        Per-launch constants scale with the time of a small torch call, memory-bound per-flop
        constants with the time per element of a large multiply-add, and matrix-product ones
        with the time per flop of a ``512 x 512`` product; ``base`` (default: the model of
        ``device``'s kind) gives the constants and the probe times they were fitted with.
        It takes about a second; run it once, with the thread count the runs will use.
        """
        device = torch.device(device)
        base = base or machine_model(device)
        ratio = {
            "call": probe_call(device) / base.call_seconds,
            "element": probe_elements(device) / base.element_seconds,
            "matmul": probe_matmul(device) / base.matmul_flop_seconds,
        }
        scaled = {name: getattr(base, name) * ratio[probe] for name, probe in PROBE_OF.items()}
        return replace(base, device=device.type, **scaled)


#: The probe each constant scales with under :meth:`MachineModel.calibrate`: per-launch
#: constants with a small call, memory-bound per-flop ones with a large multiply-add, matrix
#: products with a matrix product.
PROBE_OF: dict[str, str] = {
    "flop_seconds": "element",
    "statevector_kernel_seconds": "call",
    "statevector_flop_seconds": "element",
    "fusion_kernel_seconds": "call",
    "fusion_amplitude_seconds": "element",
    "fusion_call_seconds": "call",
    "fusion_flop_seconds": "matmul",
    "tensornet_contraction_seconds": "call",
    "tensornet_flop_seconds": "matmul",
    "mps_operation_seconds": "call",
    "call_seconds": "call",
    "element_seconds": "element",
    "matmul_flop_seconds": "matmul",
}

#: The model fitted on one CPU core (``--threads 1`` points of
#: ``python -m benchmarks.contraction_scaling`` and the MPS benchmarks).
CPU = MachineModel()

#: The model of each device kind; a kind without its own uses the CPU's.
MODELS: dict[str, MachineModel] = {"cpu": CPU}


def machine_model(device: str | torch.device = "cpu") -> MachineModel:
    """Return the fitted model of ``device``'s kind (the CPU's when it has none)."""
    return MODELS.get(torch.device(device).type, CPU)


def _best_seconds(run: Callable[[], object], device: torch.device, repeats: int = 7) -> float:
    """Return the shortest of ``repeats`` timings of ``run`` (synchronised on CUDA)."""
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def probe_call(device: torch.device, calls: int = 1000) -> float:
    """Seconds of one elementwise torch call on four elements."""
    x = torch.ones(4, dtype=torch.float64, device=device)

    def run() -> None:
        for _ in range(calls):
            torch.mul(x, x)

    return _best_seconds(run, device) / calls


def probe_elements(device: torch.device, n: int = 2**22) -> float:
    """Seconds per element of a multiply and an add over ``n`` float64 elements."""
    a = torch.ones(n, dtype=torch.float64, device=device)
    b, out = torch.ones_like(a), torch.empty_like(a)
    return _best_seconds(lambda: torch.mul(a, b, out=out).add_(b), device) / n


def probe_matmul(device: torch.device, n: int = 512) -> float:
    """Seconds per flop of an ``n x n`` float64 matrix product."""
    a = torch.ones(n, n, dtype=torch.float64, device=device)
    out = torch.empty_like(a)
    return _best_seconds(lambda: torch.mm(a, a, out=out), device) / (2 * n**3)

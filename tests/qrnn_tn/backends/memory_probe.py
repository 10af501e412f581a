"""Child process of ``test_memory_guard.py``: run cells one after another and print, for
each, its predicted peak memory and the peak the process measured, as JSON lines.

Usage: ``python memory_probe.py CELLS.json`` with a list of ``{"spec", "steps", "backend",
"batch", "grad", "options", "budget"}`` (the last two optional). Before each run the
process returns freed memory to the system (``malloc_trim``), reads its resident set (the
baseline: interpreter, torch, the plan) and resets its high-water mark
(``/proc/self/clear_refs``); the high-water mark after the run, less the baseline, is what
the run held. Each backend first runs tiny cells twice: the first runs put torch's lazy
initialisation (thread pools, the autograd engine, code pages) in the baseline; the second's
measured use (``tiny_run``) is the run's own fixed bookkeeping (Python objects, allocator pages),
which no backend's prediction models.
"""

from __future__ import annotations

import ctypes
import gc
import json
import re
import sys
import time

import torch

from compiler.unroll import compile_program
from qrnn_tn.backends import BackendOptions, get_backend

#: Tiny cells run first, so that the code pages of every kernel (BLAS included) are already
#: resident: all-to-all (neuron tables through a matrix product) and local.
WARM_UP = [
    {"cell": {"io": 1, "workspace": 4}, "neuron": {"degree": 1, "order": 1, "topology": "all"}},
    {
        "cell": {"io": 2, "workspace": 3},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
    },
]
_LIBC = ctypes.CDLL("libc.so.6")


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+) kB", f.read()).group(1)) * 1024


def _run(plan, program, batch: int, grad: bool, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    params = torch.randn(program.n_params, generator=gen, dtype=torch.float64)
    params.requires_grad_(grad)
    words = torch.randint(0, 2**program.io, (batch, program.steps + 1), generator=gen)
    result = plan.run(params, words)
    if grad:
        result.target_prob.clamp_min(1e-300).log().sum().backward()


def measure(cell: dict) -> dict:
    """Predicted and measured peak bytes of one run of ``cell`` (see the module docstring)."""
    prepare = get_backend(cell["backend"])
    options = BackendOptions(
        dtype=torch.float64,
        batch_size=cell["batch"],
        memory_budget=cell.get("budget"),
        backend_options=cell.get("options", {}),
    )
    program = compile_program(cell["spec"], steps=cell["steps"])
    plan = prepare(program, options)
    cost = plan.cost
    predicted = cost.peak_bytes_backward if cell["grad"] else cost.peak_bytes_forward
    gc.collect()
    _LIBC.malloc_trim(0)
    baseline = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = time.perf_counter()
    _run(plan, program, cell["batch"], cell["grad"], 0)
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    del plan
    gc.collect()
    return {
        **cell,
        "predicted": predicted,
        "baseline": baseline,
        "used": peak - baseline,
        "seconds": seconds,
    }


def main(cells: list[dict]) -> None:
    torch.set_num_threads(1)
    warm: dict[str, int] = {}
    for cell in cells:
        if cell["backend"] not in warm:
            tiny = [
                {**cell, "spec": spec, "steps": 2, "batch": 2, "budget": None} for spec in WARM_UP
            ]
            for each in tiny:
                measure(each)
            warm[cell["backend"]] = max(measure(each)["used"] for each in tiny)
        print(json.dumps({**measure(cell), "tiny_run": warm[cell["backend"]]}), flush=True)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        main(json.load(f))

"""Benchmark of the MPS backend: time, memory and error vs qubits, steps and bond cap.

``python -m benchmarks.mps [--quick] [--out DIR]`` writes ``mps.json`` and ``mps.png`` under
``DIR`` (default ``benchmarks/results/``). Every case reports forward and forward+backward
seconds per step for the whole batch; the headline case (100 lanes, r = 1, bond 32, batch 32)
also runs the naive per-sequence numpy prototype kept below as the in-run baseline, both at
the steady state (bonds at the cap) and from the product state; the 64-lane 100-step case
measures peak memory of forward+backward in a fresh process, and ``profile`` splits a
steady-state forward step by torch operator.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from compiler.gates import neuron_branch_amplitudes
from compiler.unroll import compile_program
from qrnn_tn import jsonio
from qrnn_tn.backends.base import BackendOptions, available_memory
from qrnn_tn.backends.mps import prepare
from qrnn_tn.backends.statevector import prepare as prepare_statevector
from qrnn_tn.model import init_params


def local_spec(lanes: int, radius: int = 1, io: int = 2) -> dict:
    """Return a wide cell with nearest-neighbour neurons (as ``examples/wide_local.toml``)."""
    return {
        "cell": {"io": io, "workspace": lanes - io, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": radius}},
    }


#: Parameter initialisations: ``"normal"`` draws every slot from N(0, 1) (bonds saturate
#: within a few steps); ``"paper"`` is the spec's default (QRNN.md §5), what training uses.
INITS = ("normal", "paper")


def _inputs(
    program, batch: int, seed: int = 0, init: str = "normal"
) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    params = torch.tensor(rng.normal(0, 1.0, program.n_params))
    if init == "paper":
        params = init_params(program, program.spec, torch.Generator().manual_seed(seed))
    words = torch.as_tensor(rng.integers(0, 2**program.io, (batch, program.n_tokens)))
    return params, words


def time_mps(
    lanes: int,
    steps: int,
    bond: int,
    batch: int,
    backward: bool = True,
    init: str = "normal",
    memory_budget: int | None = None,
    checkpoint_steps: int = 1,
) -> dict:
    """Time one MPS run: seconds per step (forward; forward+backward), discarded weight.

    The plan's outer checkpoint blocks are chosen for ``memory_budget`` (default: the
    available memory).
    """
    program = compile_program(local_spec(lanes), steps=steps)
    params, words = _inputs(program, batch, init=init)
    extra = {"max_bond": bond, "checkpoint_steps": checkpoint_steps}
    options = BackendOptions(batch_size=batch, memory_budget=memory_budget, backend_options=extra)
    plan = prepare(program, options)
    with torch.no_grad():
        start = time.perf_counter()
        result = plan.run(params, words)
        forward = time.perf_counter() - start
    row = {
        "lanes": lanes,
        "steps": steps,
        "bond": bond,
        "batch": batch,
        "init": init,
        "forward_s_per_step": forward / steps,
        "discarded_per_step": float(result.discarded.mean()),
        "predicted_flops": plan.cost.flops,
        "predicted_peak_bytes_backward": plan.cost.peak_bytes_backward,
        "memory_budget": memory_budget,
        "checkpoint_steps": plan.checkpoint_steps,
        "checkpoint_outer": plan.checkpoint_outer,
    }
    if backward:
        theta = params.clone().requires_grad_(True)
        start = time.perf_counter()
        plan.run(theta, words).log_norm.sum().backward()
        row["fwd_bwd_s_per_step"] = (time.perf_counter() - start) / steps
        row["fwd_bwd_over_forward"] = row["fwd_bwd_s_per_step"] / row["forward_s_per_step"]
    return row


# -- the naive prototype: one sequence at a time, numpy, window contraction + SVD splits ----


def naive_run(program, params: np.ndarray, word: np.ndarray, max_bond: int) -> np.ndarray:
    """Per-step distributions of one sequence: the first prototype, kept as the baseline.

    The orthogonality centre is moved by QR to each neuron's window; the window is
    contracted, the neuron applied as a dense ``2^w`` matrix, the result split back site by
    site with truncated SVDs.
    """
    n, io = program.n_lanes, program.io
    sites = [np.array([1.0, 0.0]).reshape(1, 2, 1) for _ in range(n)]
    centre = 0
    probs = []

    def move(to: int) -> int:
        c = centre
        while c < to:
            dl, _, dr = sites[c].shape
            q, r = np.linalg.qr(sites[c].reshape(dl * 2, dr))
            sites[c] = q.reshape(dl, 2, -1)
            sites[c + 1] = np.tensordot(r, sites[c + 1], 1)
            c += 1
        while c > to:
            dl, _, dr = sites[c].shape
            q, r = np.linalg.qr(sites[c].reshape(dl, 2 * dr).T)
            sites[c] = q.T.reshape(-1, 2, dr)
            sites[c - 1] = np.tensordot(sites[c - 1], r.T, 1)
            c -= 1
        return c

    for op in program.ops:
        if op.kind == "wordx":
            if (word[op.bit.token] >> (io - 1 - op.bit.bit)) & 1:
                sites[op.qubit] = sites[op.qubit][:, ::-1]
        elif op.kind == "gate":
            a = op.angle.evaluate(params)
            m = np.array([[np.cos(a / 2), -np.sin(a / 2)], [np.sin(a / 2), np.cos(a / 2)]])
            q = op.qubits[0]
            sites[q] = np.einsum("pq,xqy->xpy", m, sites[q])
        elif op.kind == "neuron":
            a, b = min(op.qubits), max(op.qubits)
            centre = move(a)
            theta = sites[a]
            for k in range(a + 1, b + 1):
                theta = np.tensordot(theta, sites[k], 1)
            dl, dr, w = theta.shape[0], theta.shape[-1], b - a + 1
            theta = theta.reshape(dl, 2**w, dr)
            theta = np.einsum("pq,xqy->xpy", _window_operator(op, params, a, w), theta)
            theta /= np.linalg.norm(theta)
            for k in range(a, b):
                u, s, vh = np.linalg.svd(theta.reshape(theta.shape[0] * 2, -1), False)
                keep = min(max_bond, int((s > 1e-14 * s[0]).sum()))
                sites[k] = u[:, :keep].reshape(-1, 2, keep)
                theta = (s[:keep, None] * vh[:keep]) / np.linalg.norm(s[:keep])
            sites[b] = theta.reshape(-1, 2, dr)
            centre = b
        elif op.kind == "readout":
            centre = move(io - 1)
            theta = sites[0]
            for k in range(1, io):
                theta = np.tensordot(theta, sites[k], 1)
            p = (theta.reshape(2**io, -1) ** 2).sum(axis=1)
            probs.append(p / p.sum())
        elif op.kind == "project":
            centre = move(io - 1)
            target = word[op.token]
            for q in range(io):
                bit = (target >> (io - 1 - q)) & 1
                sites[q] = sites[q] * (np.arange(2) == bit)[None, :, None]
            sites[io - 1] /= np.sqrt(probs[-1][target])
            centre = move(0)
    return np.array(probs)


def _window_operator(op, params: np.ndarray, a: int, w: int) -> np.ndarray:
    """Dense ``Σ_x |x⟩⟨x| ⊗ M(x)`` on the ``w`` window sites starting at lane ``a``."""
    states = np.arange(2**w)
    bits = (states[:, None] >> (w - 1 - np.arange(w))[None, :]) & 1
    theta = np.array([params[s] for s in op.slots])
    out = np.zeros((2**w, 2**w))
    for z in states:
        x = [bits[z, q - a] for q in op.sources]
        eta = (
            op.offset
            + sum(
                t * all(x[op.sources.index(q)] for q in sub)
                for t, sub in zip(theta, op.subsets, strict=True)
            )
        ) / 2
        c, s = neuron_branch_amplitudes(np.float64(eta), op.order)
        flip = z ^ (1 << (w - 1 - (op.target - a)))
        out[z, z] = c
        out[flip, z] = s if bits[z, op.target - a] == 0 else -s
    return out


def _headline_totals(steps: int, init: str, sequences: int) -> dict:
    """Time a whole ``steps``-step run of the headline cell.

    The row holds MPS forward and forward+backward seconds for the batch of 32, and the naive
    prototype's scaled from ``sequences``.
    """
    row = time_mps(100, steps, 32, 32, init=init)
    program = compile_program(local_spec(100), steps=steps)
    params, words = _inputs(program, 32, init=init)
    start = time.perf_counter()
    for word in words[:sequences].numpy():
        naive_run(program, params.numpy(), word, 32)
    return {
        "forward": row["forward_s_per_step"] * steps,
        "fwd_bwd": row["fwd_bwd_s_per_step"] * steps,
        "naive": (time.perf_counter() - start) / sequences * 32,
        "discarded_per_step": row["discarded_per_step"],
    }


def headline(quick: bool, init: str) -> dict:
    """N = 100, r = 1, bond 32, batch 32: MPS backend vs the naive prototype, per step.

    Runs of ``warm`` and ``warm + steps`` steps from the product state; their difference
    over ``steps`` is the steady state (with N(0, 1) weights every bond is at the cap from
    the fourth step on), the longer run's mean is the cost from the product state. A
    one-step run first takes the process's one-time costs out of the difference.
    """
    warm, steps = (2, 1) if quick else (3, 3)
    sequences = 1 if quick else 2
    _headline_totals(1, init, 1)
    short = _headline_totals(warm, init, sequences)
    long = _headline_totals(warm + steps, init, sequences)
    steady = {key: (long[key] - short[key]) / steps for key in ("forward", "fwd_bwd", "naive")}
    mean = {key: long[key] / (warm + steps) for key in ("forward", "fwd_bwd", "naive")}
    return {
        "init": init,
        "warm_steps": warm,
        "steps": steps,
        "discarded_per_step": long["discarded_per_step"],
        "steady": _with_ratios(steady),
        "from_product_state": _with_ratios(mean),
    }


def _with_ratios(seconds: dict) -> dict:
    return seconds | {
        "speedup_vs_naive": seconds["naive"] / seconds["forward"],
        "fwd_bwd_over_forward": seconds["fwd_bwd"] / seconds["forward"],
    }


def _op_totals(steps: int) -> dict[str, dict]:
    """Profile one forward of the headline cell: self CPU seconds and calls per operator.

    The cell is n = 100, bond 32, batch 32, N(0, 1) weights, over ``steps`` steps.
    """
    from torch.profiler import ProfilerActivity, profile

    program = compile_program(local_spec(100), steps=steps)
    params, words = _inputs(program, 32)
    plan = prepare(program, BackendOptions(batch_size=32, backend_options={"max_bond": 32}))
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        plan.run(params, words)
    return {
        e.key: {"seconds": e.self_cpu_time_total / 1e6, "calls": e.count}
        for e in prof.key_averages()
    }


def forward_profile(warm: int, steps: int) -> dict:
    """Where the headline forward spends a step once every bond is saturated at 32.

    Profiles forwards of ``warm`` and ``warm + steps`` steps and takes the difference, so the
    first steps, whose bonds still grow, drop out: seconds and calls per step of the eight
    costliest operators, and their share of the step's operator time.
    """
    short, long = _op_totals(warm), _op_totals(warm + steps)
    per_step = {
        key: {
            field: (value - short.get(key, {}).get(field, 0)) / steps
            for field, value in row.items()
        }
        for key, row in long.items()
    }
    total = sum(row["seconds"] for row in per_step.values())
    ops = [
        {
            "op": key,
            "calls_per_step": row["calls"],
            "s_per_step": row["seconds"],
            "share": row["seconds"] / total,
        }
        for key, row in sorted(per_step.items(), key=lambda kv: -kv[1]["seconds"])[:8]
    ]
    return {"warm_steps": warm, "steps": steps, "s_per_step": total, "ops": ops}


def exactness(bonds: list[int]) -> list[dict]:
    """Probability and gradient error vs the untruncated run on a 10-lane cell."""
    program = compile_program(local_spec(10, radius=2), steps=6)
    params, words = _inputs(program, 4)
    rows = []
    exact = None
    for bond in [None, *bonds]:
        theta = params.clone().requires_grad_(True)
        plan = prepare(program, BackendOptions(backend_options={"max_bond": bond}))
        result = plan.run(theta, words)
        (grad,) = torch.autograd.grad(result.log_norm.sum(), theta)
        if exact is None:
            exact = (result.probs.detach(), grad)
            naive = np.stack([naive_run(program, params.numpy(), w, 2**10) for w in words.numpy()])
            rows.append(
                {"bond": None, "naive_vs_mps": float(np.abs(naive - exact[0].numpy()).max())}
            )
            continue
        rows.append(
            {
                "bond": bond,
                "prob_error": float((result.probs.detach() - exact[0]).abs().max()),
                "grad_rel_error": float((grad - exact[1]).norm() / exact[1].norm()),
                "discarded_total": float(result.discarded.sum(dim=1).max()),
            }
        )
    return rows


def error_study(cases: list[tuple[int, int]], bonds: list[int], batch: int = 2) -> list[dict]:
    """Error of the capped MPS against the statevector (exact) on r = 1 cells.

    For each ``(lanes, steps)`` case and each initialisation: the largest probability error
    over all steps, the relative 2-norm error of the gradient of the summed log-likelihood,
    and the largest total discarded weight of a sequence, per bond cap.
    """
    rows = []
    for lanes, steps in cases:
        program = compile_program(local_spec(lanes), steps=steps)
        for init in INITS:
            params, words = _inputs(program, batch, seed=1, init=init)
            exact_plan = prepare_statevector(program, BackendOptions(batch_size=batch))
            exact = _probs_and_grad(exact_plan, params, words)
            for bond in bonds:
                plan = prepare(
                    program, BackendOptions(batch_size=batch, backend_options={"max_bond": bond})
                )
                probs, grad, result = _probs_and_grad(plan, params, words)
                rows.append(
                    {
                        "lanes": lanes,
                        "steps": steps,
                        "init": init,
                        "bond": bond,
                        "prob_error": float((probs - exact[0]).abs().max()),
                        "grad_rel_error": float((grad - exact[1]).norm() / exact[1].norm()),
                        "discarded_total": float(result.discarded.sum(dim=1).max()),
                    }
                )
    return rows


def _probs_and_grad(plan, params: torch.Tensor, words: torch.Tensor):
    theta = params.clone().requires_grad_(True)
    result = plan.run(theta, words)
    (grad,) = torch.autograd.grad(torch.log(result.target_prob).sum(), theta)
    return result.probs.detach(), grad, result


#: glibc's mmap threshold for the memory run. By default glibc raises it (up to 32 MiB) each
#: time a large block is freed, after which the many block-sized tensors of a backward pass
#: come from the heap and fragment it; fixing it at 64 KiB keeps them mmapped and returned
#: on free. Users set the same ``MALLOC_MMAP_THRESHOLD_`` environment variable.
MALLOC_MMAP_THRESHOLD = 65536


#: The memory run's limit on the whole process (the target for 64 lanes x 100
#: steps, 4 GB). The plan gets what the process has not taken yet after its imports as its
#: budget and recomputes as little as fits; the peak RSS measured shows whether it held.
MEMORY_TARGET = 4 * 10**9


def peak_memory(
    lanes: int,
    steps: int,
    bond: int,
    batch: int,
    process_limit: int,
    init: str = "normal",
    checkpoint_steps: int = 1,
) -> dict:
    """Measure the peak RSS of forward+backward in a fresh process (``ru_maxrss``).

    The plan is sized to keep the process within ``process_limit`` bytes, run with
    ``MALLOC_MMAP_THRESHOLD_`` set to :data:`MALLOC_MMAP_THRESHOLD` (recorded in the row).
    """
    code = (
        "import resource, torch, time; from benchmarks.mps import time_mps; "
        f"torch.set_num_threads({torch.get_num_threads()}); "
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024; "
        f"row = time_mps({lanes}, {steps}, {bond}, {batch}, memory_budget={process_limit} - base, "
        f"init={init!r}, checkpoint_steps={checkpoint_steps!r}); "
        f"row['process_limit'] = {process_limit}; row['baseline_rss_bytes'] = base; "
        "row['peak_rss_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024; "
        "import json; print(json.dumps(row))"
    )
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MALLOC_MMAP_THRESHOLD)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {**row, "malloc_mmap_threshold": MALLOC_MMAP_THRESHOLD}


#: ``(lanes, steps, bond, init)`` of the checkpointing comparison: the 64-qubit digits
#: training's shape (bonds below the cap) and the headline cell at saturated bonds.
CHECKPOINT_CASES = ((64, 25, 16, "paper"), (100, 6, 32, "normal"))


def checkpointing(process_limit: int) -> list[dict]:
    """Measure forward+backward peak memory with one checkpoint per step and with none.

    Batch 32, each in a fresh process, for each of :data:`CHECKPOINT_CASES`.
    """
    return [
        peak_memory(lanes, steps, bond, 32, process_limit, init=init, checkpoint_steps=every)
        for lanes, steps, bond, init in CHECKPOINT_CASES
        for every in (1, 0)
    ]


def plot(results: dict, path: Path) -> None:
    """Plot seconds per step against lanes, bond and steps to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for key, ax, label in (
        ("by_lanes", axes[0], "lanes"),
        ("by_bond", axes[1], "bond"),
        ("by_steps", axes[2], "steps"),
    ):
        rows = results[key]
        xs = [r[label] for r in rows]
        ax.plot(xs, [r["forward_s_per_step"] for r in rows], "o-", label="forward")
        ax.plot(xs, [r["fwd_bwd_s_per_step"] for r in rows], "s-", label="fwd+bwd")
        ax.set_xlabel(label)
        ax.set_ylabel("s per step (whole batch)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_errors(rows: list[dict], path: Path) -> None:
    """Probability and gradient error vs bond cap, one line per cell, length and init."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    cases = sorted({(r["lanes"], r["steps"], r["init"]) for r in rows})
    for lanes, steps, init in cases:
        mine = [r for r in rows if (r["lanes"], r["steps"], r["init"]) == (lanes, steps, init)]
        bonds = [r["bond"] for r in mine]
        style = "o-" if init == "paper" else "s--"
        label = f"{lanes} lanes, {steps} steps, {init} init"
        for ax, key in zip(axes, ("prob_error", "grad_rel_error"), strict=True):
            floor = 1e-17  # exact zeros drawn at the floor of the log axis
            ax.plot(bonds, [max(r[key], floor) for r in mine], style, label=label)
    for ax, title in zip(axes, ("max |p - p_exact|", "|g - g_exact| / |g_exact|"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("bond cap")
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _steps_label(first: int, last: int) -> str:
    return f"steps {first}-{last}" if last > first else f"step {first}"


def report(results: dict, threads: int) -> None:
    """Print the headline ratios, the error table and the memory run, where measured."""
    for key in ("headline", "headline_paper_init"):
        if key not in results:
            continue
        h = results[key]
        last = h["warm_steps"] + h["steps"]
        for part, label in (
            ("steady", _steps_label(h["warm_steps"] + 1, last)),
            ("from_product_state", f"mean of {_steps_label(1, last)}"),
        ):
            r = h[part]
            print(
                f"{key} (n=100, bond 32, batch 32, {h['init']} init, {threads} thread(s), "
                f"{label}): forward {r['forward']:.3f} s/step vs naive {r['naive']:.3f} "
                f"s/step = {r['speedup_vs_naive']:.1f}x; fwd+bwd / forward = "
                f"{r['fwd_bwd_over_forward']:.2f}x"
            )
    if "exactness" in results:
        print(jsonio.dumps(results["exactness"], indent=2))
    for r in results.get("errors", []):
        print(
            f"errors: {r['lanes']} lanes, {r['steps']} steps, {r['init']} init, bond "
            f"{r['bond']}: prob {r['prob_error']:.1e}, grad {r['grad_rel_error']:.1e}, "
            f"discarded {r['discarded_total']:.1e}"
        )
    if "profile" in results:
        prof = results["profile"]
        first = prof["warm_steps"] + 1
        print(
            f"forward profile, {_steps_label(first, first + prof['steps'] - 1)}"
            f" (bonds saturated): {prof['s_per_step']:.3f} s/step of operator time"
        )
        for row in prof["ops"]:
            print(
                f"  {row['op']}: {row['s_per_step']:.3f} s/step ({row['share']:.0%}, "
                f"{row['calls_per_step']:.0f} calls/step)"
            )
    for row in results.get("checkpointing", []):
        print(
            f"checkpointing ({row['lanes']} lanes, {row['steps']} steps, bond {row['bond']}, "
            f"batch 32, {row['init']} init), checkpoint_steps {row['checkpoint_steps']}: "
            f"forward {row['forward_s_per_step']:.3f}"
            f" s/step, fwd+bwd {row['fwd_bwd_s_per_step']:.3f} s/step "
            f"({row['fwd_bwd_over_forward']:.2f}x), peak RSS {row['peak_rss_bytes'] / 1e9:.2f} GB "
            f"(predicted {row['predicted_peak_bytes_backward'] / 1e9:.2f} GB + imports "
            f"{row['baseline_rss_bytes'] / 1e9:.2f} GB)"
        )
    if "memory_64x100" in results:
        m = results["memory_64x100"]
        print(
            f"64 lanes x 100 steps, bond 32, batch 32, process limit "
            f"{m['process_limit'] / 1e9:g} GB (imports {m['baseline_rss_bytes'] / 1e9:.2f} GB, "
            f"outer checkpoint block {m['checkpoint_outer']} steps): fwd+bwd peak RSS "
            f"{m['peak_rss_bytes'] / 1e9:.2f} GB (predicted "
            f"{m['predicted_peak_bytes_backward'] / 1e9:.2f} GB), fwd+bwd / forward "
            f"{m['fwd_bwd_over_forward']:.2f}x, discarded per step {m['discarded_per_step']:.1e}"
        )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid (~2 minutes)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--parts",
        help="comma-separated subset: by_lanes, by_bond, by_steps, exactness, errors, headline, "
        "headline_paper_init, memory_64x100, checkpointing, profile (default: all; --quick leaves "
        "out the two runs in fresh processes)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:  # the naive prototype's numpy BLAS gets the same thread count as torch
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)
    except ImportError:
        pass
    q = args.quick
    batch = 8 if q else 32
    parts = {
        "by_lanes": lambda: [
            time_mps(n, 2 if q else 5, 16, batch) for n in [16, 32, 64] + ([] if q else [128])
        ],
        "by_bond": lambda: [
            time_mps(32, 2 if q else 5, d, batch) for d in ([8, 32] if q else [8, 16, 32, 64, 128])
        ],
        "by_steps": lambda: [
            time_mps(16, t, 16, batch) for t in ([10, 20] if q else [10, 50, 100, 200])
        ],
        "exactness": lambda: exactness([2, 4, 8] if q else [2, 4, 8, 16]),
        "errors": lambda: error_study(
            [(16, 20)] if q else [(16, 20), (16, 50), (20, 50), (24, 20)],
            [8, 32] if q else [8, 16, 32, 64, 128],
        ),
        "headline": lambda: headline(q, "normal"),
        "headline_paper_init": lambda: headline(q, "paper"),
        "memory_64x100": lambda: peak_memory(64, 100, 32, 32, MEMORY_TARGET),
        "checkpointing": lambda: checkpointing(available_memory()),
        "profile": lambda: forward_profile(3, 1 if q else 3),
    }
    chosen = (
        args.parts.split(",")
        if args.parts
        else [p for p in parts if p not in ("memory_64x100", "checkpointing") or not q]
    )
    unknown = sorted(set(chosen) - set(parts))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(parts)}")
    results = {"threads": args.threads, "quick": q} | {name: parts[name]() for name in chosen}
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / "mps.json.tmp"
    tmp.write_text(jsonio.dumps(results, indent=2))
    tmp.replace(args.out / "mps.json")
    if {"by_lanes", "by_bond", "by_steps"} <= results.keys():
        plot(results, args.out / "mps.png")
    if "errors" in results:
        plot_errors(results["errors"], args.out / "mps_error.png")
    report(results, args.threads)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"rss peak of this process: {peak:.2f} GB")


if __name__ == "__main__":
    main()

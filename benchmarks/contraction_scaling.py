"""Scaling of the tensor-network backend: predicted cost, planning, run time, memory.

``python -m benchmarks.contraction_scaling [--quick] [--out DIR]`` sweeps local cells (r = 1, 2)
and the all-to-all cell over qubit counts and steps. Each point runs in a fresh subprocess
under a memory cap (``resource.setrlimit``) and a timeout, and records: predicted width,
flops and memory; cold and cached planning time; forward and forward+backward time; the bytes
autograd retains after the forward; peak RSS. Beside it, measured on the same leaves, a
baseline (one global quimb network, greedy path, plain autograd) and the statevector backend
where installed and small enough. Writes ``scaling.json`` and PNG plots under ``DIR``
(default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CELLS = {
    "local1": {"local": 1},
    "local2": {"local": 2},
    "all": "all",
}
FULL = {
    "local1": ([8, 12, 16, 20, 22, 32, 64, 100, 128], [1, 2, 3, 4, 8]),
    "local2": ([8, 12, 16, 20, 22, 32, 64, 100], [1, 2, 3]),
    "all": ([6, 8, 10, 12, 14], [1, 2, 3]),
}
QUICK = {
    "local1": ([8, 16, 32, 100], [1, 2]),
    "local2": ([8, 16], [1, 2]),
    "all": ([6, 8], [1, 2]),
}
#: Predicted widths above which the baseline is not attempted (it would not fit).
BASELINE_MAX_WIDTH = 26
#: Largest register the statevector is timed on (its cost is still predicted beyond).
STATEVECTOR_MAX_QUBITS = 22


def spec_for(cell: str, qubits: int) -> dict:
    """The benchmark cell: io 2, one work stage, degree 2, order 2."""
    return {
        "cell": {"io": 2, "workspace": qubits - 2, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": CELLS[cell]},
    }


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _retained_bytes(fn) -> tuple[object, int]:
    """Run ``fn`` and sum the bytes autograd saves for backward (unique storages)."""
    import torch

    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def _baseline(plan, params, words):
    """All steps with one global quimb network each, greedy path, plain autograd."""
    import quimb.tensor as qtn
    import torch

    from qrnn_tn.backends.tn_plan import symbols
    from qrnn_tn.backends.tn_values import LeafValues

    batch_plan = plan._plan(words.shape[0])
    values = LeafValues(plan.program, params, words)
    values.prepare_neurons(batch_plan.networks.neurons)
    probs = []
    for net in batch_plan.networks.networks:
        inputs, output, _ = symbols(net)
        tn = qtn.TensorNetwork(
            [
                qtn.Tensor(values.value(leaf), inds=ix)
                for leaf, ix in zip(net.leaves, inputs, strict=True)
            ]
        )
        out = tn.contract(output_inds=output, optimize="greedy")
        flat = out.data.reshape(words.shape[0], -1)
        probs.append(flat / flat.sum(1, keepdim=True))
    return torch.stack(probs, 1)


def _loss(probs, words):
    import torch

    target = probs.gather(2, words[:, 1:, None])
    return -torch.log(target).sum()


def _warm_up() -> None:
    """One tiny differentiated run, so one-off autograd start-up is not timed."""
    import torch

    from compiler.unroll import compile_program
    from qrnn_tn.backends.base import BackendOptions
    from qrnn_tn.backends.tensornet import prepare

    program = compile_program(spec_for("local1", 4), steps=1)
    plan = prepare(program, BackendOptions(extra={"cache_dir": None}))
    params = torch.zeros(program.n_params, dtype=torch.float64, requires_grad=True)
    words = torch.zeros(1, 2, dtype=torch.long)
    _loss(plan.run(params, words).probs, words).backward()


def run_point(point: dict) -> dict:
    """Measure one (cell, qubits, steps) point; runs inside the capped subprocess."""
    import torch

    from compiler.unroll import compile_program
    from qrnn_tn.backends.base import BackendOptions, get_backend, rank_backends
    from qrnn_tn.backends.tensornet import prepare
    from qrnn_tn.backends.tn_plan import clear_memory_cache, search_count

    torch.set_num_threads(point["threads"])
    _warm_up()
    program = compile_program(spec_for(point["cell"], point["qubits"]), steps=point["steps"])
    rng = np.random.default_rng(0)
    params = torch.tensor(rng.normal(0, 0.1, program.n_params), requires_grad=True)
    words = torch.tensor(rng.integers(0, 4, size=(1, point["steps"] + 1)))
    out: dict = dict(point)
    with tempfile.TemporaryDirectory() as cache:
        options = BackendOptions(
            dtype=torch.float64,
            memory_budget=point["mem_cap"],
            extra={"cache_dir": cache, "search_time": point["search_time"]},
        )
        before = search_count()
        plan, out["plan_cold_s"] = _timed(lambda: prepare(program, options))
        out["searches"] = search_count() - before
        clear_memory_cache()
        plan, out["plan_warm_s"] = _timed(lambda: prepare(program, options))
    cost = plan.cost
    out.update(
        width=cost.width,
        flops=cost.flops,
        peak_forward=cost.peak_bytes_forward,
        peak_backward=cost.peak_bytes_backward,
        slices=cost.details["slices per step"],
    )
    with torch.no_grad():
        _, out["forward_s"] = _timed(lambda: plan.run(params, words))

    def fwd_bwd():
        res, retained = _retained_bytes(lambda: plan.run(params, words))
        _loss(res.probs, words).backward()
        return retained

    out["retained_bytes"], out["fwd_bwd_s"] = _timed(fwd_bwd)
    if point["baseline"] and cost.width <= BASELINE_MAX_WIDTH:

        def base():
            probs, retained = _retained_bytes(lambda: _baseline(plan, params, words))
            _loss(probs, words).backward()
            return retained

        out["baseline_retained_bytes"], out["baseline_fwd_bwd_s"] = _timed(base)
    auto_options = BackendOptions(dtype=torch.float64, memory_budget=point["mem_cap"])
    candidates, _ = rank_backends(program, auto_options)
    out["auto"] = candidates[0].name if candidates else None
    out["predicted_flops"] = {c.name: c.cost.flops for c in candidates}
    timed = {"tensornet"} | ({"statevector"} if point["statevector"] else set())
    for name in sorted(({out["auto"]} | timed) - {None, "tensornet"}):
        other = get_backend(name)(program, auto_options)

        def other_run(plan=other):
            _loss(plan.run(params, words).probs, words).backward()

        _, out[f"{name}_fwd_bwd_s"] = _timed(other_run)
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def _child(point: dict, timeout: float) -> dict:
    """Run ``point`` in a fresh interpreter with an address-space cap and a timeout."""
    cmd = [sys.executable, "-m", "benchmarks.contraction_scaling", "--point", json.dumps(point)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**point, "error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {**point, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cap_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _has_statevector() -> bool:
    from qrnn_tn.backends import backend_names

    return "statevector" in backend_names()


def sweep(grid: dict, args) -> list[dict]:
    """Run every point of ``grid`` in time order, skipping larger ones after a failure."""
    results = []
    deadline = time.monotonic() + args.budget
    for cell, (qubit_list, step_list) in grid.items():
        for steps in step_list:
            for qubits in qubit_list:
                if time.monotonic() > deadline:
                    return results
                point = {
                    "cell": cell,
                    "qubits": qubits,
                    "steps": steps,
                    "threads": args.threads,
                    "mem_cap": args.mem_cap,
                    "search_time": 2.0 if args.quick else 5.0,
                    "baseline": steps <= 2 and (cell == "local1" or qubits <= 10),
                    "statevector": _has_statevector() and qubits <= STATEVECTOR_MAX_QUBITS,
                }
                res = _child(point, args.timeout)
                print(json.dumps(res), flush=True)
                results.append(res)
                if "error" in res:
                    break
    return results


def headline(results: list[dict]) -> None:
    """One line per point with a baseline: speed-up and retained-memory ratios."""
    print("headline: tensornet vs baseline (quimb + greedy + plain autograd), same leaves")
    for r in results:
        if "error" in r or "baseline_fwd_bwd_s" not in r:
            continue
        speed = r["baseline_fwd_bwd_s"] / r["fwd_bwd_s"]
        memory = r["baseline_retained_bytes"] / max(r["retained_bytes"], 1)
        print(
            f"  {r['cell']:7s} n={r['qubits']:<4d} T={r['steps']}  fwd {r['forward_s']:.2f} s  "
            f"fwd+bwd {r['fwd_bwd_s']:.2f} s vs {r['baseline_fwd_bwd_s']:.2f} s "
            f"(x{speed:.1f} faster)  retained {r['retained_bytes'] / 2**20:.1f} MiB vs "
            f"{r['baseline_retained_bytes'] / 2**20:.1f} MiB (x{memory:.1f} less); "
            f"predicted fwd/bwd peak {r['peak_forward'] / 2**20:.1f}/"
            f"{r['peak_backward'] / 2**20:.1f} MiB",
            flush=True,
        )


def _times(r: dict) -> dict[str, float]:
    """Measured fwd+bwd seconds per backend at one point."""
    times = {"tensornet": r["fwd_bwd_s"]}
    for name in ("statevector", "mps"):
        if f"{name}_fwd_bwd_s" in r:
            times[name] = r[f"{name}_fwd_bwd_s"]
    return times


def _from(qubits: list[int], wins: list[bool]) -> int | None:
    """The smallest qubit count from which the tensor network wins at every larger point."""
    first = None
    for q, win in zip(qubits, wins, strict=True):
        first = (first or q) if win else None
    return first


def crossover(results: list[dict]) -> list[dict]:
    """Per cell and step count: where the tensor network starts beating the statevector,
    measured (fwd+bwd seconds) and predicted (the quick cost estimates ``backend="auto"``
    ranks by), and how often ``auto`` picked the faster of the backends timed at a point."""
    ok = [r for r in results if "error" not in r]
    rows = []
    for cell, steps in sorted({(r["cell"], r["steps"]) for r in ok}):
        pts = sorted((r for r in ok if (r["cell"], r["steps"]) == (cell, steps)), key=_qubits)
        both = [r for r in pts if "statevector_fwd_bwd_s" in r]
        judged = [r for r in pts if r.get("auto") in _times(r) and len(_times(r)) > 1]
        right = [r for r in judged if _times(r)[r["auto"]] <= min(_times(r).values())]
        rows.append(
            {
                "cell": cell,
                "steps": steps,
                "measured_from": _from(
                    [r["qubits"] for r in both],
                    [r["fwd_bwd_s"] < r["statevector_fwd_bwd_s"] for r in both],
                ),
                "measured_up_to": max((r["qubits"] for r in both), default=None),
                "predicted_from": _from(
                    [r["qubits"] for r in pts], [_predicted_tn_wins(r) for r in pts]
                ),
                "auto_faster": len(right),
                "auto_judged": len(judged),
                "auto_misses": [
                    {"qubits": r["qubits"], "auto": r["auto"], "times": _times(r)}
                    for r in judged
                    if r not in right
                ],
            }
        )
    return rows


def _qubits(r: dict) -> int:
    return r["qubits"]


def _predicted_tn_wins(r: dict) -> bool:
    """Whether the quick estimates that ``backend="auto"`` ranks by put the tensor network
    ahead of the statevector (a backend missing from them does not fit the budget)."""
    flops = r.get("predicted_flops", {})
    if "tensornet" not in flops:
        return False
    return "statevector" not in flops or flops["tensornet"] < flops["statevector"]


def plot_crossover(results: list[dict], out: Path) -> None:
    """Statevector time over tensor-network time vs qubits: measured and predicted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if "error" not in r and r["cell"] != "all"]
    cells = sorted({r["cell"] for r in ok})
    fig, axes = plt.subplots(1, max(len(cells), 1), figsize=(5.5 * max(len(cells), 1), 4))
    axes = np.atleast_1d(axes)
    for ax, cell in zip(axes, cells, strict=False):
        for steps in sorted({r["steps"] for r in ok if r["cell"] == cell}):
            pts = sorted((r for r in ok if (r["cell"], r["steps"]) == (cell, steps)), key=_qubits)
            timed = [r for r in pts if "statevector_fwd_bwd_s" in r]
            line = ax.semilogy(
                [r["qubits"] for r in timed],
                [r["statevector_fwd_bwd_s"] / r["fwd_bwd_s"] for r in timed],
                "o-",
                label=f"T={steps} measured",
            )[0]
            priced = [r for r in pts if {"statevector", "tensornet"} <= set(r["predicted_flops"])]
            ax.semilogy(
                [r["qubits"] for r in priced],
                [
                    r["predicted_flops"]["statevector"] / r["predicted_flops"]["tensornet"]
                    for r in priced
                ],
                "--",
                color=line.get_color(),
                label=f"T={steps} predicted (estimated flops)",
            )
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set(
            xlabel="qubits",
            ylabel="statevector / tensor network",
            title=f"{cell}: above 1 the tensor network is cheaper",
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "contraction_crossover.png", dpi=120)
    plt.close(fig)


def plot(results: list[dict], out: Path) -> None:
    """Predicted flops and measured time against qubits, one line per cell and step count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if "error" not in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for cell in CELLS:
        for steps in sorted({r["steps"] for r in ok}):
            pts = sorted((r["qubits"], r) for r in ok if r["cell"] == cell and r["steps"] == steps)
            if not pts:
                continue
            q = [p[0] for p in pts]
            axes[0].semilogy(q, [p[1]["flops"] for p in pts], "o-", label=f"{cell} T={steps}")
            axes[1].semilogy(
                q, [p[1]["fwd_bwd_s"] for p in pts], "o-", label=f"tn {cell} T={steps}"
            )
            sv = [
                (p[0], p[1]["statevector_fwd_bwd_s"])
                for p in pts
                if "statevector_fwd_bwd_s" in p[1]
            ]
            if sv:
                axes[1].semilogy(*zip(*sv, strict=True), "x--", label=f"sv {cell} T={steps}")
    axes[0].set(xlabel="qubits", ylabel="predicted flops", title="contraction cost")
    axes[1].set(xlabel="qubits", ylabel="fwd+bwd seconds", title="tensornet vs statevector")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "contraction_scaling.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~2 minute subset")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--budget", type=float, default=None, help="seconds for the sweep")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per point")
    parser.add_argument("--mem-cap", type=int, default=8 * 2**30, help="bytes per point")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--point", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        point = json.loads(args.point)
        _cap_memory(int(point["mem_cap"] * 1.5))
        print(json.dumps(run_point(point)))
        return 0
    args.budget = args.budget or (110.0 if args.quick else 3600.0)
    args.timeout = args.timeout or (60.0 if args.quick else 600.0)
    results = sweep(QUICK if args.quick else FULL, args)
    headline(results)
    crossings = crossover(results)
    for c in crossings:
        print(
            f"crossover {c['cell']:7s} T={c['steps']}: tensor network faster from "
            f"n={c['measured_from']} (statevector timed up to n={c['measured_up_to']}), "
            f"predicted from n={c['predicted_from']}; auto picked the faster backend at "
            f"{c['auto_faster']}/{c['auto_judged']} points"
            + (f"; misses: {c['auto_misses']}" if c["auto_misses"] else "")
        )
    args.out.mkdir(parents=True, exist_ok=True)
    data = {"points": results, "crossover": crossings}
    (args.out / "scaling.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    plot(results, args.out)
    plot_crossover(results, args.out)
    print(
        f"wrote {args.out / 'scaling.json'}, {args.out / 'contraction_scaling.png'} and "
        f"{args.out / 'contraction_crossover.png'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

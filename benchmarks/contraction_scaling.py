"""Scaling of the tensor-network backend: predicted cost, planning, run time, memory.

``python -m benchmarks.contraction_scaling [--quick] [--out DIR]`` sweeps local cells (r = 1, 2)
and the all-to-all cell over qubit counts and steps. Each point runs in a fresh subprocess
under a memory cap (``resource.setrlimit``) and a timeout, and records: predicted width,
flops and memory; cold and cached planning time; forward and forward+backward time; the bytes
autograd retains after the forward; peak RSS. Beside it, measured on the same leaves, a
baseline (one global quimb network, cotengra's Python greedy path, plain autograd; not run
where its predicted memory exceeds the cap) and the statevector backend where installed and
small enough. A point that times out keeps what it measured before (``incomplete``). Writes
``scaling.json`` and PNG plots under ``DIR`` (default ``benchmarks/results``).
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
from dataclasses import replace
from pathlib import Path

import numpy as np

from qrnn_tn import jsonio

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
#: Largest register the statevector is timed on (its cost is still predicted beyond).
STATEVECTOR_MAX_QUBITS = 22


def spec_for(cell: str, qubits: int) -> dict:
    """Return the benchmark cell: io 2, one work stage, degree 2, order 2."""
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


def _baseline_optimizer():
    """Return the baseline's path finder: cotengra's pure-Python greedy, as in the prototype.

    quimb's ``"greedy"`` preset means cotengrust's greedy, whose trees on these networks of
    hyperedges are several units wider; a baseline on those would flatter qrnn-tn.
    """
    import cotengra as ctg

    return ctg.GreedyOptimizer(accel=False)


def _baseline_retained_estimate(plan, batch: int) -> int:
    """Return the bytes plain autograd would keep for the baseline.

    That is every intermediate of every step (the loss spans all steps), from the baseline's
    own trees.
    """
    import cotengra as ctg

    from qrnn_tn.backends.tensornet.search import symbols

    total = 0
    for net in plan.batch_plan(batch).networks.networks:
        inputs, output, sizes = symbols(net)
        tree = ctg.array_contract_tree(inputs, output, sizes, optimize=_baseline_optimizer())
        total += int(tree.total_write())
    return total * plan.itemsize


def _baseline(plan, params, words):
    """All steps with one global quimb network each, Python greedy path, plain autograd."""
    import quimb.tensor as qtn
    import torch

    from qrnn_tn.backends.tensornet.search import symbols
    from qrnn_tn.backends.tensornet.values import LeafValues

    batch_plan = plan.batch_plan(words.shape[0])
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
        out = tn.contract(output_inds=output, optimize=_baseline_optimizer())
        flat = out.data.reshape(words.shape[0], -1)
        probs.append(flat / flat.sum(1, keepdim=True))
    return torch.stack(probs, 1)


def _loss(probs, words):
    import torch

    target = probs.gather(2, words[:, 1:, None])
    return -torch.log(target).sum()


def _warm_up() -> None:
    """Run qrnn-tn and the baseline once, tiny and differentiated, to warm them up.

    One-off start-up (autograd, importing quimb) is then not timed.
    """
    import torch

    from compiler.unroll import compile_program
    from qrnn_tn.backends.base import BackendOptions
    from qrnn_tn.backends.tensornet import prepare

    program = compile_program(spec_for("local1", 4), steps=1)
    plan = prepare(program, BackendOptions(backend_options={"cache_dir": None}))
    params = torch.zeros(program.n_params, dtype=torch.float64, requires_grad=True)
    words = torch.zeros(1, 2, dtype=torch.long)
    _loss(plan.run(params, words).probs, words).backward()
    _loss(_baseline(plan, params, words), words).backward()


def run_point(point: dict) -> dict:
    """Measure one (cell, qubits, steps) point; runs inside the capped subprocess."""
    import torch

    from compiler.unroll import compile_program
    from qrnn_tn.backends.base import (
        BackendError,
        BackendOptions,
        choose,
        get_backend,
        rank_backends,
    )
    from qrnn_tn.backends.tensornet import prepare

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
            backend_options={"cache_dir": cache, "search_time": point["search_time"]},
        )
        plan, out["plan_cold_s"] = _timed(lambda: prepare(program, options))
        out["searches"] = plan.paths.searches
        # a new plan starts with an empty memory: only the cache directory is shared
        plan, out["plan_warm_s"] = _timed(lambda: prepare(program, options))
    cost = plan.cost
    out["greedy8_width"] = _best_greedy_width(plan.batch_plan(1).networks.networks[-1])
    out.update(
        width=cost.width,
        flops=cost.flops,
        peak_forward=cost.peak_bytes_forward,
        peak_backward=cost.peak_bytes_backward,
        slices=list(cost.details.slices_per_step),
    )
    with torch.no_grad():
        _, out["forward_s"] = _timed(lambda: plan.run(params, words))

    def fwd_bwd():
        res, retained = _retained_bytes(lambda: plan.run(params, words))
        _loss(res.probs, words).backward()
        return retained

    out["retained_bytes"], out["fwd_bwd_s"] = _timed(fwd_bwd)
    _report(out)
    out["tensornet_peak_rss"] = out["peak_rss"]  # before the baseline and other backends
    if point["baseline"]:
        need = _baseline_retained_estimate(plan, words.shape[0])
        if need > point["mem_cap"]:
            out["baseline_skipped"] = f"would keep {need / 2**30:.1f} GiB for backward"
        else:

            def base():
                probs, retained = _retained_bytes(lambda: _baseline(plan, params, words))
                _loss(probs, words).backward()
                return retained

            out["baseline_retained_bytes"], out["baseline_fwd_bwd_s"] = _timed(base)
            _report(out)
    other_options = BackendOptions(dtype=torch.float64, memory_budget=point["mem_cap"])
    auto_options = replace(other_options, backend_options={"cache_dir": None})
    candidates, _ = rank_backends(program, auto_options)
    out["predicted_flops"] = {c.name: c.cost.flops for c in candidates}
    out["predicted_seconds"] = {c.name: c.cost.predicted_seconds for c in candidates}
    try:
        out["auto"] = choose(program, auto_options)[0].cost.backend
    except BackendError:
        out["auto"] = None
    timed = {"tensornet"} | ({"statevector"} if point["statevector"] else set())
    for name in sorted(({out["auto"]} | timed) - {None, "tensornet"}):
        other = get_backend(name)(program, other_options)

        def other_run(plan=other):
            _loss(plan.run(params, words).probs, words).backward()

        _, out[f"{name}_fwd_bwd_s"] = _timed(other_run)
    return out


def _best_greedy_width(net) -> float:
    """Return the width of the best of 8 randomised greedy trials on ``net``.

    This is the yardstick for the planner's last-step tree.
    """
    import cotengra as ctg

    from qrnn_tn.backends.tensornet.search import symbols

    inputs, output, sizes = symbols(net)
    trials = ctg.RandomGreedyOptimizer(max_repeats=8, seed=0, parallel=False)
    tree = ctg.array_contract_tree(inputs, output, sizes, optimize=trials)
    return float(tree.contraction_width())


def _report(out: dict) -> None:
    """Print the results so far: a point that times out later keeps what it measured."""
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(jsonio.dumps(out), flush=True)


def _child(point: dict, timeout: float) -> dict:
    """Run ``point`` in a fresh interpreter with an address-space cap and a timeout."""
    cmd = [sys.executable, "-m", "benchmarks.contraction_scaling", "--point", json.dumps(point)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as timeout_error:
        partial = _last_report(timeout_error.stdout)
        why = f"timeout after {timeout:.0f} s"
        return {**partial, "incomplete": why} if partial else {**point, "error": why}
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        partial = _last_report(proc.stdout)
        return {**partial, "incomplete": why} if partial else {**point, "error": why}
    return _last_report(proc.stdout)


def _last_report(stdout: str | bytes | None) -> dict | None:
    """Return the last results line a point printed (see :func:`_report`), if any."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode(errors="replace")
    lines = [line for line in (stdout or "").splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def _cap_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _has_statevector() -> bool:
    from qrnn_tn.backends import backend_names

    return "statevector" in backend_names()


def sweep(rows: list[tuple[str, list[int], list[int]]], args) -> list[dict]:
    """Run every point of each ``(cell, qubit counts, step counts)`` row in time order.

    Larger points are skipped after a failure (and the baseline at larger ones after it timed
    out).
    """
    results = []
    deadline = time.monotonic() + args.budget
    for cell, qubit_list, step_list in rows:
        for steps in step_list:
            baseline = steps <= 3 and cell == "local1"
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
                    "baseline": baseline or (steps <= 3 and qubits <= 10),
                    "statevector": _has_statevector() and qubits <= STATEVECTOR_MAX_QUBITS,
                }
                res = _child(point, args.timeout)
                print(jsonio.dumps(res), flush=True)
                results.append(res)
                if "error" in res:
                    break
                if "incomplete" in res and "baseline_fwd_bwd_s" not in res:
                    baseline = False
    return results


def headline(results: list[dict]) -> None:
    """One line per point with a baseline: speed-up and retained-memory ratios."""
    print("headline: tensornet vs baseline (quimb + Python greedy + plain autograd), same leaves")
    for r in results:
        if "baseline_skipped" in r:
            print(
                f"  {r['cell']:7s} n={r['qubits']:<4d} T={r['steps']}  width {r['width']:.0f} "
                f"(best of 8 greedy trials {r['greedy8_width']:.0f})  fwd {r['forward_s']:.2f} "
                f"s  fwd+bwd {r['fwd_bwd_s']:.2f} s; baseline not run: {r['baseline_skipped']}"
            )
        if "error" in r or "baseline_fwd_bwd_s" not in r:
            continue
        speed = r["baseline_fwd_bwd_s"] / r["fwd_bwd_s"]
        memory = r["baseline_retained_bytes"] / max(r["retained_bytes"], 1)
        print(
            f"  {r['cell']:7s} n={r['qubits']:<4d} T={r['steps']}  width {r['width']:.0f} "
            f"(best of 8 greedy trials {r['greedy8_width']:.0f})  fwd {r['forward_s']:.2f} s  "
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
    """Return the smallest qubit count from which the tensor network wins at every larger point."""
    first = None
    for q, win in zip(qubits, wins, strict=True):
        first = (first or q) if win else None
    return first


def crossover(results: list[dict]) -> list[dict]:
    """Return, per cell and step count, where the tensor network beats the statevector.

    The crossover is measured (fwd+bwd seconds) and predicted (the quick cost estimates
    ``backend="auto"`` ranks by), and how often ``auto`` picked the faster of the backends timed at
    a point.
    """
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
    """Whether ``backend="auto"``'s quick estimates put the tensor network ahead.

    The comparison is against the statevector; a backend missing from the estimates does not
    fit the budget.
    """
    seconds = _predicted(r)
    if "tensornet" not in seconds:
        return False
    return "statevector" not in seconds or seconds["tensornet"] < seconds["statevector"]


def _predicted(r: dict) -> dict[str, float]:
    """Seconds per backend by the time models ``backend="auto"`` ranks with."""
    return r.get("predicted_seconds", {})


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
            priced = [r for r in pts if {"statevector", "tensornet"} <= set(_predicted(r))]
            ax.semilogy(
                [r["qubits"] for r in priced],
                [_predicted(r)["statevector"] / _predicted(r)["tensornet"] for r in priced],
                "--",
                color=line.get_color(),
                label=f"T={steps} predicted (estimated time)",
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


def _only_rows(points: list[str], parser: argparse.ArgumentParser) -> list:
    """Sweep rows of the ``--only`` points, one each (so a failure skips no other)."""
    rows = []
    for text in points:
        try:
            cell, qubits, steps = text.split(":")
            rows.append((cell, [int(qubits)], [int(steps)]))
        except ValueError:
            parser.error(f"--only {text!r}: expected CELL:QUBITS:STEPS, e.g. local1:100:3")
        if cell not in CELLS:
            parser.error(f"--only {text!r}: unknown cell {cell!r}; one of {', '.join(CELLS)}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~2 minute subset")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--budget", type=float, default=None, help="seconds for the sweep")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per point")
    parser.add_argument("--mem-cap", type=int, default=8 * 2**30, help="bytes per point")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--only",
        action="append",
        metavar="CELL:QUBITS:STEPS",
        help="run just this point (repeatable), e.g. local1:100:3; cells: " + ", ".join(CELLS),
    )
    parser.add_argument("--point", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        point = json.loads(args.point)
        _cap_memory(int(point["mem_cap"] * 1.5))
        _report(run_point(point))
        return 0
    args.budget = args.budget or (110.0 if args.quick else 3600.0)
    args.timeout = args.timeout or (60.0 if args.quick else 600.0)
    if args.only:
        rows = _only_rows(args.only, parser)
    else:
        rows = [(cell, q, t) for cell, (q, t) in (QUICK if args.quick else FULL).items()]
    results = sweep(rows, args)
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
    (args.out / "scaling.json").write_text(jsonio.dumps(data, indent=1), encoding="utf-8")
    plot(results, args.out)
    plot_crossover(results, args.out)
    print(
        f"wrote {args.out / 'scaling.json'}, {args.out / 'contraction_scaling.png'} and "
        f"{args.out / 'contraction_crossover.png'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scaling out: data-parallel training, and a sliced tensor network on a dask cluster.

``python -m benchmarks.scaling_out [--quick] [--out DIR]`` measures, in one run:

(a) training throughput (sequences per second) of the statevector backend with one process
    and with two data-parallel processes (gloo on 127.0.0.1, :mod:`qrnn_tn.training.distributed`),
    the same global batch and seed, one torch thread per process (SGD, so the final
    parameters of the two runs can be compared to round-off);
(b) a sliced tensor-network contraction (forward, and forward + backward) in one process
    against a ``dask.distributed.LocalCluster`` of 1 and of 2 worker processes (one thread
    each), with the same plan.

Every measurement runs in fresh processes; times are the best of ``repeats``. Ratios are
speed-ups over the first row of each block (above 1: faster). Writes ``scaling_out.json``
(``scaling_out_quick.json`` with ``--quick``) under ``DIR`` (default
``benchmarks/results/scaling_out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import queue as queue_module
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

from qrnn_tn import jsonio

PROFILES = {
    "quick": {
        "training": {"workspace": 9, "length": 24, "batch": 32, "steps": 12, "warmup": 2},
        "contraction": {
            "lanes": 16,
            "radius": 2,
            "steps": 2,
            "batch": 16,
            "budget": 2**26,
            "repeats": 2,
        },
    },
    "full": {
        "training": {"workspace": 9, "length": 24, "batch": 32, "steps": 40, "warmup": 3},
        "contraction": {
            "lanes": 16,
            "radius": 2,
            "steps": 2,
            "batch": 16,
            "budget": 2**26,
            "repeats": 5,
        },
    },
}
#: Seconds a training rank or the contraction child may take before it is reported hung.
CHILD_TIMEOUT = 600.0


# --------------------------------------------------------------------------- (a) training


def training_spec(workspace: int) -> dict:
    """Return the DNA-task cell (io 3), all-to-all neurons of degree 2 and order 2."""
    return {
        "cell": {"io": 3, "workspace": workspace, "stages": 1},
        "neuron": {"degree": 2, "order": 2},
    }


def _train_once(cfg: dict, out: str) -> dict:
    """Train for ``cfg['steps']``; rank 0 returns throughput from its metrics, and theta."""
    from qrnn_tn.data import dna
    from qrnn_tn.model import QRNN
    from qrnn_tn.training import TrainConfig, distributed, read_metrics, train

    data = dna(cfg["length"], n_sequences=4 * cfg["batch"], seed=0)
    model = QRNN(training_spec(cfg["workspace"]), backend="statevector", seed=0)
    config = TrainConfig(
        task="dna",
        optimiser="sgd",  # Adam would turn round-off in near-zero gradients into full steps
        lr=0.01,
        batch_size=cfg["batch"],
        steps=cfg["steps"],
        eval_every=cfg["steps"],
        backend="statevector",
        dtype="float64",
        out=out,
    )
    train(model, data, None, config, progress=False)
    if not distributed.is_main():
        return {}
    seconds = [r["seconds"] for r in read_metrics(out) if r["split"] == "train"]
    timed = len(seconds) - cfg["warmup"]
    window = seconds[-1] - seconds[cfg["warmup"] - 1]
    return {
        "seq_per_s": cfg["batch"] * timed / window,
        "s_per_step": window / timed,
        "timed_steps": timed,
        "theta": model.theta.detach().tolist(),
    }


def _train_rank(rank: int, world: int, port: int, cfg: dict, out: str, results) -> None:
    """One spawned process: join the gloo group (when ``world`` > 1) and train."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    try:
        if world == 1:
            row = _train_once(cfg, out)
        else:
            from qrnn_tn.training import distributed

            with distributed.session(backend="gloo", timeout=CHILD_TIMEOUT):
                row = _train_once(cfg, out)
        results.put((rank, "ok", row))
    except Exception as err:
        results.put((rank, "error", f"{type(err).__name__}: {err}"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_training(cfg: dict, world: int) -> dict:
    """Spawn ``world`` fresh one-thread processes; rank 0's throughput."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    with tempfile.TemporaryDirectory() as out:
        procs = [
            ctx.Process(target=_train_rank, args=(r, world, port, cfg, out, results))
            for r in range(world)
        ]
        for p in procs:
            p.start()
        got: dict[int, tuple] = {}
        try:
            while len(got) < world:
                rank, *rest = results.get(timeout=CHILD_TIMEOUT)
                got[rank] = tuple(rest)
        except queue_module.Empty:
            got[-1] = ("error", f"ranks {sorted(set(range(world)) - set(got))} hung")
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
                    p.join()
    errors = [msg for status, msg in got.values() if status != "ok"]
    row = {"processes": world, "threads": 1}
    return {**row, "error": "; ".join(errors)} if errors else {**row, **got[0][1]}


def run_training(cfg: dict) -> list[dict]:
    """One process, then two; each row with its largest parameter difference from the first."""
    rows = [measure_training(cfg, 1), measure_training(cfg, 2)]
    if all("theta" in r for r in rows):
        base = np.array(rows[0]["theta"])
        for row in rows:
            row["max_theta_diff"] = float(np.abs(np.array(row["theta"]) - base).max())
    for row in rows:
        row.pop("theta", None)
    return rows


# --------------------------------------------------------------------------- (b) contraction


def contraction_spec(lanes: int, radius: int) -> dict:
    """Return a local cell (io 2) whose two-step readout network slices into several pieces."""
    return {
        "cell": {"io": 2, "workspace": lanes - 2, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": radius}},
    }


def _loss(result) -> torch.Tensor:
    return -torch.log(result.target_prob).sum()


def _time_plan(plan, params, words, executor, repeats: int) -> dict:
    """Best-of-``repeats`` forward and forward+backward seconds, with the outputs."""
    forward, both = [], []
    for _ in range(repeats):
        with torch.no_grad():
            start = time.perf_counter()
            probs = plan.run(params, words, executor=executor).probs
            forward.append(time.perf_counter() - start)
        theta = params.clone().requires_grad_(True)
        start = time.perf_counter()
        _loss(plan.run(theta, words, executor=executor)).backward()
        both.append(time.perf_counter() - start)
    return {
        "load_average": os.getloadavg()[0],
        "forward_s": min(forward),
        "fwd_bwd_s": min(both),
        "forward_all_s": forward,
        "fwd_bwd_all_s": both,
        "probs": probs,
        "grad": theta.grad,
    }


def _on_cluster(plan, params, words, workers: int, repeats: int) -> dict:
    """Time ``plan`` on a fresh LocalCluster of ``workers`` one-thread processes."""
    import logging

    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        threads = sorted(client.run(torch.get_num_threads).values())
        with torch.no_grad():  # workers import torch and qrnn_tn on their first task
            plan.run(params, words, executor=client)
        row = _time_plan(plan, params, words, client, repeats)
    return {"where": f"dask, {workers} worker(s)", "torch_threads": threads, **row}


def run_contraction(cfg: dict) -> dict:
    """Prepare one sliced plan and time it here and on clusters of 1 and 2 workers."""
    from compiler.unroll import compile_program
    from qrnn_tn.backends.base import BackendOptions
    from qrnn_tn.backends.tensornet import prepare

    torch.set_num_threads(1)
    program = compile_program(contraction_spec(cfg["lanes"], cfg["radius"]), steps=cfg["steps"])
    rng = np.random.default_rng(0)
    params = torch.tensor(rng.normal(0.0, 1.0, program.n_params))
    words = torch.as_tensor(rng.integers(0, 2**program.io, (cfg["batch"], program.n_tokens)))
    with tempfile.TemporaryDirectory() as cache:
        extra = {"cache_dir": cache, "search_time": 1.0}
        options = BackendOptions(
            batch_size=cfg["batch"], memory_budget=cfg["budget"], backend_options=extra
        )
        plan = prepare(program, options)
    cost = plan.cost
    with torch.no_grad():  # one untimed run, as the workers get
        plan.run(params, words)
    local = {
        "where": "this process, 1 thread",
        **_time_plan(plan, params, words, None, cfg["repeats"]),
    }
    rows = [local] + [_on_cluster(plan, params, words, n, cfg["repeats"]) for n in (1, 2)]
    probs, grad = local["probs"], local["grad"]
    for row in rows:
        row["max_prob_diff"] = float((row.pop("probs") - probs).abs().max())
        row["max_grad_diff"] = float((row.pop("grad") - grad).abs().max())
    return {
        "slices_per_step": list(cost.details.slices_per_step),
        "widths_per_step": list(cost.details.widths_per_step),
        "flops": cost.flops,
        "rows": rows,
    }


def _contraction_child(cfg: dict) -> dict:
    """:func:`run_contraction` in a fresh interpreter (its JSON is the last stdout line)."""
    cmd = [sys.executable, "-m", "benchmarks.scaling_out", "--contraction", json.dumps(cfg)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {CHILD_TIMEOUT:.0f} s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def table(result: dict) -> str:
    """Return the printed summary: one block per part, ratios against the block's first row."""
    train_cfg, tn_cfg = result["config"]["training"], result["config"]["contraction"]
    lines = [
        f"scaling out on {result['cpu_count']} CPU core(s); load average "
        f"{result['load_before'][0]:.1f} before, {result['load_after'][0]:.1f} after",
        f"(a) training, statevector, io 3 + {train_cfg['workspace']} lanes, "
        f"{train_cfg['length']}-token DNA sequences, global batch {train_cfg['batch']}, "
        f"{train_cfg['steps'] - train_cfg['warmup']} timed steps",
    ]
    rows = result["training"]
    base = rows[0].get("seq_per_s")
    for row in rows:
        where = f"  {row['processes']} process{'es' if row['processes'] > 1 else ''}, 1 thread each"
        if "error" in row:
            lines.append(f"{where:34s} error: {row['error']}")
            continue
        ratio = row["seq_per_s"] / base if base else float("nan")
        lines.append(
            f"{where:34s} {row['seq_per_s']:7.1f} seq/s  x{ratio:.2f}  "
            f"(max |theta - theta_1 process| {row.get('max_theta_diff', float('nan')):.1e})"
        )
    tn = result["contraction"]
    lines.append(
        f"(b) sliced contraction, local r={tn_cfg['radius']} cell, {tn_cfg['lanes']} lanes, "
        f"{tn_cfg['steps']} steps, batch {tn_cfg['batch']}"
        + (f", slices per step {tn['slices_per_step']}" if "error" not in tn else "")
    )
    if "error" in tn:
        return "\n".join([*lines, f"  error: {tn['error']}"]) + "\n"
    first = tn["rows"][0]
    lines.append(f"  {'':32s} {'forward':>9s}  {'ratio':>6s}  {'fwd+bwd':>9s}  {'ratio':>6s}")
    for row in tn["rows"]:
        lines.append(
            f"  {row['where']:32s} {row['forward_s']:8.2f}s  "
            f"x{first['forward_s'] / row['forward_s']:5.2f}  {row['fwd_bwd_s']:8.2f}s  "
            f"x{first['fwd_bwd_s'] / row['fwd_bwd_s']:5.2f}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the ~2 minute profile")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scaling_out"))
    parser.add_argument("--contraction", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.contraction:
        print(jsonio.dumps(run_contraction(json.loads(args.contraction))))
        return 0
    from qrnn_tn.training import atomic_write

    profile = "quick" if args.quick else "full"
    config = PROFILES[profile]
    started = time.perf_counter()
    result = {
        "profile": profile,
        "command": "python -m benchmarks.scaling_out" + (" --quick" if args.quick else ""),
        "cpu_count": os.cpu_count(),
        "load_before": list(os.getloadavg()),
        "config": config,
    }
    result["training"] = run_training(config["training"])
    result["training_s"] = time.perf_counter() - started
    result["contraction"] = _contraction_child(config["contraction"])
    result["contraction_s"] = time.perf_counter() - started - result["training_s"]
    result["load_after"] = list(os.getloadavg())
    result["seconds"] = time.perf_counter() - started
    sys.stdout.write(table(result))
    path = args.out / f"scaling_out{'_quick' if args.quick else ''}.json"
    text = jsonio.dumps(result, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")
    print(f"wrote {path} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

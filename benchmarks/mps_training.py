"""Benchmark of MPS training steps: this checkout against another commit, and thread counts.

The case is the 64-lane digits cell (``examples/digits_pixel_64_lanes.toml``, task
``digits-pixel`` at ``size=5``: 25 steps per sequence, as docs/reproducing.md trains it) at
bond cap 16, batch 32, Adam lr 0.005, from the task's default (the paper's) initialisation.
One *optimiser step* is the training loop's step: forward, backward, clipping, update.

``python -m benchmarks.mps_training --parts train_step --base DIR [--steps 25]``
    runs this checkout and the checkout at ``DIR`` (e.g. ``git worktree add DIR 4c07ade``)
    each in its own worker process with its own ``PYTHONPATH``; both workers live side by
    side and take turns, one optimiser step at a time in the order ABBA, so a noisy machine
    loads both alike. Prints the mean seconds per step of each and their ratio, with the
    caller's thread setting (``--threads``: a number sets ``OMP_NUM_THREADS`` for both;
    ``default`` leaves each version to its own choice).
``python -m benchmarks.mps_training --parts threads [--steps 4] [--size 3]``
    this checkout with the MPS ``threads`` option automatic, 1 and 2, under the caller's
    default torch setting, on the idle machine and beside a busy process (a numpy matmul
    loop on one core that the benchmark starts and stops), interleaved step by step.

``python -m benchmarks.mps_training --parts wide [--steps 6] [--bond 8] [--batches 16,64,128]``
    the 100-qubit cell (``examples/wide_local.toml``, the MNIST flagship's) on random pixel
    words: CPU seconds per sequence step of the forward and of the backward (without
    checkpoints, one thread) at each batch size, each measured twice in turn, with the
    largest discarded weight. A 101-step optimiser step costs about 101 times that.

``python -m benchmarks.mps_training --parts profile [--size 3]``
    where one optimiser step of this checkout spends its time: the forward, the backward
    (which recomputes each step's forward from its checkpoint) and the eight costliest
    torch operators by self time, under the caller's thread setting.

Results go to ``DIR/mps_training.json`` (``--out``, default ``benchmarks/results/``). The
workers are this file run as a script (``--worker``), so the other checkout needs none of
it; they use only the training API both versions share.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
CELL = ROOT / "examples" / "digits_pixel_64_lanes.toml"
WIDE_CELL = ROOT / "examples" / "wide_local.toml"

#: numpy matmul loop on one core: the busy neighbour of the "loaded" runs.
LOADER = (
    "import numpy as np\n"
    "a = np.random.default_rng(0).random((400, 400))\n"
    "while True:\n"
    "    a = a @ a\n"
    "    a /= np.abs(a).max()\n"
)


def _training_api() -> SimpleNamespace:
    """Return the four training functions the worker calls, from the checkout on ``sys.path``.

    Checkouts before the ``qrnn_tn.training`` package (such as the ``4c07ade`` baseline) had
    them, under private names, in ``qrnn_tn.train``.
    """
    try:
        from qrnn_tn import training
    except ImportError:
        from qrnn_tn import train as old

        return SimpleNamespace(
            build_model=old.build_model,
            make_optimiser=old._make_optimiser,
            batch_at=old._batch,
            train_step=lambda model, opt, batch, config: old._train_step(
                model, opt, *batch, config
            ),
        )
    return SimpleNamespace(
        build_model=training.build_model,
        make_optimiser=training.make_optimiser,
        batch_at=training.batch_at,
        train_step=training.train_step,
    )


def worker(size: int, backend_options: dict, seed: int) -> None:
    """Build the model and answer ``step i`` lines with one optimiser step each (JSON)."""
    import torch

    from compiler.spec import load_spec
    from qrnn_tn import tasks

    training = _training_api()

    spec = load_spec(CELL)
    data = tasks.build_datasets("digits-pixel", seed=seed, size=size)
    config = tasks.default_config(
        "digits-pixel",
        backend="mps",
        backend_options={"max_bond": 16, **backend_options},
        batch_size=32,
        lr=0.005,
        seed=seed,
    )
    model = training.build_model(spec, config)
    optimiser = training.make_optimiser(config, model)
    print(json.dumps({"ready": True, "torch_threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "quit":
            return
        step = int(command[1])
        batch = training.batch_at(data.train, config.batch_size, seed, step)
        start, cpu = time.perf_counter(), time.process_time()
        seen = training.train_step(model, optimiser, batch, config)
        out = {
            "step": step,
            "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu,
            "loss": seen["loss"],
            "grad_norm": seen["grad_norm"],
        }
        print(json.dumps(out), flush=True)


class Worker:
    """A worker process on the checkout at ``root``."""

    def __init__(self, root: Path, size: int, env: dict, options: dict, seed: int) -> None:
        env = os.environ | env | {"PYTHONPATH": str(root)}
        command = [sys.executable, __file__, "--worker", "--size", str(size)]
        command += ["--seed", str(seed), "--backend-options", json.dumps(options)]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.info = self._read()
        self.rows: list[dict] = []

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with {self.proc.wait()}")
        return json.loads(line)

    def step(self, step: int) -> dict:
        """Run optimiser step ``step`` in the worker; return its record."""
        self.proc.stdin.write(f"step {step}\n")
        self.proc.stdin.flush()
        row = self._read()
        self.rows.append(row)
        return row

    def close(self) -> None:
        """Stop the worker."""
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait()

    def mean(self, key: str = "seconds") -> float:
        """Return the mean of ``key`` over the steps run."""
        return sum(r[key] for r in self.rows) / len(self.rows)


def _interleaved(workers: dict[str, Worker], steps: int, label: str) -> None:
    names = list(workers)
    for step in range(steps):
        order = names if step % 2 == 0 else names[::-1]  # ABBA…: fair to a drifting load
        for name in order:
            row = workers[name].step(step)
            print(f"{label} step {step:2d} {name:>10}: {row['seconds']:7.2f} s", flush=True)


def _thread_env(threads: str) -> dict:
    return {} if threads == "default" else {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def train_step(base: Path, steps: int, size: int, threads: str) -> dict:
    """Mean seconds per optimiser step of this checkout and of ``base``, interleaved."""
    env = _thread_env(threads)
    workers = {
        "base": Worker(base, size, env, {}, 0),
        "this": Worker(ROOT, size, env, {}, 0),
    }
    try:
        _interleaved(workers, steps, "train_step")
    finally:
        for w in workers.values():
            w.close()
    out = {name: {"rows": w.rows, "mean_seconds": w.mean()} for name, w in workers.items()}
    for name, w in workers.items():
        out[name]["mean_cpu_seconds"] = w.mean("cpu_seconds")
        out[name]["torch_threads"] = w.info["torch_threads"]
    same = all(
        abs(a["loss"] - b["loss"]) <= 1e-6 * max(1.0, abs(a["loss"]))
        for a, b in zip(workers["base"].rows, workers["this"].rows, strict=True)
    )
    return out | {
        "base_dir": str(base),
        "steps": steps,
        "size": size,
        "threads": threads,
        "ratio": out["base"]["mean_seconds"] / out["this"]["mean_seconds"],
        "same_losses": same,
    }


def threads_study(steps: int, size: int) -> dict:
    """Time optimiser steps with the ``threads`` option automatic, 1 and 2.

    Idle and beside a busy one-core process; the caller's torch setting is left at its
    default.
    """
    settings = {"auto": {}, "1": {"threads": 1}, "2": {"threads": 2}}
    out = {}
    for load in ("idle", "loaded"):
        workers = {name: Worker(ROOT, size, {}, opts, 0) for name, opts in settings.items()}
        loader = None
        if load == "loaded":
            one = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            loader = subprocess.Popen([sys.executable, "-c", LOADER], env=os.environ | one)
        try:
            _interleaved(workers, steps, f"threads/{load}")
        finally:
            if loader is not None:
                loader.kill()
                loader.wait()
            for w in workers.values():
                w.close()
        means = {name: w.mean() for name, w in workers.items()}
        best = min(means["1"], means["2"])
        out[load] = {"mean_seconds": means, "auto_over_best": means["auto"] / best}
    return {"steps": steps, "size": size} | out


def wide_batches(steps: int, bond: int, batches: list[int]) -> dict:
    """CPU seconds per sequence step of the 100-qubit cell's forward and backward by batch."""
    import torch

    from qrnn_tn.model import QRNN

    torch.set_num_threads(1)
    model = QRNN(
        WIDE_CELL,
        backend="mps",
        seed=0,
        backend_options={"max_bond": bond, "checkpoint_steps": 0, "threads": 1},
    )
    generator = torch.Generator().manual_seed(0)
    rows = []
    for batch in batches * 2:  # each size twice, in turn
        words = torch.randint(0, 2**model.io, (batch, steps + 1), generator=generator)
        model.zero_grad()
        start = time.process_time()
        result = model.run(words)
        forward = time.process_time() - start
        result.target_prob.log().sum().backward()
        backward = time.process_time() - start - forward
        rows.append(
            {
                "batch": batch,
                "forward_cpu_s_per_step": forward / steps,
                "backward_cpu_s_per_step": backward / steps,
                "max_discarded": float(result.discarded.max()),
            }
        )
    return {"steps": steps, "max_bond": bond, "rows": rows}


def profile_step(size: int) -> dict:
    """Seconds of one optimiser step's forward and backward, and its costliest operators."""
    from torch.profiler import ProfilerActivity, profile

    from compiler.spec import load_spec
    from qrnn_tn import tasks, training

    spec = load_spec(CELL)
    data = tasks.build_datasets("digits-pixel", seed=0, size=size)
    config = tasks.default_config(
        "digits-pixel", backend="mps", backend_options={"max_bond": 16}, batch_size=32
    )
    model = training.build_model(spec, config)
    words, _, targets = training.batch_at(data.train, 32, 0, 0)
    start = time.process_time()
    result = model.run(words, targets=targets)
    forward = time.process_time() - start
    result.target_prob.log().sum().backward()
    backward = time.process_time() - start - forward
    model.zero_grad()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.run(words, targets=targets).target_prob.log().sum().backward()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    ops = [
        {"op": e.key, "calls": e.count, "share": e.self_cpu_time_total / total} for e in events[:8]
    ]
    return {"size": size, "forward_cpu_s": forward, "backward_cpu_s": backward, "ops": ops}


def main() -> None:
    """Run the chosen parts from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="train_step,threads")
    parser.add_argument("--base", type=Path, help="checkout to compare with (train_step)")
    parser.add_argument("--steps", type=int, help="optimiser steps (25 train_step, 4 threads)")
    parser.add_argument("--size", type=int, help="digits downscaled to size² steps (5; 3)")
    parser.add_argument("--threads", default="default", help="caller's threads: N or default")
    parser.add_argument("--bond", type=int, default=8, help="bond cap of the wide part")
    parser.add_argument("--batches", default="16,64,128", help="batch sizes of the wide part")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--backend-options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.size, json.loads(args.backend_options), args.seed)
        return
    chosen = args.parts.split(",")
    unknown = sorted(set(chosen) - {"train_step", "threads", "wide", "profile"})
    if unknown:
        choices = "train_step, threads, wide, profile"
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose {choices}")
    if "train_step" in chosen and args.base is None:
        parser.error("train_step needs --base DIR, a checkout of the commit to compare with")
    results: dict = {}
    if "train_step" in chosen:
        row = train_step(args.base, args.steps or 25, args.size or 5, args.threads)
        results["train_step"] = row
        print(
            f"train step (64 lanes, bond 16, batch 32, {row['steps']} steps, threads "
            f"{row['threads']}): base {row['base']['mean_seconds']:.2f} s, this "
            f"{row['this']['mean_seconds']:.2f} s per step, ratio {row['ratio']:.2f}x"
            f" (cpu {row['base']['mean_cpu_seconds']:.2f} s vs "
            f"{row['this']['mean_cpu_seconds']:.2f} s); same losses: {row['same_losses']}"
        )
    if "threads" in chosen:
        row = threads_study(args.steps or 4, args.size or 3)
        results["threads"] = row
        for load in ("idle", "loaded"):
            means = row[load]["mean_seconds"]
            print(
                f"threads {load}: auto {means['auto']:.2f} s, 1 thread {means['1']:.2f} s, "
                f"2 threads {means['2']:.2f} s; auto / best {row[load]['auto_over_best']:.2f}"
            )
    if "wide" in chosen:
        batches = [int(b) for b in args.batches.split(",")]
        row = wide_batches(args.steps or 6, args.bond, batches)
        results["wide"] = row
        for r in row["rows"]:
            print(
                f"wide (100 qubits, bond {row['max_bond']}, {row['steps']} steps) batch "
                f"{r['batch']:4d}: forward {r['forward_cpu_s_per_step']:.3f} s, backward "
                f"{r['backward_cpu_s_per_step']:.3f} s CPU per sequence step; discarded "
                f"{r['max_discarded']:.1e}"
            )
    if "profile" in chosen:
        row = profile_step(args.size or 3)
        results["profile"] = row
        print(
            f"profile ({row['size'] ** 2} steps per sequence): forward "
            f"{row['forward_cpu_s']:.2f} s, backward {row['backward_cpu_s']:.2f} s cpu; "
            + ", ".join(f"{o['op']} {o['share']:.0%} ({o['calls']} calls)" for o in row["ops"])
        )
    from qrnn_tn import jsonio

    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / "mps_training.json.tmp"
    tmp.write_text(jsonio.dumps(results, indent=2))
    tmp.replace(args.out / "mps_training.json")


if __name__ == "__main__":
    main()

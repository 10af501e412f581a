"""Benchmark of this checkout against another: the three points a refactor must not slow down.

``python -m benchmarks.compare_checkouts --base DIR [--rounds 3]``

``DIR`` is a checkout of the commit to compare with (e.g. ``git worktree add DIR REV``). Each
point runs in a fresh process per measurement, on one thread, with ``PYTHONPATH`` choosing
the checkout; the two checkouts alternate in the order ABBA round after round, so a drifting
load falls on both alike. The workers use only API that both layouts share, so the other
checkout needs none of this file.

- ``statevector``: the pixel-MNIST point of :mod:`benchmarks.statevector` (the paper's
  10-qubit cell, 101 steps, batch 50), forward + backward seconds;
- ``tensornet``: ``local = 1``, n = 100, 2 steps (a point of
  :mod:`benchmarks.contraction_scaling`), the plan prepared twice (cold, then again in the
  same process) and the best of 5 forward + backward runs of its tree;
- ``mps``: 100 lanes, ``local = 1``, 6 steps, bond 32, batch 32 from the paper's
  initialisation, the best of 3 forwards.

Prints the median of each measure per checkout and their ratio (base / this: above 1 means
this checkout is faster); results go to ``DIR/compare_checkouts.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STATEVECTOR_POINT = {
    "group": "mnist",
    "spec": {
        "cell": {"io": 2, "workspace": 8, "stages": 2},
        "neuron": {"degree": 2, "order": 2, "topology": "all"},
    },
    "steps": 101,
    "batch": 50,
    "impl": "statevector",
    "repeats": 3,
}

TENSORNET = """
import json, tempfile, time
import numpy as np, torch
from compiler.unroll import compile_program
from qrnn_tn.backends.base import BackendOptions
from qrnn_tn.backends.tensornet import prepare
spec = {"cell": {"io": 2, "workspace": 98, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}}}
program = compile_program(spec, steps=2)
rng = np.random.default_rng(0)
params = torch.tensor(rng.normal(0, 0.1, program.n_params), requires_grad=True)
words = torch.tensor(rng.integers(0, 4, size=(1, 3)))
with tempfile.TemporaryDirectory() as cache:
    options = BackendOptions(backend_options={"cache_dir": cache, "search_time": 5.0})
    start = time.perf_counter(); plan = prepare(program, options)
    cold = time.perf_counter() - start
    start = time.perf_counter(); plan = prepare(program, options)
    again = time.perf_counter() - start
best = float("inf")
for _ in range(5):
    start = time.perf_counter()
    (-plan.run(params, words).target_prob.log().sum()).backward()
    best = min(best, time.perf_counter() - start)
print(json.dumps({"plan_cold_s": cold, "plan_again_s": again, "fwd_bwd_s": best,
                  "width": plan.cost.width}))
"""

MPS = """
import json, time
import torch
from compiler.unroll import compile_program
from qrnn_tn.backends.base import BackendOptions
from qrnn_tn.backends.mps import prepare
from qrnn_tn.simulation import init_params
spec = {"cell": {"io": 2, "workspace": 98, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}}}
program = compile_program(spec, steps=6)
params = init_params(program, program.spec, torch.Generator().manual_seed(0)).double()
words = torch.randint(0, 4, (32, 7), generator=torch.Generator().manual_seed(0))
plan = prepare(program, BackendOptions(batch_size=32, backend_options={"max_bond": 32}))
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    with torch.no_grad():
        plan.run(params, words)
    best = min(best, time.perf_counter() - start)
print(json.dumps({"forward_s": best}))
"""


def _measure(root: Path, point: str) -> dict:
    """Run ``point`` once in a fresh process on the checkout at ``root``."""
    env = os.environ | {"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if point == "statevector":
        command = [sys.executable, "-m", "benchmarks.statevector", "--threads", "1"]
        command += ["--child", json.dumps(STATEVECTOR_POINT)]
    else:
        command = [sys.executable, "-c", TENSORNET if point == "tensornet" else MPS]
    out = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{point} on {root} failed:\n{out.stderr[-2000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    if point == "statevector":
        row = {"fwd_s": row["fwd_s"], "fwd_bwd_s": row["fwd_bwd_s"]}
    return row


def compare(base: Path, rounds: int) -> dict:
    """Medians of every measure per checkout, alternating ABBA, and their ratios."""
    trees = {"base": base.resolve(), "this": ROOT}
    rows: dict[str, dict[str, list[dict]]] = {name: {} for name in trees}
    for point in ("statevector", "tensornet", "mps"):
        for r in range(rounds):
            order = ["base", "this"] if r % 2 == 0 else ["this", "base"]
            for name in order:
                row = _measure(trees[name], point)
                rows[name].setdefault(point, []).append(row)
                print(f"{point:11s} round {r} {name:4s}: {row}", flush=True)
    medians = {
        name: {
            point: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            for point, runs in by_point.items()
        }
        for name, by_point in rows.items()
    }
    ratios = {
        point: {
            key: medians["base"][point][key] / medians["this"][point][key]
            for key in medians["this"][point]
            if key != "width"
        }
        for point in medians["this"]
    }
    return {
        "base": str(trees["base"]),
        "rounds": rounds,
        "rows": rows,
        "medians": medians,
        "ratios": ratios,
    }


def main() -> None:
    """Run the comparison from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per checkout")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if not (args.base / "qrnn_tn").is_dir():
        parser.error(f"--base {args.base}: not a qrnn-tn checkout (no qrnn_tn/ there)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    result = compare(args.base, args.rounds)
    for point, by_key in result["ratios"].items():
        for key, ratio in by_key.items():
            base = result["medians"]["base"][point][key]
            this = result["medians"]["this"][point][key]
            print(
                f"{point:11s} {key:13s} base {base:8.3f}  this {this:8.3f}  base/this {ratio:.2f}"
            )
    from qrnn_tn import jsonio

    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / "compare_checkouts.json.tmp"
    tmp.write_text(jsonio.dumps(result, indent=2))
    tmp.replace(args.out / "compare_checkouts.json")


if __name__ == "__main__":
    main()

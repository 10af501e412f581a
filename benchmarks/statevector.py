"""Statevector backend: time and peak memory against a plain-autograd baseline.

``python -m benchmarks.statevector [--quick] [--out DIR] [--threads N]``

Every point runs in a fresh subprocess (one torch thread unless ``--threads``: on a shared
two-core machine, intra-op threads mostly measure the neighbours), which reports its times
(best of a few repeats) and its peak resident memory (``resource.getrusage``) after the forward
runs and after the forward + backward runs. Points:

- ``qubits``: all-to-all cells (io 2, stages 1, degree 2, order 2), workspace 4 and up, 10
  steps, batch 1 and 50;
- ``length``: the DNA cell (io 3, workspace 5, stages 1, degree 3, order 2), 10 … 1000 steps,
  batch 1 and 50;
- ``mnist``: the pixel-MNIST cell (io 2, workspace 8, stages 2, degree 2, order 2), 101 steps,
  batch 50, float32 — the target: fwd+bwd >= 10x faster than the baseline, <= 1 GB;
- ``wide``: a 10-step all-to-all cell at 26 qubits, batch 1: predicted by ``Plan.cost`` only.

The baseline (:func:`baseline_run`) is the straightforward implementation: per operation, torch
ops on the full state (η over every basis state from the monomials, the partner amplitudes by
indexing, renormalisation after every neuron), differentiated by plain autograd, which keeps
every intermediate. It runs side by side with the backend at every point it fits.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from compiler.gates import neuron_branch_amplitudes
from compiler.unroll import Program, compile_program
from qrnn_tn import jsonio
from qrnn_tn.backends import BackendOptions, get_backend
from qrnn_tn.model import init_params

RESULTS = Path(__file__).resolve().parent / "results"
DTYPE = torch.float32
IMPLS = ("statevector", "baseline")


def _cell(io: int, workspace: int, stages: int, degree: int, order: int = 2) -> dict[str, Any]:
    return {
        "cell": {"io": io, "workspace": workspace, "stages": stages},
        "neuron": {"degree": degree, "order": order, "topology": "all"},
    }


def all_to_all(workspace: int) -> dict[str, Any]:
    """Return the qubit-sweep cell: io 2, stages 1, degree 2, order 2."""
    return _cell(2, workspace, 1, 2)


DNA = _cell(3, 5, 1, 3)
MNIST = _cell(2, 8, 2, 2)


# ----------------------------------------------------------------------------- baseline


def baseline_run(program: Program, params: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """Per-step distributions ``[batch, steps, 2^io]``, the straightforward way.

    The state is ``[batch, 2^n]``; each operation is a few torch ops on all of it, and autograd
    keeps every intermediate for the backward pass.
    """
    n = program.dag.n_qubits
    index = torch.arange(2**n)
    bits = (index[:, None] >> (n - 1 - torch.arange(n))) & 1
    psi = torch.zeros(words.shape[0], 2**n, dtype=params.dtype)
    psi[:, 0] = 1
    monomials: dict[Any, torch.Tensor] = {}
    probs = []
    for op in program.ops:
        if op.kind == "neuron":
            if op not in monomials:
                columns = [bits[:, list(s)].prod(1) for s in op.subsets]
                monomials[op] = torch.stack(columns, 1).to(params.dtype)
            eta = (op.offset + monomials[op] @ params[list(op.slots)]) / 2
            c, s = neuron_branch_amplitudes(eta, op.order)
            psi = _rotate(psi, c, s, op.target, n, bits)
            psi = psi / psi.norm(dim=1, keepdim=True)
        elif op.kind == "gate" and op.name != "x":
            angle = op.angle.const + sum(coef * params[slot] for slot, coef in op.angle.terms)
            half = torch.as_tensor(angle, dtype=params.dtype) / 2
            active = bits[:, list(op.qubits[:-1])].prod(1).bool()
            rotated = _rotate(psi, half.cos(), half.sin(), op.qubits[-1], n, bits)
            psi = torch.where(active, rotated, psi)
        elif op.kind in ("gate", "wordx"):
            flipped = psi[:, index ^ (1 << (n - 1 - op.qubits[0]))]
            if op.kind == "gate":
                psi = flipped
            else:
                bit = (words[:, op.bit.token] >> (program.io - 1 - op.bit.bit)) & 1
                psi = torch.where(bit.bool()[:, None], flipped, psi)
        elif op.kind == "readout":
            p = torch.zeros(psi.shape[0], 2 ** len(op.qubits), dtype=params.dtype)
            p = p.index_add(1, _word(bits, op.qubits), psi * psi)
            probs.append(p / p.sum(1, keepdim=True))
        elif op.kind == "project":
            psi = psi * (_word(bits, op.qubits)[None, :] == words[:, op.token, None])
            psi = psi / psi.norm(dim=1, keepdim=True)
        else:
            raise ValueError(f"the baseline does not simulate {op}")
    return torch.stack(probs, 1)


def _rotate(psi, c, s, target: int, n: int, bits) -> torch.Tensor:
    """``[[c, -s], [s, c]]`` on ``target``, ``c``/``s`` per basis state (or scalars)."""
    partner = torch.arange(2**n) ^ (1 << (n - 1 - target))
    sign = bits[:, target].to(psi.dtype) * 2 - 1
    return c * psi + sign * s * psi[:, partner]


def _word(bits: torch.Tensor, qubits: tuple[int, ...]) -> torch.Tensor:
    weights = 2 ** torch.arange(len(qubits) - 1, -1, -1)
    return (bits[:, list(qubits)] * weights).sum(1)


# ----------------------------------------------------------------------------- one point


@dataclass(frozen=True)
class Point:
    """One measurement: a cell, a length, a batch and an implementation."""

    group: str
    spec: dict
    steps: int
    batch: int
    impl: str
    repeats: int = 3

    @property
    def qubits(self) -> int:
        """Qubits of the cell: the i/o lanes plus the workspace."""
        return self.spec["cell"]["io"] + self.spec["cell"]["workspace"]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> float:
    """Reset the peak RSS to the current RSS (Linux ``clear_refs``); return it in MB.

    Without the reset, the peak of compiling a long program would hide the run's own.
    """
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass
    return _peak_mb()


def _best_time(run, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure(point: Point) -> dict[str, Any]:
    """Return the times and peak memory of ``point`` in this process (run it in a fresh one)."""
    program = compile_program(point.spec, steps=point.steps)
    generator = torch.Generator().manual_seed(0)
    params = init_params(program, program.spec, generator).to(DTYPE)
    words = torch.randint(0, 2**program.io, (point.batch, point.steps + 1), generator=generator)
    options = BackendOptions(dtype=DTYPE, batch_size=point.batch)
    plan = get_backend("statevector")(program, options)
    cost = plan.cost

    if point.impl == "statevector":

        def probs(p):
            return plan.run(p, words).probs
    else:

        def probs(p):
            return baseline_run(program, p, words)

    def forward():
        with torch.no_grad():
            probs(params)

    def backward():
        theta = params.clone().requires_grad_()
        probs(theta).gather(2, words[:, 1:, None]).log().sum().backward()

    setup = _reset_peak()
    fwd = _best_time(forward, point.repeats)
    peak_fwd = _peak_mb()
    _reset_peak()
    fwd_bwd = _best_time(backward, point.repeats)
    return {
        **asdict(point),
        "qubits": point.qubits,
        "threads": torch.get_num_threads(),
        "fwd_s": fwd,
        "fwd_bwd_s": fwd_bwd,
        "rss_setup_mb": setup,
        "peak_fwd_mb": peak_fwd,
        "peak_fwd_bwd_mb": _peak_mb(),
        "predicted_fwd_mb": cost.peak_bytes_forward / 2**20,
        "predicted_fwd_bwd_mb": cost.peak_bytes_backward / 2**20,
    }


def run_point(point: Point, timeout: float, threads: int | None) -> dict[str, Any]:
    """:func:`measure` in a fresh subprocess; a failure or timeout is recorded, not raised."""
    command = [sys.executable, "-m", "benchmarks.statevector", "--child", json.dumps(asdict(point))]
    if threads:
        command += ["--threads", str(threads)]
    root = Path(__file__).resolve().parents[1]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=root, check=False
        )
    except subprocess.TimeoutExpired:
        return {**asdict(point), "qubits": point.qubits, "error": f"timeout after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**asdict(point), "qubits": point.qubits, "error": tail}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the sweep


def points(quick: bool) -> list[Point]:
    """Return the sweep; ``quick`` keeps it to a minute or two on two cores."""
    out = [Point("mnist", MNIST, 101, 50, "statevector")]
    out.append(Point("mnist", MNIST, 101, 50, "baseline", repeats=2 if quick else 3))
    widths = (4, 8) if quick else (4, 6, 8, 10, 12, 14, 16, 18, 20)
    for workspace in widths:
        for batch in (1, 50):
            n = workspace + 2
            if batch == 50 and n > 16:
                continue
            out.append(Point("qubits", all_to_all(workspace), 10, batch, "statevector"))
            if n <= (10 if quick else 14):
                out.append(Point("qubits", all_to_all(workspace), 10, batch, "baseline"))
    lengths = (10, 100, 1000) if quick else (10, 30, 100, 300, 1000)
    for steps in lengths:
        for batch in (1, 50):
            out.append(Point("length", DNA, steps, batch, "statevector", repeats=1 + quick))
            if steps <= (100 if quick else 300):
                out.append(Point("length", DNA, steps, batch, "baseline", repeats=1))
    return out


def wide_cost() -> dict[str, Any]:
    """``Plan.cost`` of a 10-step all-to-all cell at 26 qubits, batch 1, float32 (no run)."""
    program = compile_program(all_to_all(24), steps=10)
    cost = get_backend("statevector")(program, BackendOptions(dtype=DTYPE)).cost
    return {
        "qubits": 26,
        "steps": 10,
        "peak_fwd_gb": cost.peak_bytes_forward / 1e9,
        "peak_fwd_bwd_gb": cost.peak_bytes_backward / 1e9,
        "flops": cost.flops,
        "describe": cost.describe(),
    }


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Baseline / statevector for every configuration measured with both."""
    keyed = {(r["group"], r["qubits"], r["steps"], r["batch"], r["impl"]): r for r in results}
    out = []
    for (group, qubits, steps, batch, impl), ours in keyed.items():
        base = keyed.get((group, qubits, steps, batch, "baseline"))
        if impl != "statevector" or base is None or "error" in ours or "error" in base:
            continue
        grown = (base["peak_fwd_bwd_mb"] - base["rss_setup_mb"]) / max(
            ours["peak_fwd_bwd_mb"] - ours["rss_setup_mb"], 1.0
        )
        out.append(
            {
                "group": group,
                "qubits": qubits,
                "steps": steps,
                "batch": batch,
                "fwd_speedup": base["fwd_s"] / ours["fwd_s"],
                "fwd_bwd_speedup": base["fwd_bwd_s"] / ours["fwd_bwd_s"],
                "memory_ratio": grown,
            }
        )
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Time and memory against qubits and against length, both implementations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, (group, x) in enumerate((("qubits", "qubits"), ("length", "steps"))):
        for impl, style in (("statevector", "-o"), ("baseline", "--s")):
            for batch in (1, 50):
                rows = [
                    r
                    for r in results
                    if r["group"] == group
                    and r["impl"] == impl
                    and r["batch"] == batch
                    and "error" not in r
                ]
                if not rows:
                    continue
                xs = [r[x] for r in rows]
                label = f"{impl}, batch {batch}"
                axes[0, col].plot(xs, [r["fwd_bwd_s"] for r in rows], style, label=label)
                memory = [r["peak_fwd_bwd_mb"] - r["rss_setup_mb"] for r in rows]
                axes[1, col].plot(xs, memory, style, label=label)
        axes[0, col].set(ylabel="fwd+bwd time [s]", yscale="log")
        axes[1, col].set(xlabel=x, ylabel="peak memory above setup [MB]", yscale="log")
        axes[0, col].set_title(
            "all-to-all cell, 10 steps" if group == "qubits" else "DNA cell (8 qubits)"
        )
        if group == "length":
            for ax in axes[:, col]:
                ax.set_xscale("log")
        axes[0, col].legend(fontsize=8)
    fig.tight_layout()
    with tempfile.NamedTemporaryFile(suffix=".png", dir=path.parent, delete=False) as f:
        fig.savefig(f.name, dpi=110)
    os.replace(f.name, path)
    plt.close(fig)


def _targets(results: list[dict[str, Any]], table: list[dict[str, Any]], wide) -> list[str]:
    """Return the targets, each with the measured number."""
    ok = {(r["group"], r["steps"], r["batch"], r["impl"]): r for r in results if "error" not in r}
    lines = ["targets:"]
    mnist = ok.get(("mnist", 101, 50, "statevector"))
    if mnist:
        lines.append(
            f"  pixel-MNIST, 101 steps, batch 50, float32: fwd+bwd {mnist['fwd_bwd_s']:.3f} s "
            f"(aim < 0.5 s), peak RSS {mnist['peak_fwd_bwd_mb']:.0f} MB (target <= 1024 MB)"
        )
    for t in table:
        if t["group"] == "mnist":
            lines.append(
                f"  pixel-MNIST, {t['steps']} steps: fwd+bwd {t['fwd_bwd_speedup']:.1f}x faster "
                f"than the baseline (target >= 10x), memory {t['memory_ratio']:.0f}x smaller"
            )
    lines.append(
        f"  26 qubits all-to-all, 10 steps, batch 1, float32: Plan.cost forward+backward "
        f"{wide['peak_fwd_bwd_gb']:.1f} GB (target: fits in 24 GB)"
    )
    dna = sorted(
        (r["steps"], r)
        for (g, _, b, i), r in ok.items()
        if g == "length" and b == 1 and i == "statevector"
    )
    if len(dna) >= 2:
        (s0, r0), (s1, r1) = dna[0], dna[-1]
        grown = [r["peak_fwd_bwd_mb"] - r["rss_setup_mb"] for r in (r0, r1)]
        lines.append(
            f"  DNA, batch 1: memory above setup {grown[0]:.1f} MB at {s0} steps, "
            f"{grown[1]:.1f} MB at {s1} steps ({(grown[1] - grown[0]) / (s1 - s0) * 1024:.1f} "
            "KB per extra step; target: at most linear)"
        )
    return lines


def _summary(results, table, wide) -> str:
    lines = ["impl         group   qubits steps batch   fwd [s]  fwd+bwd [s]  peak [MB]"]
    for r in results:
        head = f"{r['impl']:<12} {r['group']:<7} {r['qubits']:>6} {r['steps']:>5} {r['batch']:>5}"
        if "error" in r:
            lines.append(f"{head}   {r['error']}")
        else:
            lines.append(
                f"{head} {r['fwd_s']:9.4f} {r['fwd_bwd_s']:12.4f} {r['peak_fwd_bwd_mb']:10.0f}"
            )
    lines.append("\nbaseline / statevector (time; memory above setup)")
    for t in table:
        lines.append(
            f"  {t['group']:<7} n={t['qubits']:<3} steps={t['steps']:<5} batch={t['batch']:<3}"
            f" fwd {t['fwd_speedup']:6.1f}x  fwd+bwd {t['fwd_bwd_speedup']:6.1f}x"
            f"  memory {t['memory_ratio']:7.1f}x"
        )
    lines.append("")
    return "\n".join(lines + _targets(results, table, wide))


def main(argv: list[str] | None = None) -> int:
    """Run the sweep from the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.statevector")
    parser.add_argument("--quick", action="store_true", help="a small sweep (~1-2 minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output directory")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per point")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(jsonio.dumps(measure(Point(**json.loads(args.child)))))
        return 0
    timeout = 300 if args.quick else 1200
    results = []
    for point in points(args.quick):
        results.append(run_point(point, timeout, args.threads))
        r = results[-1]
        status = r.get("error") or f"fwd+bwd {r['fwd_bwd_s']:.3f} s"
        print(
            f"{point.impl:<12} {point.group:<7} n={point.qubits} steps={point.steps} "
            f"batch={point.batch}: {status}",
            flush=True,
        )
    table, wide = ratios(results), wide_cost()
    report = {"quick": args.quick, "results": results, "ratios": table, "wide": wide}
    name = "statevector_quick" if args.quick else "statevector"
    _write_atomic(args.out / f"{name}.json", jsonio.dumps(report, indent=1).encode())
    plot(results, args.out / f"{name}.png")
    print(_summary(results, table, wide))
    print(f"\nwrote {args.out / (name + '.json')} and {args.out / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

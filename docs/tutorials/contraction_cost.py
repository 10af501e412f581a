"""Predicted cost of each backend against the qubit count, and a plot of it.

Run from the repository root::

    python docs/tutorials/contraction_cost.py [--quick] [--out DIR]

Every number comes from :attr:`Plan.cost` estimates, computed without running a
simulation, so the sweep is fast: a few seconds with ``--quick`` (or ``QRNN_TN_QUICK=1``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from compiler import compile_program  # noqa: E402
from qrnn_tn.backends import BackendOptions, rank_backends  # noqa: E402
from qrnn_tn.backends.options import MPSOptions  # noqa: E402


def local_cell(qubits: int, radius: int) -> dict:
    """Io 2, one work stage, degree 2, order 2, sources within ``radius`` lanes."""
    return {
        "cell": {"io": 2, "workspace": qubits - 2, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": radius}},
    }


def main() -> None:
    """Run the tutorial."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", default=bool(os.environ.get("QRNN_TN_QUICK"))
    )
    parser.add_argument("--out", default="runs/tutorials/cost", help="where the plot goes")
    args = parser.parse_args()
    qubits = [6, 10, 16, 24] if args.quick else [6, 8, 10, 12, 16, 20, 24, 32, 48, 64]
    steps = 2

    # An unlimited budget, so every backend reports its cost instead of being ruled out
    # for memory (a backend can still refuse: the statevector stops at 40 qubits). The MPS
    # gets a bond cap: without one its bound grows like an exact state's, 2^(n/2) per bond.
    options = BackendOptions(
        memory_budget=2**62, batch_size=1, backend_options=MPSOptions(max_bond=32)
    )
    widths: dict[str, list[tuple[int, float]]] = {}
    print(f"{'qubits':>6}  {'backend':12s} {'width':>6} {'flops':>9} {'predicted s':>11}")
    for n in qubits:
        program = compile_program(local_cell(n, radius=1), steps=steps)
        candidates, refused = rank_backends(program, options)
        for c in candidates:
            label = c.name if c.cost.exact else f"{c.name} (max_bond 32)"
            widths.setdefault(label, []).append((n, c.cost.width))
            print(
                f"{n:6d}  {c.name:12s} {c.cost.width:6.1f} {c.cost.flops:9.2e} "
                f"{c.cost.predicted_seconds:11.3g}"
            )
        for name, why in refused.items():
            print(f"{n:6d}  {name:12s} refused: {why.reason.split(';')[0]}")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, points in widths.items():
        ax.plot(*zip(*points, strict=True), marker="o", label=name)
    ax.set_xlabel("qubits (lanes)")
    ax.set_ylabel("log2 largest intermediate")
    ax.set_title(f"local r = 1 cell, {steps} steps")
    ax.legend()
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "cost.png", dpi=100)
    print(f"plot: {out / 'cost.png'}")


if __name__ == "__main__":
    main()

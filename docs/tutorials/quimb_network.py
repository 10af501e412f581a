"""A QRNN step as a quimb tensor network: inspect it, contract it, draw it.

The tensor-network backend builds one network per readout step; ``to_quimb`` hands that
network to quimb, tensors tagged by lane (``LANE{l}``), step (``STEP{s}``), half (``KET`` /
``BRA``) and kind (``NEURON``, ``RY``, ``START`` …). This script builds a small cell's last
step, prints quimb's summary, contracts it with quimb and checks the result against the
statevector backend, takes a gradient through quimb's contraction, and draws the network
coloured by kind and by lane.

Run from the repository root::

    python docs/tutorials/quimb_network.py --out quimb_network.png
    python docs/tutorials/quimb_network.py --quick   # one step, faster layout
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from compiler.unroll import compile_program  # noqa: E402
from qrnn_tn.backends import readout_inds, to_quimb  # noqa: E402
from qrnn_tn.simulation import simulate  # noqa: E402
from qrnn_tn.training import atomic_write  # noqa: E402

SPEC = {
    "cell": {"io": 1, "workspace": 2, "stages": 1},
    "neuron": {"degree": 2, "order": 1, "topology": "all"},
}
KINDS = ["START", "NEURON", "RY", "WORDX", "CLOSE"]


def circuit_positions(tn) -> dict[int, tuple[float, float]]:
    """Return a circuit-like layout: time left to right, the ket's lanes above, the bra's below.

    Each tensor goes one column right of the last tensor on any lane it touches (its own
    and those of its control or source indices, named ``q{lane}_…``).
    """
    last: dict[str, int] = {}
    where = {}
    for tid, t in tn.tensor_map.items():
        half = "KET" if "KET" in t.tags else "BRA" if "BRA" in t.tags else None
        if half is None:
            continue
        lane = next(int(tag[4:]) for tag in t.tags if tag.startswith("LANE"))
        touched = {(half, int(ind[1:].split("_")[0])) for ind in t.inds if ind.startswith("q")}
        touched.add((half, lane))
        column = max((last.get(key, -1) for key in touched), default=-1) + 1
        for key in touched:
            last[key] = column
        where[tid] = (float(column), (lane + 1.0) * (1 if half == "KET" else -1))
    return where


def main(argv: list[str] | None = None) -> None:
    """Run the tutorial."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="quimb_network.png", help="PNG to write")
    parser.add_argument("--quick", action="store_true", help="one step, a quicker layout")
    args = parser.parse_args(argv)

    steps = 1 if args.quick else 2
    program = compile_program(SPEC, steps=steps)
    rng = np.random.default_rng(0)
    params = torch.tensor(rng.normal(0.0, 1.0, program.n_params), requires_grad=True)
    words = rng.integers(0, 2**program.io, size=steps + 1)

    # The last step's network, holding torch tensors (one sequence: no batch index).
    tn = to_quimb(program, params, words, step=-1)
    print(repr(tn))
    for tag in [*KINDS, *(f"STEP{t}" for t in range(steps))]:
        print(f"  {tag:7} {len(tn.tag_map.get(tag, ())):3} tensors")
    print("  first tensor:", tn.tensors[0])
    print(f"open indices: {readout_inds(tn)}")

    # Contract with quimb; normalise the diagonal p~(w) into the step's distribution.
    unnorm = tn.contract(output_inds=readout_inds(tn)).data.reshape(-1)
    probs = unnorm / unnorm.sum()
    reference = simulate(program, params, words, backend="statevector").probs[0, -1]
    print("quimb      p(w):", probs.detach().numpy().round(6))
    print("statevector p(w):", reference.detach().numpy().round(6))
    print(f"largest difference: {float((probs - reference).abs().max().detach()):.1e}")

    # Gradients flow through quimb's contraction back to the parameters.
    (grad,) = torch.autograd.grad(probs[0], params)
    (grad_sv,) = torch.autograd.grad(reference[0], params)
    print("d p(0) / d params:", grad.numpy().round(4))
    print(f"largest difference from the statevector's: {float((grad - grad_sv).abs().max()):.1e}")

    # Draw: coloured by operation kind, then by lane, laid out like a circuit.
    lanes = [f"LANE{q}" for q in range(program.n_lanes)]
    fig, axes = plt.subplots(2, 1, figsize=(14, 10))
    for ax, color, title in ((axes[0], KINDS, "by kind"), (axes[1], lanes, "by lane")):
        tn.draw(
            color=color,
            output_inds=readout_inds(tn),
            fix=circuit_positions(tn),
            title=f"step {steps - 1}'s readout network, {title}: ket above, bra below",
            iterations=0 if args.quick else 20,
            show_tags=False,
            ax=ax,
        )
    atomic_write(args.out, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

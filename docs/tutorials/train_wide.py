"""Train a wide QRNN (more lanes than a statevector holds comfortably) from Python.

Run from the repository root::

    python docs/tutorials/train_wide.py [--quick] [--out DIR]

The cell reads sklearn's bundled 8x8 digits (0 vs 1, downscaled) pixel by pixel. Its
sources follow a chain, as in ``examples/digits_pixel_64_lanes.toml``: lanes 0-3 see two
lanes either side, the rest one, so the MPS backend keeps small windows along the chain.
``--quick`` (or ``QRNN_TN_QUICK=1``) trains a 12-lane cell for a few steps (seconds);
without it, 40 lanes for 60 steps (tens of minutes on one core).
"""

from __future__ import annotations

import argparse
import os

import torch

from qrnn_tn.model import QRNN
from qrnn_tn.tasks import build_datasets, default_config, task_options
from qrnn_tn.training import evaluate, train


def chain_cell(lanes: int) -> dict:
    """Io 2 and ``lanes - 2`` workspace lanes; sources within 2 lanes on lanes 0-3, else 1."""
    custom = {}
    for lane in range(lanes):
        radius = 2 if lane < 4 else 1
        custom[str(lane)] = [
            s for s in range(lane - radius, lane + radius + 1) if s != lane and 0 <= s < lanes
        ]
    return {
        "name": f"digits-chain-{lanes}",
        "cell": {"io": 2, "workspace": lanes - 2, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "offset": 1.2, "topology": {"custom": custom}},
    }


def main() -> None:
    """Run the tutorial."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", default=bool(os.environ.get("QRNN_TN_QUICK"))
    )
    parser.add_argument("--out", default=None, help="run directory (default: keep nothing)")
    args = parser.parse_args()
    lanes, size, steps, batch, bond = (12, 3, 2, 16, 8) if args.quick else (40, 4, 60, 32, 16)
    torch.manual_seed(0)

    # Data: the task's defaults, downscaled to size x size pixels (size^2 steps).
    options = task_options("digits-pixel", {"size": size})
    data = build_datasets("digits-pixel", seed=0, **options)
    print(f"{len(data.train)} training sequences of {data.train.length} tokens")

    # The model on the MPS backend with a bond cap: approximate, and the weight each run
    # discards is reported. (backend="auto" would rank the exact backends by predicted cost
    # and fall back to this capped MPS only when none of them fits the memory budget.)
    model = QRNN(chain_cell(lanes), seed=0, backend="mps", backend_options={"max_bond": bond})
    cost = model.plan(data.train.length - 1, batch).cost
    print(f"{lanes} lanes, {model.n_params} parameters")
    print(cost.describe())

    # Training: Adam with the task's learning rate, checkpoints only if --out is given.
    config = default_config(
        "digits-pixel",
        steps=steps,
        batch_size=batch,
        eval_every=steps if args.quick else 10,
        lr=0.005,
        out=args.out,
        backend="mps",
        backend_options={"max_bond": bond},
    )
    config.task_options = options
    summary = train(model, data.train, data.val, config)
    print(f"trained {summary.steps} steps in {summary.seconds:.1f} s")
    print("validation:", {k: round(v, 4) for k, v in evaluate(model, data.val).to_json().items()})


if __name__ == "__main__":
    main()

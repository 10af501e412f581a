"""Train a 100-qubit QRNN on MNIST 0 vs 1, pixel by pixel, from a Python script.

The cell is ``examples/wide_local.toml``: two i/o lanes and 98 workspace lanes, neurons on
a nearest-neighbour chain whose head is the i/o register (``topology = { local = 1,
io = "site" }``), so both pixel bits of every step reach the workspace. No statevector
holds 2^100 amplitudes; the MPS backend runs it with its bond capped (``max_bond``) and
reports the weight each step discards to the cap. Each image is cropped to 20x20,
downscaled to 10x10, binarised and read one pixel per step in two scanlines, row-major on
one i/o lane and column-major on the other (the paper's setup: 100 steps of pixels, then
the label).

Run from the repository root, with the MNIST IDX files in ``DIR``::

    .venv/bin/python examples/train_mnist_100_qubits.py --data-dir DIR --out runs/mnist-100

The run directory holds the metrics, checkpoints and summary of ``qrnn-tn train``;
``--resume`` continues a killed run and ``qrnn-tn plot runs/mnist-100`` draws it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qrnn_tn.model import QRNN
from qrnn_tn.tasks import build_datasets, default_config
from qrnn_tn.training import train

CELL = Path(__file__).with_name("wide_local.toml")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-dir", required=True, help="directory of the MNIST IDX files")
parser.add_argument("--out", default="runs/mnist-100", help="run directory")
parser.add_argument("--steps", type=int, default=200, help="optimiser steps")
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--lr", type=float, default=0.002)
parser.add_argument("--max-bond", type=int, default=16, help="the MPS bond cap")
parser.add_argument("--eval-every", type=int, default=25)
parser.add_argument("--limit", type=int, default=None, help="use the first N images only")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--resume", action="store_true", help="continue the run in --out")
args = parser.parse_args()

options = {"digits": "0,1", "data_dir": args.data_dir, "limit": args.limit}
data = build_datasets("mnist-pixel", args.seed, **options)
config = default_config(
    "mnist-pixel",
    steps=args.steps,
    batch_size=args.batch_size,
    lr=args.lr,
    eval_every=args.eval_every,
    seed=args.seed,
    backend="mps",
    backend_options={"max_bond": args.max_bond},
    out=args.out,
    task_options=options,
)
model = QRNN(CELL, backend="mps", seed=args.seed, backend_options={"max_bond": args.max_bond})
print(f"{model.n_params} parameters, {model.spec.n_lanes} qubits, {config.steps} steps")
summary = train(model, data.train, data.val, config, data.test, resume=args.resume)
test = summary.test
assert test is not None  # a test set was given
print(
    f"test accuracy {test.accuracy:.1%} on {test.sequences} images "
    f"(loss {test.loss:.3f}); "
    f"largest discarded weight of a test sequence {test.discarded or 0.0:.1e}; "
    f"{summary.seconds / 60:.0f} min"
)

"""Compile a cell spec and inspect the program, its exports and its predicted cost.

Run from the repository root::

    python docs/tutorials/compile_and_inspect.py [--quick] [--out DIR]

``--quick`` (or ``QRNN_TN_QUICK=1``) uses fewer steps; the script takes a few seconds
either way and needs no torch work beyond the cost estimates.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from compiler import compile_program, load_spec
from compiler.export import from_json, summary, to_json, to_qasm3
from qrnn_tn.backends import BackendOptions, rank_backends


def main() -> None:
    """Run the tutorial."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", default=bool(os.environ.get("QRNN_TN_QUICK"))
    )
    parser.add_argument("--out", default="runs/tutorials/compile", help="where exports go")
    args = parser.parse_args()
    steps = 2 if args.quick else 5
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. A spec: a TOML file, a JSON file, or a plain dict with the same keys.
    spec = load_spec(
        {
            "name": "tutorial",
            "cell": {"io": 2, "workspace": 6, "stages": 1},
            "neuron": {"degree": 2, "order": 2, "topology": {"local": 1}},
        }
    )
    print(f"{spec.n_lanes} lanes, {spec.n_parameters()} parameters")
    print("sources of workspace lane h0:", spec.sources_of(spec.io))

    # 2. Compile: lower the cell to a gate DAG, unroll it over `steps` steps, optimise.
    program = compile_program(spec, steps=steps)
    print(f"{program.steps} steps read {program.n_tokens} tokens")
    print("first parameter slots:", [slot.name for slot in program.slots[:4]])

    # 3. Exports: a lossless JSON round trip and the literal circuit in OpenQASM 3.
    text = to_json(program)
    assert to_json(from_json(text)) == text
    (out / "tutorial.json").write_text(text)
    qasm = to_qasm3(program)
    (out / "tutorial.qasm").write_text(qasm)
    print(f"OpenQASM 3: {len(qasm.splitlines())} lines, written to {out / 'tutorial.qasm'}")

    # 4. The predicted cost of each backend, before any tensor work.
    options = BackendOptions(memory_budget=2**30, batch_size=8)
    candidates, refused = rank_backends(program, options)
    for candidate in candidates:
        cost = candidate.cost
        print(
            f"{candidate.name:12s} width 2^{cost.width:.1f}  flops {cost.flops:.2e}  "
            f"predicted {cost.predicted_seconds:.2g} s  peak (fwd+bwd) "
            f"{cost.peak_bytes_backward / 2**20:.1f} MiB"
        )
    for name, why in refused.items():
        print(f"{name:12s} ruled out: {why}")

    # 5. The summary the CLI prints (`qrnn-tn compile SPEC --steps N`), with the best cost.
    print(summary(program, candidates[0].cost))


if __name__ == "__main__":
    main()

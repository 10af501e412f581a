"""Data-parallel training over two processes, and a sliced contraction on a dask cluster.

Run from the repository root::

    python docs/tutorials/data_parallel_and_dask.py [--quick] [--skip-dask]

Part (a) starts two gloo processes on 127.0.0.1 (what ``torchrun`` would start), trains the
Elman XOR cell data-parallel, and checks that the parameters equal those of one process.
Part (b) needs ``dask[distributed]`` (in the ``dev`` extra): it contracts a sliced
tensor-network plan on a local cluster of two worker processes and checks the
probabilities and gradients against the same plan run here. ``--quick`` (or
``QRNN_TN_QUICK=1``) trains for 4 steps instead of 40.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile

import torch
import torch.multiprocessing as mp


def train_xor(steps: int, out: str) -> torch.Tensor:
    """Train the elman-xor task's default cell with SGD; the final parameters."""
    from qrnn_tn.tasks import build_datasets, default_config, default_spec, task_options
    from qrnn_tn.training import build_model, train

    torch.set_num_threads(1)
    options = task_options("elman-xor")
    data = build_datasets("elman-xor", seed=0, **options)
    config = default_config(
        "elman-xor",
        steps=steps,
        batch_size=32,
        optimiser="sgd",
        eval_every=steps,
        target_accuracy=None,
        out=out,
    )
    config.task_options = options
    model = build_model(default_spec("elman-xor"), config)
    train(model, data.train, data.val, config)
    return model.theta.detach().clone()


def rank_main(rank: int, world: int, port: int, steps: int, out: str, results) -> None:
    """One process of the group: torchrun's environment, then train inside a session."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    from qrnn_tn.training import distributed

    with distributed.session(backend="gloo", timeout=120):
        theta = train_xor(steps, out)
    results.put((rank, theta.tolist()))  # plain lists: tensors would need the sender alive


def data_parallel(steps: int) -> None:
    """Train ``steps`` steps on two local ranks and check they match one process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")  # a forked pool can hang once torch has started threads
    results = ctx.Queue()
    with tempfile.TemporaryDirectory() as out:
        procs = [
            ctx.Process(target=rank_main, args=(r, 2, port, steps, f"{out}/ddp", results))
            for r in range(2)
        ]
        for p in procs:
            p.start()
        thetas = dict(results.get(timeout=600) for _ in procs)
        for p in procs:
            p.join()
        single = train_xor(steps, f"{out}/single")
    diff = max(
        float((torch.tensor(t, dtype=single.dtype) - single).abs().max()) for t in thetas.values()
    )
    print(f"(a) {steps} SGD steps on 2 ranks vs 1 process: largest parameter difference {diff:.1e}")
    assert diff < 1e-10


def dask_contraction() -> None:
    """Run a sliced plan locally and on a local dask cluster and check they agree."""
    import logging

    import numpy as np
    from distributed import Client, LocalCluster

    from compiler import compile_program
    from qrnn_tn.backends import BackendOptions, get_backend
    from qrnn_tn.backends.options import TensorNetOptions

    spec = {
        "cell": {"io": 2, "workspace": 10, "stages": 1},
        "neuron": {"degree": 2, "order": 2, "topology": {"local": 2}},
    }
    program = compile_program(spec, steps=2)
    rng = np.random.default_rng(0)
    params = torch.tensor(rng.normal(0.0, 1.0, program.n_params))
    words = torch.as_tensor(rng.integers(0, 2**program.io, (4, program.n_tokens)))
    with tempfile.TemporaryDirectory() as cache:
        # A small memory budget slices each step's contraction into pieces: the unit of work
        # a worker gets. The path cache makes every later process skip the search.
        tensornet = TensorNetOptions(cache_dir=cache, search_time=0.5)
        options = BackendOptions(batch_size=4, memory_budget=2**21, backend_options=tensornet)
        plan = get_backend("tensornet")(program, options)
    print(f"(b) slices per step: {plan.cost.details.slices_per_step}")

    def run(executor):
        theta = params.clone().requires_grad_(True)
        result = plan.run(theta, words, executor=executor)
        (-torch.log(result.target_prob).sum()).backward()
        return result.probs.detach(), theta.grad

    probs, grad = run(None)
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        probs_c, grad_c = run(client)
    print(
        f"    dask vs local: probabilities differ by {float((probs - probs_c).abs().max()):.1e}, "
        f"gradients by {float((grad - grad_c).abs().max()):.1e}"
    )
    assert torch.allclose(probs, probs_c, atol=1e-12) and torch.allclose(grad, grad_c, atol=1e-10)


def main() -> None:
    """Run the tutorial."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", default=bool(os.environ.get("QRNN_TN_QUICK"))
    )
    parser.add_argument("--skip-dask", action="store_true", help="only part (a)")
    args = parser.parse_args()
    data_parallel(steps=4 if args.quick else 40)
    if not args.skip_dask:
        dask_contraction()


if __name__ == "__main__":
    main()

"""Data-parallel training: 2 spawned gloo ranks on localhost match one process exactly."""

from __future__ import annotations

import os
import queue as queue_module
import re
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from qrnn_tn.data import dna, elman_xor
from qrnn_tn.model import QRNN
from qrnn_tn.training import TrainConfig, distributed, load_checkpoint, read_metrics, train

SPECS = {
    "elman-xor": {"cell": {"io": 1, "workspace": 2, "stages": 1}},
    "dna": {"cell": {"io": 3, "workspace": 1, "stages": 0}},  # a target stream
}
#: Runs named ``TASK-capped`` train TASK on the MPS backend with a bond cap of 1 (truncating).
CAPPED = "-capped"
WORLD = 2
TIMEOUT = 20.0  # seconds a rank waits for its peers in these tests


def _data(task: str = "elman-xor"):
    # batches of 4 then 2: uneven shards
    task = task.removesuffix(CAPPED)
    if task == "dna":
        return dna(6, n_sequences=6, seed=3)
    return elman_xor(2, n_sequences=6, seed=3)


def _config(out, steps: int, optimiser: str = "adam", task: str = "elman-xor") -> TrainConfig:
    capped = task.endswith(CAPPED)
    return TrainConfig(
        task=task.removesuffix(CAPPED),
        lr=0.1,
        optimiser=optimiser,
        batch_size=4,
        steps=steps,
        eval_every=2,
        backend="mps" if capped else "statevector",
        backend_options={"max_bond": 1} if capped else {},
        dtype="float64",
        out=None if out is None else str(out),
    )


def _model(config: TrainConfig) -> QRNN:
    return QRNN(
        SPECS[config.task], backend=config.backend, seed=7, backend_options=config.backend_options
    )


def _one_process(out, steps: int, optimiser: str = "adam", task: str = "elman-xor") -> np.ndarray:
    config = _config(out, steps, optimiser, task)
    model = _model(config)
    train(model, _data(task), None, config, progress=False)
    return model.theta.detach().numpy().copy()


def _worker(rank: int, port: int, job: dict, results) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    try:
        with distributed.session(backend="gloo", timeout=TIMEOUT):
            if job.get("fail_rank") == rank:

                def failing_run(*args, **kwargs):
                    raise RuntimeError(f"injected failure on rank {rank}")

                QRNN.run = failing_run  # this worker process only
            thetas = []
            for out, steps, resume, optimiser, task in job["runs"]:
                config = _config(out, steps, optimiser, task)
                model = _model(config)
                train(model, _data(task), None, config, resume=resume, progress=False)
                thetas.append(model.theta.detach().numpy().copy())
        results.put((rank, "ok", thetas))
    except Exception as err:
        results.put((rank, type(err).__name__, str(err)))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(job: dict, limit: float = 180.0) -> dict[int, tuple]:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, job, results)) for r in range(WORLD)]
    for p in procs:
        p.start()
    got: dict[int, tuple] = {}
    try:
        while len(got) < WORLD:
            rank, *rest = results.get(timeout=limit)
            got[rank] = tuple(rest)
        for p in procs:
            p.join(timeout=limit)
    except queue_module.Empty:
        pytest.fail(f"ranks {sorted(set(range(WORLD)) - set(got))} hung; results: {got}")
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    return got


def test_two_ranks_match_one_process_and_resume(tmp_path):
    """One spawn, five runs: adam for 3 steps, adam for 2 steps resumed to 3, L-BFGS 1 step,
    adam on a task with a target stream (DNA), adam on a truncating MPS (whose discarded
    weight the ranks report as one process does).

    (L-BFGS's line search amplifies round-off over several steps, so it is checked on one.)
    """
    adam = _one_process(tmp_path / "one", 3)
    lbfgs = _one_process(None, 1, "lbfgs")
    stream = _one_process(None, 3, "adam", "dna")
    capped = _one_process(tmp_path / "one-capped", 2, "adam", "elman-xor-capped")
    runs = [
        (tmp_path / "ddp", 3, False, "adam", "elman-xor"),
        (tmp_path / "resumed", 2, False, "adam", "elman-xor"),
        (tmp_path / "resumed", 3, True, "adam", "elman-xor"),
        (None, 1, False, "lbfgs", "elman-xor"),
        (None, 3, False, "adam", "dna"),
        (tmp_path / "ddp-capped", 2, False, "adam", "elman-xor-capped"),
    ]
    got = _spawn({"runs": runs})
    for rank in range(WORLD):
        status, thetas = got[rank]
        assert status == "ok", thetas
        expect = [adam, None, adam, lbfgs, stream, capped]
        for theta, expected in zip(thetas, expect, strict=True):
            if expected is not None:
                np.testing.assert_allclose(theta, expected, rtol=0, atol=1e-10)
    last_one = load_checkpoint(tmp_path / "one" / "last.pt")["model"]["theta"]
    for run in ("ddp", "resumed"):
        last = load_checkpoint(tmp_path / run / "last.pt")["model"]["theta"]
        torch.testing.assert_close(last, last_one, rtol=0, atol=1e-10)
    for one_run, run in (("one", "ddp"), ("one", "resumed"), ("one-capped", "ddp-capped")):
        one, ddp = read_metrics(tmp_path / one_run), read_metrics(tmp_path / run)
        assert [(r["split"], r["step"]) for r in ddp] == [(r["split"], r["step"]) for r in one]
        for a, b in zip(one, ddp, strict=True):
            assert set(a) == set(b), (a, b)
            for key in ("loss", "accuracy", "overhead", "discarded"):
                if key in a:
                    assert b[key] == pytest.approx(a[key], rel=0, abs=1e-10), (key, a, b)
    assert all(r["discarded"] > 0 for r in read_metrics(tmp_path / "ddp-capped"))


def test_a_failing_rank_stops_the_other_with_a_clear_error(tmp_path):
    job = {"runs": [(tmp_path / "ddp", 3, False, "adam", "elman-xor")], "fail_rank": 1}
    got = _spawn(job)
    assert got[1] == ("RuntimeError", "injected failure on rank 1")
    kind, message = got[0]
    assert kind == "DistributedError", got[0]
    assert "rank 0/2" in message and "process group failed" in message


def test_shard_rows_cover_the_batch_and_init_needs_torchrun_env(monkeypatch):
    words = torch.arange(10).reshape(5, 2)
    mask = torch.ones(5, 1, dtype=torch.bool)
    parts = [distributed.shard(words, mask, r, 3)[0] for r in range(3)]
    assert sorted(torch.cat(parts)[:, 0].tolist()) == words[:, 0].tolist()
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(distributed.DistributedError, match="torchrun"):
        distributed.init()
    assert distributed.current() is None and distributed.world_size() == 1


def test_damaged_metrics_log_fails_the_resume_on_every_rank(tmp_path):
    """Before, only rank 0 read the log on resume: the other ranks went on and waited for
    it at the next collective."""
    out = tmp_path / "run"
    train(_model(_config(out, 2)), _data(), None, _config(out, 2), progress=False)
    log = out / "metrics.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], "{damaged", *lines[1:]]) + "\n")
    got = _spawn({"runs": [(out, 3, True, "adam", "elman-xor")]})
    for rank in range(WORLD):
        kind, message = got[rank]
        assert kind == "RunDirError", got[rank]
        assert re.search("metrics.jsonl.*line 2", message), message

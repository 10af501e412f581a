"""Training loop: learning, determinism, kill-and-resume, atomic checkpoints, errors."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from qrnn_tn.data import SequenceDataset
from qrnn_tn.model import QRNN
from qrnn_tn.training import (
    NonFiniteError,
    RunDir,
    RunDirError,
    TrainError,
    evaluate,
    load_checkpoint,
    load_run,
    read_metrics,
    train,
)
from tests.qrnn_tn.training.common import (
    SPEC,
    config,
    dense_neg_log_norm,
    make_model,
    without_seconds,
    xor_data,
)


def test_a_few_steps_lower_the_loss():
    data = xor_data(0, n=16)
    model = make_model()
    before = evaluate(model, data).loss
    summary = train(model, data, None, config(steps=25, eval_every=5), progress=False)
    after = evaluate(model, data).loss
    assert after < before - 0.05
    assert summary.best_val.loss == pytest.approx(after)
    assert summary.steps == 25 and summary.stopped == "steps"


def test_training_is_deterministic_and_writes_the_run_files(tmp_path):
    runs = []
    for name in ("a", "b"):
        model = make_model()
        train(model, xor_data(0), xor_data(1), config(tmp_path / name), xor_data(2), progress=False)
        runs.append((model.theta.detach().clone(), read_metrics(tmp_path / name)))
    torch.testing.assert_close(runs[0][0], runs[1][0], rtol=0, atol=0)
    assert without_seconds(runs[0][1]) == without_seconds(runs[1][1])
    records = runs[0][1]
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 11))
    assert [r["step"] for r in records if r["split"] == "val"] == [4, 8, 10]
    assert records[-1]["split"] == "test"
    for key in ("loss", "accuracy", "overhead", "grad_norm", "seconds"):
        assert key in records[0]
    run = tmp_path / "a"
    assert {p.name for p in run.iterdir()} == {
        "config.json",
        "metrics.jsonl",
        "last.pt",
        "best.pt",
        "summary.json",
        ".lock",  # kept: deleting a lock file races with a process about to take it
    }
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 10
    model, cfg = load_run(run)
    torch.testing.assert_close(model.theta, runs[0][0])
    assert cfg.lr == 0.05
    ckpt = load_checkpoint(run / "last.pt")
    assert set(ckpt["rng"]) == {"torch", "numpy", "python"}
    assert ckpt["state"]["step"] == 10 and "state" in ckpt["optimiser"]


def die_at_training_run(model: QRNN, n: int) -> None:
    """Make the ``n``-th training run of ``model`` (one with gradients) raise, as a kill."""
    real_run, calls = model.run, {"n": 0}

    def run(words, *, targets=None):
        calls["n"] += torch.is_grad_enabled()
        if calls["n"] == n and torch.is_grad_enabled():
            raise KeyboardInterrupt
        return real_run(words, targets=targets)

    model.run = run


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path):
    cfg = dict(steps=12, eval_every=4, lr_schedule="cosine")
    whole = make_model()
    train(whole, xor_data(0), xor_data(1), config(tmp_path / "whole", **cfg), progress=False)

    killed = tmp_path / "killed"
    dying = make_model()
    die_at_training_run(dying, 7)  # killed at step 7: last checkpoint at step 4, metrics up to 6
    with pytest.raises(KeyboardInterrupt):
        train(dying, xor_data(0), xor_data(1), config(killed, **cfg), progress=False)
    assert max(r["step"] for r in read_metrics(killed)) == 6
    assert load_checkpoint(killed / "last.pt")["state"]["step"] == 4

    resumed = make_model(seed=123)  # different initial values: the checkpoint must win
    train(resumed, xor_data(0), xor_data(1), config(killed, **cfg), resume=True, progress=False)
    assert without_seconds(read_metrics(killed)) == without_seconds(
        read_metrics(tmp_path / "whole")
    )
    torch.testing.assert_close(resumed.theta, whole.theta, rtol=0, atol=0)
    last = [load_checkpoint(d / "last.pt") for d in (killed, tmp_path / "whole")]
    torch.testing.assert_close(last[0]["model"]["theta"], last[1]["model"]["theta"], rtol=0, atol=0)
    lrs = [r["lr"] for r in read_metrics(killed) if r["split"] == "train"]
    assert lrs == pytest.approx([0.05 * (1 + np.cos(np.pi * t / 12)) / 2 for t in range(12)])


def test_resume_can_extend_a_finished_run(tmp_path):
    whole = make_model()
    train(whole, xor_data(0), None, config(tmp_path / "whole", steps=8), progress=False)
    part = make_model()
    train(part, xor_data(0), None, config(tmp_path / "part", steps=4), progress=False)
    train(part, xor_data(0), None, config(tmp_path / "part", steps=8), resume=True, progress=False)
    assert without_seconds(read_metrics(tmp_path / "part")) == without_seconds(
        read_metrics(tmp_path / "whole")
    )


def test_an_interrupted_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(make_model(), xor_data(0), None, config(run, steps=4), progress=False)
    before = load_checkpoint(run / "last.pt")

    def broken_replace(src, dst):
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk went away"):
        train(make_model(), xor_data(0), None, config(run, steps=8), resume=True, progress=False)
    monkeypatch.undo()
    after = load_checkpoint(run / "last.pt")
    assert after["state"]["step"] == 4
    torch.testing.assert_close(after["model"]["theta"], before["model"]["theta"])
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def test_target_accuracy_stops_early_and_best_parameters_are_kept():
    data = xor_data(0, n=16)
    model = make_model()
    summary = train(
        model, data, None, config(steps=400, eval_every=5, target_accuracy=0.5), progress=False
    )
    assert summary.stopped == "target" and summary.steps < 400
    assert evaluate(model, data).accuracy >= 0.5


@pytest.mark.parametrize("optimiser", ["sgd", "rmsprop", "lbfgs"])
def test_other_optimisers_run(optimiser):
    lr = 1.0 if optimiser == "lbfgs" else 0.05
    summary = train(
        make_model(),
        xor_data(0),
        None,
        config(steps=2, optimiser=optimiser, lr=lr),
        progress=False,
    )
    assert summary.steps == 2 and np.isfinite(summary.best_val.loss)


def test_run_directory_and_data_errors(tmp_path):
    run = tmp_path / "run"
    train(make_model(), xor_data(0), None, config(run, steps=2), progress=False)
    with pytest.raises(TrainError, match="already holds a run"):
        train(make_model(), xor_data(0), None, config(run, steps=2), progress=False)
    with pytest.raises(TrainError, match="lr: saved 0.05, given 0.1"):
        train(make_model(), xor_data(0), None, config(run, lr=0.1), resume=True, progress=False)
    with pytest.raises(TrainError, match="needs config.out"):
        train(make_model(), xor_data(0), None, config(), resume=True, progress=False)
    three_bit = SequenceDataset(np.zeros((2, 3), dtype=np.int64), np.ones((2, 2), bool), io=3)
    with pytest.raises(TrainError, match="cell.io = 3"):
        train(make_model(), three_bit, None, config(), progress=False)
    unscored = SequenceDataset(np.zeros((2, 3), dtype=np.int64), np.zeros((2, 2), bool), io=1)
    with pytest.raises(TrainError, match="no unmasked step"):
        train(make_model(), unscored, None, config(), progress=False)


def test_single_precision_training_runs():
    model = QRNN(SPEC, backend="statevector", dtype=torch.complex64, seed=0)
    summary = train(model, xor_data(0), None, config(steps=2, dtype="complex64"), progress=False)
    assert model.theta.dtype == torch.float32 and np.isfinite(summary.best_val.loss)


def test_a_run_saved_before_a_config_field_existed_resumes_with_its_default(tmp_path):
    run = tmp_path / "run"
    train(make_model(), xor_data(0), None, config(run, steps=4), progress=False)
    ckpt = torch.load(run / "last.pt", weights_only=False)
    del ckpt["config"]["lr_schedule"], ckpt["config"]["backend_options"]
    torch.save(ckpt, run / "last.pt")
    summary = train(make_model(), xor_data(0), None, config(run, steps=6), resume=True,
                    progress=False)  # fmt: skip
    assert summary.steps == 6


def _penalty_step(init, data, penalty, scope):
    """The parameter change of one plain SGD step (lr 1e-3, no clipping), divided by -lr."""
    model = QRNN(SPEC, backend="statevector", init=init)
    cfg = config(optimiser="sgd", lr=1e-3, clip=None, steps=1, batch_size=len(data))
    cfg.overhead_penalty, cfg.overhead_penalty_scope = penalty, scope
    train(model, data, None, cfg, progress=False)
    return ((torch.from_numpy(init) - model.theta.detach()) / 1e-3).numpy()


def _central_differences(f, init, h=1e-6):
    grad = np.zeros(len(init))
    for i in range(len(init)):
        up, down = init.copy(), init.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad


def test_overhead_penalty_of_every_postselection_adds_its_gradient():
    data, lam = xor_data(0, n=3), 0.7
    init = np.random.default_rng(5).normal(0, 0.5, 22)
    steps = data.words.shape[1] - 1
    extra = _penalty_step(init, data, lam, "all") - _penalty_step(init, data, 0.0, "all")

    def replay(theta):  # the dense reference: an independent forward computation
        return dense_neg_log_norm(QRNN(SPEC, init=theta), data.words).mean() / steps

    np.testing.assert_allclose(extra, lam * _central_differences(replay, init), atol=1e-6)
    assert np.abs(extra).max() > 1e-3


def test_overhead_penalty_of_the_readouts_counts_the_unscored_projections():
    data, lam = xor_data(0, n=3), 0.7
    init = np.random.default_rng(6).normal(0, 0.5, 22)
    extra = _penalty_step(init, data, lam, "readout") - _penalty_step(init, data, 0.0, "readout")
    words, unscored = torch.from_numpy(data.words), ~torch.from_numpy(data.mask)
    assert unscored.any() and not unscored.all()

    def readout(theta):
        with torch.no_grad():
            p = QRNN(SPEC, backend="tensornet", init=theta).run(words).target_prob
        return float(-torch.log(p[unscored]).mean())

    np.testing.assert_allclose(extra, lam * _central_differences(readout, init), atol=1e-6)
    assert np.abs(extra).max() > 1e-3


@pytest.mark.parametrize(("scope", "metric"), [("all", "log_overhead"), ("readout", "overhead")])
def test_overhead_penalty_lowers_the_overhead_it_counts(scope, metric):
    data = xor_data(0, n=8)
    results = {}
    for penalty in (0.0, 1.0):
        cfg = config(steps=20, overhead_penalty=penalty, overhead_penalty_scope=scope)
        results[penalty] = getattr(
            train(make_model(), data, None, cfg, progress=False).best_val, metric
        )
    assert results[1.0] < results[0.0] - 0.05


def _strict_records(path):
    """Every line of a JSON-lines file parsed by a parser that refuses NaN/Infinity."""

    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    text = path.read_text(encoding="utf-8")
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def test_a_huge_learning_rate_stops_the_run_with_a_clear_error(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match="step 1: the parameters after the step"):
        train(make_model(), xor_data(0), None, config(out, lr=1e308), progress=False)
    assert not (out / "summary.json").exists()
    _strict_records(out / "metrics.jsonl")


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_finite_checkpoint(tmp_path):
    cfg = dict(eval_every=2, overhead_penalty=0.01, overhead_penalty_scope="all")
    model = make_model()
    real_run, calls = model.run, {"n": 0}

    def run(words, *, targets=None):  # the fifth training step sees an infinite overhead
        result = real_run(words, targets=targets)
        calls["n"] += torch.is_grad_enabled()  # training steps only, not validations
        if calls["n"] == 5 and torch.is_grad_enabled():
            return dataclasses.replace(result, log_norm=result.log_norm - float("inf"))
        return result

    model.run = run
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match="step 5: the loss: not finite") as info:
        train(model, xor_data(0), None, config(out, **cfg), progress=False)
    assert "last.pt keeps the last finite checkpoint" in str(info.value)
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["state"]["step"] == 4 and torch.isfinite(ckpt["model"]["theta"]).all()
    records = _strict_records(out / "metrics.jsonl")
    assert all(np.isfinite(r["loss"]) for r in records)
    train(make_model(), xor_data(0), None, config(out, **cfg), resume=True, progress=False)
    assert [r["step"] for r in read_metrics(out) if r["split"] == "train"] == list(range(1, 11))


def test_resume_needs_a_checkpoint_overwrite_replaces_and_a_held_run_is_refused(tmp_path):
    run = tmp_path / "run"
    train(make_model(), xor_data(0), None, config(run, steps=4), progress=False)
    (run / "last.pt").unlink()
    history = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(TrainError, match="no checkpoint last.pt"):
        train(make_model(), xor_data(0), None, config(run, steps=6), resume=True, progress=False)
    assert (run / "metrics.jsonl").read_bytes() == history and (run / "best.pt").exists()
    with RunDir(run).lock(), pytest.raises(RunDirError, match=f"pid {os.getpid()}"):
        train(make_model(), xor_data(0), None, config(run, steps=2), overwrite=True)
    assert (run / "metrics.jsonl").read_bytes() == history
    train(make_model(), xor_data(0), None, config(run, steps=2), overwrite=True, progress=False)
    assert [r["step"] for r in read_metrics(run) if r["split"] == "train"] == [1, 2]

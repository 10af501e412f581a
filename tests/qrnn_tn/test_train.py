"""Training loop: learning, determinism, kill-and-resume, atomic checkpoints, errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import qrnn_tn.train as train_module
from qrnn_tn.data import SequenceDataset, elman_xor
from qrnn_tn.model import QRNN
from qrnn_tn.train import (
    TrainConfig,
    TrainError,
    evaluate,
    load_checkpoint,
    load_run,
    read_metrics,
    train,
)

SPEC = {"cell": {"io": 1, "workspace": 2, "stages": 1}}


def xor_data(seed: int, n: int = 8) -> SequenceDataset:
    return elman_xor(2, n_sequences=n, seed=seed)


def make_model(seed: int = 0) -> QRNN:
    return QRNN(SPEC, backend="statevector", seed=seed)


def config(out=None, **kw) -> TrainConfig:
    base = {"task": "elman-xor", "lr": 0.05, "batch_size": 3, "steps": 10, "eval_every": 4}
    base["backend"] = "statevector"
    base.update(kw)
    return TrainConfig(out=None if out is None else str(out), **base)


def without_seconds(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_a_few_steps_lower_the_loss():
    data = xor_data(0, n=16)
    model = make_model()
    before = evaluate(model, data)["loss"]
    summary = train(model, data, None, config(steps=25, eval_every=5), progress=False)
    after = evaluate(model, data)["loss"]
    assert after < before - 0.05
    assert summary["best_val"]["loss"] == pytest.approx(after)
    assert summary["steps"] == 25 and summary["stopped"] == "steps"


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


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    cfg = dict(steps=12, eval_every=4, lr_schedule="cosine")
    whole = make_model()
    train(whole, xor_data(0), xor_data(1), config(tmp_path / "whole", **cfg), progress=False)

    calls = {"n": 0}
    real_step = train_module._train_step

    def dying_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # killed at step 7: last checkpoint at step 4, metrics up to 6
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "_train_step", dying_step)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(make_model(), xor_data(0), xor_data(1), config(killed, **cfg), progress=False)
    assert max(r["step"] for r in read_metrics(killed)) == 6
    assert load_checkpoint(killed / "last.pt")["state"]["step"] == 4
    monkeypatch.setattr(train_module, "_train_step", real_step)

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
    assert summary["stopped"] == "target" and summary["steps"] < 400
    assert evaluate(model, data)["accuracy"] >= 0.5


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
    assert summary["steps"] == 2 and np.isfinite(summary["best_val"]["loss"])


def test_evaluate_reports_label_accuracy_from_the_exact_label_distribution():
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2, size=(6, 5))
    labels = words[:, -2] * 2 + words[:, -1]
    mask = np.zeros((6, 4), dtype=bool)
    mask[:, -2:] = True
    data = SequenceDataset(words, mask, io=1, labels=labels, n_label_steps=2)
    model = QRNN(SPEC, backend="statevector", init=rng.normal(0, 1.5, 22))
    predicted = model.label_distribution(torch.from_numpy(words), 2).argmax(-1).numpy()
    assert evaluate(model, data)["accuracy"] == pytest.approx(np.mean(predicted == labels))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"optimiser": "adagrad"}, "optimiser"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"loss": "mse"}, "loss"),
        ({"steps": None}, "exactly one"),
        ({"epochs": 2}, "exactly one"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"dtype": "float16"}, "dtype"),
        ({"backend": "auto"}, "backend"),
        ({"overhead_penalty": -0.1}, "overhead_penalty"),
        ({"overhead_penalty": float("nan")}, "overhead_penalty"),
        ({"overhead_penalty_scope": "neurons"}, "overhead_penalty_scope"),
        ({"seed": 2**63}, "seed"),
        ({"seed": -1}, "seed"),
        ({"seed": "1"}, "seed"),
    ],
)
def test_bad_configs_are_refused_before_training(changes, match):
    with pytest.raises(TrainError, match=match):
        train(make_model(), xor_data(0), None, config(**changes), progress=False)


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
    assert model.theta.dtype == torch.float32 and np.isfinite(summary["best_val"]["loss"])


def test_a_run_saved_before_a_config_field_existed_resumes_with_its_default(tmp_path):
    run = tmp_path / "run"
    train(make_model(), xor_data(0), None, config(run, steps=4), progress=False)
    ckpt = torch.load(run / "last.pt", weights_only=False)
    del ckpt["config"]["lr_schedule"], ckpt["config"]["backend_options"]
    torch.save(ckpt, run / "last.pt")
    summary = train(make_model(), xor_data(0), None, config(run, steps=6), resume=True,
                    progress=False)  # fmt: skip
    assert summary["steps"] == 6


def test_a_truncating_backend_reports_its_discarded_weight_in_the_metrics(tmp_path):
    data = xor_data(0, n=6)
    init = np.random.default_rng(1).normal(0, 1.5, 22)
    capped = QRNN(SPEC, backend="mps", backend_options={"max_bond": 1}, init=init)
    direct = capped.run(torch.from_numpy(data.words)).discarded.sum(dim=1)
    assert float(direct.max()) > 1e-3  # the cap truncates this cell
    assert evaluate(capped, data)["discarded"] == pytest.approx(float(direct.max()))
    cfg = config(tmp_path / "mps", backend="mps", backend_options={"max_bond": 1}, steps=2)
    train(capped, data, data, cfg, progress=False)
    records = read_metrics(tmp_path / "mps" / "metrics.jsonl")
    assert all(r["discarded"] > 0 for r in records if r["split"] in ("train", "val"))
    exact = QRNN(SPEC, backend="statevector", init=init)
    assert "discarded" not in evaluate(exact, data)


def _neuron_success_log(model: QRNN, words: np.ndarray) -> np.ndarray:
    """Independent −log_norm per sequence: replay the run with dense numpy matrices, one
    neuron at a time (QRNN.md §2-3), summing −log of each success probability and each
    projection but the last (io 1, workspace 2, stages 1, degree 2, order 2, topology all)."""
    from itertools import combinations

    theta = model.theta.detach().numpy()
    spec = model.spec
    n, order, beta = 3, spec.neuron.order, spec.neuron.offset
    offset_index = [0]

    def take(k):
        out = theta[offset_index[0] : offset_index[0] + k]
        offset_index[0] += k
        return out

    def neuron_params(g):
        sources = [q for q in range(n) if q != g]
        subsets = [s for d in range(spec.neuron.degree + 1) for s in combinations(sources, d)]
        return subsets, take(len(subsets))

    def apply_neuron(psi, g, subsets, angles):
        out = np.zeros_like(psi)
        for x in range(2**n):
            bits = [(x >> (n - 1 - q)) & 1 for q in range(n)]
            if bits[g]:
                continue
            eta = (
                beta
                + sum(a for s, a in zip(subsets, angles, strict=True) if all(bits[i] for i in s))
            ) / 2
            c, s_ = np.cos(eta) ** (2**order), np.sin(eta) ** (2**order)
            y = x | (1 << (n - 1 - g))
            a0, a1 = psi[:, x], psi[:, y]
            out[:, x], out[:, y] = c * a0 - s_ * a1, s_ * a0 + c * a1
        norm2 = (out**2).sum(1)
        return out / np.sqrt(norm2)[:, None], -np.log(norm2)

    def ry(psi, q, a):
        out = psi.copy()
        for x in range(2**n):
            if (x >> (n - 1 - q)) & 1:
                continue
            y = x | (1 << (n - 1 - q))
            c, s_ = np.cos(a / 2), np.sin(a / 2)
            out[:, x], out[:, y] = c * psi[:, x] - s_ * psi[:, y], s_ * psi[:, x] + c * psi[:, y]
        return out

    batch, length = words.shape
    psi = np.zeros((batch, 2**n))
    psi[:, 0] = 1.0
    total = np.zeros(batch)
    layout = []
    offset_index[0] = 0
    for g in (1, 2):
        layout.append(("neuron", g, *neuron_params(g)))
    for g in (1, 2):
        layout.append(("ry", g, take(1)[0]))
    for g in (1, 2):
        layout.append(("neuron", g, *neuron_params(g)))
    out_neuron = ("neuron", 0, *neuron_params(0))
    for t in range(length - 1):
        flip = words[:, t] == 1
        psi[flip] = psi[flip][:, np.arange(2**n) ^ 4]
        for item in layout:
            if item[0] == "ry":
                psi = ry(psi, item[1], item[2])
            else:
                psi, cost = apply_neuron(psi, *item[1:])
                total += cost
        psi[flip] = psi[flip][:, np.arange(2**n) ^ 4]
        psi, cost = apply_neuron(psi, *out_neuron[1:])
        total += cost
        if t == length - 2:  # the last readout is not projected: nothing follows it
            break
        keep = ((np.arange(2**n) >> 2) & 1)[None, :] == words[:, t + 1, None]
        psi = np.where(keep, psi, 0.0)
        p = (psi**2).sum(1)
        total -= np.log(p)
        psi = psi / np.sqrt(p)[:, None]
        psi[words[:, t + 1] == 1] = psi[words[:, t + 1] == 1][:, np.arange(2**n) ^ 4]
    return total


def test_log_overhead_matches_a_dense_replay_of_every_neuron_and_projection():
    data = xor_data(0, n=4)
    model = QRNN(SPEC, backend="statevector", init=np.random.default_rng(3).normal(0, 0.7, 22))
    expected = _neuron_success_log(model, data.words)
    steps = data.words.shape[1] - 1
    assert evaluate(model, data)["log_overhead"] == pytest.approx(expected.mean() / steps)


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

    def replay(theta):  # the dense replay: an independent forward computation
        return _neuron_success_log(QRNN(SPEC, init=theta), data.words).mean() / steps

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
        results[penalty] = train(make_model(), data, None, cfg, progress=False)["best_val"][metric]
    assert results[1.0] < results[0.0] - 0.05


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (42.4, "42s"), (185, "3m05s"), (3720, "1h02m")]
)
def test_durations_read_as_hours_minutes_seconds(seconds, text):
    assert train_module._duration(seconds) == text


def test_log_lines_estimate_the_time_left(capsys):
    train(make_model(), xor_data(0), None, config(steps=8, eval_every=4), progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "step 4/8" in line]
    assert len(lines) == 1 and "left" in lines[0] and "log-overhead" in lines[0]
    elapsed = float(lines[0].split("| ")[-1].split("s,")[0])
    assert lines[0].endswith(f"about {train_module._duration(elapsed)} left")


def _strict_records(path):
    """Every line of a JSON-lines file parsed by a parser that refuses NaN/Infinity."""

    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    text = path.read_text(encoding="utf-8")
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def test_a_huge_learning_rate_stops_the_run_with_a_clear_error(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(train_module.NonFiniteError, match="step 1: the parameters after the step"):
        train(make_model(), xor_data(0), None, config(out, lr=1e308), progress=False)
    assert not (out / "summary.json").exists()
    _strict_records(out / "metrics.jsonl")


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_finite_checkpoint(
    tmp_path, monkeypatch
):
    calls = {"n": 0}
    real_losses = train_module.step_losses

    def losses(probs, scored, kind):
        out = real_losses(probs, scored, kind)
        calls["n"] += probs.requires_grad  # training steps only, not validations
        return out * float("nan") if calls["n"] == 5 and probs.requires_grad else out

    monkeypatch.setattr(train_module, "step_losses", losses)
    out = tmp_path / "run"
    with pytest.raises(train_module.NonFiniteError, match="step 5: the loss: not finite") as info:
        train(make_model(), xor_data(0), None, config(out, eval_every=2), progress=False)
    assert "last.pt keeps the last finite checkpoint" in str(info.value)
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["state"]["step"] == 4 and torch.isfinite(ckpt["model"]["theta"]).all()
    records = _strict_records(out / "metrics.jsonl")
    assert all(np.isfinite(r["loss"]) for r in records)
    monkeypatch.setattr(train_module, "step_losses", real_losses)
    model = make_model()
    train(model, xor_data(0), None, config(out, eval_every=2), resume=True, progress=False)
    assert [r["step"] for r in read_metrics(out) if r["split"] == "train"] == list(range(1, 11))


def test_resume_needs_a_checkpoint_overwrite_replaces_and_a_held_run_is_refused(tmp_path):
    from qrnn_tn.rundir import RunDir, RunDirError

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

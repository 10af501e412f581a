"""The long-sequence and gradient studies, and the reproduction table."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks import reproduce
from qrnn_tn import analysis
from qrnn_tn.model import QRNN, step_losses
from qrnn_tn.tasks import build_datasets, default_spec

SMALL_CELL = {"cell": {"io": 3, "workspace": 1, "stages": 1}, "neuron": {"degree": 2}}


@pytest.mark.parametrize(("kind", "hidden"), [("rnn", 22), ("lstm", 10)])
def test_classical_baselines_have_about_888_parameters(kind: str, hidden: int) -> None:
    assert analysis.hidden_size(kind) == hidden
    model = analysis.make_model(kind, seed=0)
    counted = sum(p.numel() for p in model.parameters())
    assert counted == analysis.classical_parameters(kind, 3, hidden)
    assert abs(counted - analysis.PAPER_PARAMETERS) <= 0.05 * analysis.PAPER_PARAMETERS


def test_long_sequence_study_writes_json_png_and_resumes(tmp_path, monkeypatch) -> None:
    kwargs = dict(
        lengths=[4, 6],
        seeds=1,
        max_steps=5,
        threshold=1e-3,
        out_dir=tmp_path,
        progress=False,
        cell=SMALL_CELL,
        n_train=16,
        n_val=8,
        eval_every=5,
    )
    first = analysis.long_sequence_study(**kwargs)
    data = json.loads((tmp_path / "long_sequence.json").read_text())
    assert data == json.loads(json.dumps(first))
    assert len(data["runs"]) == 6
    for name in ("long_sequence.png", "long_sequence_loss.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for model in analysis.MODELS:
        rows = data["summary"][model]
        assert [r["length"] for r in rows] == [4, 6]
        assert all(1 <= r["min"] <= r["median"] <= r["max"] <= 5 for r in rows)
        assert [r["length"] for r in data["loss_summary"][model]] == [4, 6]
    for run in data["runs"]:
        assert run["settings"]["lr"] == analysis.LEARNING_RATES[run["model"]]
        assert run["best_val_loss"] <= run["val_loss"]
    assert data["parameters"]["rnn"] == data["parameters"]["lstm"] == 888

    calls = []
    real_fit = analysis.fit
    monkeypatch.setattr(analysis, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    second = analysis.long_sequence_study(**kwargs)
    assert calls == []
    assert second["runs"] == first["runs"]


def test_one_learning_rate_applies_to_every_model(tmp_path) -> None:
    data = analysis.long_sequence_study(
        [4], 1, max_steps=2, out_dir=tmp_path, progress=False, cell=SMALL_CELL, lr=0.02,
        n_train=4, n_val=4, eval_every=2,
    )  # fmt: skip
    assert {run["settings"]["lr"] for run in data["runs"]} == {0.02}


def test_default_dna_cell_can_store_and_recall_the_marked_base() -> None:
    # Input neurons hold the workspace (eta = 0) except on the mark, where h0, h1 flip to the
    # base bits (eta = pi/2); output neurons copy h0, h1 onto the base lanes, a little
    # softened so the unscored intermediate tokens keep a nonzero probability.
    spec = default_spec("dna")
    assert (spec.io, spec.workspace, spec.stages, spec.neuron.degree) == (3, 3, 0, 2)
    model = QRNN(spec, init=torch.zeros(spec.n_parameters()))
    index = {name: i for i, name in enumerate(model.slot_names)}
    theta = torch.zeros(model.n_params, dtype=torch.float64)
    soft = 0.6
    for name, i in index.items():
        if name.endswith(".[]"):
            theta[i] = -math.pi / 2 + (soft / 2 if name.startswith("out.") else 0.0)
    theta[index["in.h0.[0,1]"]] = theta[index["in.h1.[0,2]"]] = math.pi
    theta[index["out.o1.[3]"]] = theta[index["out.o2.[4]"]] = math.pi - soft
    val = build_datasets("dna", 0, length=10, n_train=1, n_val=32).val
    words, targets = torch.from_numpy(val.words), torch.from_numpy(val.targets)
    with torch.no_grad():
        last = step_losses(QRNN(spec, init=theta)(words, targets), targets)[:, -1]
    assert float(last.max()) < 1e-5


def test_gradient_study_gives_finite_norms(tmp_path) -> None:
    data = analysis.gradient_study([4, 6], 2, tmp_path, cell=SMALL_CELL, batch_size=4)
    assert len(data["runs"]) == 2 * 2 * 3
    assert all(math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in data["runs"])
    assert (tmp_path / "gradient.json").is_file() and (tmp_path / "gradient.png").is_file()


def test_reproduce_table_formats_done_and_skipped_rows() -> None:
    done = {
        "task": "elman-xor",
        "cell": "1/3/1/2",
        "parameters": 52,
        "steps": 75,
        "total_steps": 150,
        "stopped": "target",
        "seconds": 5.12,
        "accuracy": 0.9876,
        "loss": 0.01423,
        "paper": "learns xor",
    }
    skipped = {
        "task": "mnist-pixel",
        "cell": "2/8/2/2",
        "parameters": 1212,
        "skipped": "MNIST IDX files not found: put them in DIR",
        "paper": "99.2 %",
    }
    lines = reproduce.format_table([done, skipped]).splitlines()
    assert len(lines) == 4 and lines[0].count("|") == lines[2].count("|") == 10
    assert lines[2] == (
        "| elman-xor | 1/3/1/2 | 52 | 75/150 (target) | 5.1 | 98.8 % | 0.0142 | — | learns xor |"
    )
    assert "skipped: MNIST IDX files not found: put them in DIR" in lines[3]
    assert lines[3].count("|") == 10
    with_overhead = {**done, "overhead_init": 4.36, "overhead": 129.3}
    assert "| 4.36 → 129 |" in reproduce.format_table([with_overhead])

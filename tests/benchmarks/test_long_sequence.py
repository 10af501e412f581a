"""The long-sequence and gradient studies (classical baselines, the library's loop)."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import long_sequence as analysis

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


def test_gradient_study_gives_finite_norms(tmp_path) -> None:
    data = analysis.gradient_study([4, 6], 2, tmp_path, cell=SMALL_CELL, batch_size=4)
    assert len(data["runs"]) == 2 * 2 * 3
    assert all(math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in data["runs"])
    assert (tmp_path / "gradient.json").is_file() and (tmp_path / "gradient.png").is_file()

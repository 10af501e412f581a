"""Figures: files exist, are PNGs of the promised pixel size, and a run gets all of them."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes

from qrnn_tn.model import QRNN
from qrnn_tn.plots import (
    CURVES_SIZE,
    DISTRIBUTION_SIZE,
    DPI,
    SAMPLES_SIZE,
    plot_curves,
    plot_distributions,
    plot_run,
    plot_samples,
)
from qrnn_tn.tasks import build_datasets, default_config
from qrnn_tn.training import train


def assert_png(path, size):
    assert path.is_file() and path.stat().st_size > 1000
    image = mpimg.imread(path)
    width, height = size
    assert image.shape[:2] == (round(height * DPI), round(width * DPI))
    assert image[..., :3].std() > 0  # not a blank canvas


@pytest.fixture(scope="module")
def model():
    return QRNN({"cell": {"io": 2, "workspace": 1}}, backend="statevector", seed=0)


def test_curves_from_records(tmp_path):
    records = [
        {"split": "train", "step": s, "loss": 1 / s, "accuracy": 0.5, "overhead": 2.0}
        for s in range(1, 11)
    ]
    records += [{"split": "val", "step": 10, "loss": 0.2, "accuracy": 0.9, "overhead": 1.5}]
    assert_png(plot_curves(records, tmp_path / "curves.png"), CURVES_SIZE)
    with pytest.raises(ValueError, match="no train or validation records"):
        plot_curves([], tmp_path / "empty.png")
    truncated = [dict(r, discarded=0.0 if r["step"] < 5 else 1e-9) for r in records]
    width, height = CURVES_SIZE
    assert_png(plot_curves(truncated, tmp_path / "mps.png"), (width * 4 / 3, height))


def test_distribution_heat_map(tmp_path, model):
    words = np.array([0, 3, 1, 2, 2, 0])
    mask = np.array([False, True, False, True, True])
    path = plot_distributions(model, words, tmp_path / "dist.png", mask=mask)
    assert_png(path, DISTRIBUTION_SIZE)


def test_samples_grid(tmp_path, model):
    prompts = torch.tensor([[0], [1], [2]])
    path = plot_samples(model, prompts, 6, tmp_path / "samples.png", torch.Generator())
    assert_png(path, SAMPLES_SIZE)


def test_plot_run_writes_every_figure_next_to_the_metrics(tmp_path):
    options = {"n_triples": 2, "n_train": 6, "n_val": 4, "n_test": 4}
    data = build_datasets("elman-xor", seed=0, **options)
    config = default_config(
        "elman-xor", steps=3, eval_every=3, out=str(tmp_path), backend="statevector"
    )
    config.task_options = options
    spec = {"cell": {"io": 1, "workspace": 1}, "neuron": {"degree": 1}}
    train(QRNN(spec, backend="statevector"), data.train, data.val, config, progress=False)
    paths = plot_run(tmp_path)
    assert set(paths) == {"curves", "distributions", "samples"}
    for name, size in (
        ("curves", CURVES_SIZE),
        ("distributions", DISTRIBUTION_SIZE),
        ("samples", SAMPLES_SIZE),
    ):
        assert paths[name] == tmp_path / f"{name}.png"
        assert_png(paths[name], size)


def test_plot_of_a_run_without_metrics_is_a_clear_error(tmp_path, capsys):
    from qrnn_tn.cli import main

    (tmp_path / "metrics.jsonl").write_text("")
    assert main(["plot", str(tmp_path)]) == 2
    assert "no train or validation records" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing")]) == 2


def test_curves_skip_non_finite_points(tmp_path, monkeypatch):
    """Every line drawn holds exactly the records whose step and value are finite numbers."""
    drawn = []
    real_plot = Axes.plot
    monkeypatch.setattr(
        Axes,
        "plot",
        lambda ax, x, y, *a, **k: (
            drawn.append((ax, k["label"], x, y)) or real_plot(ax, x, y, *a, **k)
        ),
    )
    records = [
        {"split": "train", "step": 1, "loss": 0.7, "accuracy": 0.5, "overhead": 1.2},
        {"split": "train", "step": 2, "loss": None, "accuracy": float("nan"), "overhead": 1.1},
        {"split": "train", "step": 3, "loss": float("inf"), "accuracy": 0.6, "overhead": 1.0},
        {"split": "train", "step": 4, "loss": 0.5, "accuracy": 0.7, "overhead": "x"},
        {"split": "val", "step": float("nan"), "loss": 0.6, "accuracy": 0.6, "overhead": 1.0},
        {"split": "val", "step": 4, "loss": 0.4, "accuracy": 0.8, "overhead": -float("inf")},
    ]
    assert_png(plot_curves(records, tmp_path / "curves.png"), CURVES_SIZE)
    lines = {(ax.get_title(), label): (list(x), list(y)) for ax, label, x, y in drawn}
    overhead = "postselection overhead (mean 1/p)"
    assert lines == {
        ("loss", "train batch"): ([1, 4], [0.7, 0.5]),
        ("loss", "validation"): ([4], [0.4]),
        ("accuracy", "train batch"): ([1, 3, 4], [0.5, 0.6, 0.7]),
        ("accuracy", "validation"): ([4], [0.8]),
        (overhead, "train batch"): ([1, 2, 3], [1.2, 1.1, 1.0]),
    }

"""Evaluation: label accuracy, discarded weight and log-overhead against independent sums."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qrnn_tn.data import SequenceDataset
from qrnn_tn.model import QRNN
from qrnn_tn.training import evaluate, read_metrics, train
from tests.qrnn_tn.training.common import SPEC, config, dense_neg_log_norm, xor_data


def test_evaluate_reports_label_accuracy_from_the_exact_label_distribution():
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2, size=(6, 5))
    labels = words[:, -2] * 2 + words[:, -1]
    mask = np.zeros((6, 4), dtype=bool)
    mask[:, -2:] = True
    data = SequenceDataset(words, mask, io=1, labels=labels, n_label_steps=2)
    model = QRNN(SPEC, backend="statevector", init=rng.normal(0, 1.5, 22))
    predicted = model.label_distribution(torch.from_numpy(words), 2).argmax(-1).numpy()
    assert evaluate(model, data).accuracy == pytest.approx(np.mean(predicted == labels))


def test_a_truncating_backend_reports_its_discarded_weight_in_the_metrics(tmp_path):
    data = xor_data(0, n=6)
    init = np.random.default_rng(1).normal(0, 1.5, 22)
    capped = QRNN(SPEC, backend="mps", backend_options={"max_bond": 1}, init=init)
    direct = capped.run(torch.from_numpy(data.words)).discarded.sum(dim=1)
    assert float(direct.max()) > 1e-3  # the cap truncates this cell
    assert evaluate(capped, data).discarded == pytest.approx(float(direct.max()))
    cfg = config(tmp_path / "mps", backend="mps", backend_options={"max_bond": 1}, steps=2)
    train(capped, data, data, cfg, progress=False)
    records = read_metrics(tmp_path / "mps" / "metrics.jsonl")
    assert all(r["discarded"] > 0 for r in records if r["split"] in ("train", "val"))
    exact = QRNN(SPEC, backend="statevector", init=init)
    assert evaluate(exact, data).discarded is None


def test_log_overhead_matches_the_dense_reference_of_every_neuron_and_projection():
    data = xor_data(0, n=4)
    model = QRNN(SPEC, backend="statevector", init=np.random.default_rng(3).normal(0, 0.7, 22))
    expected = dense_neg_log_norm(model, data.words)
    steps = data.words.shape[1] - 1
    assert evaluate(model, data).log_overhead == pytest.approx(expected.mean() / steps)

"""Classification figures: the files exist and the numbers drawn are those of the model.

Every number is checked against a computation made here through the public API: the
confusion counts against a direct count of argmax predictions, the readout against the
teacher-forced distributions (one label token) or a run of the cut sequence (two tokens).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qrnn_tn.model import QRNN
from qrnn_tn.plots import plot_run
from qrnn_tn.plots_classification import (
    CONFUSION_SIZE,
    EMBEDDING_SIZE,
    READOUT_SIZE,
    confusion_counts,
    readout_steps,
)
from qrnn_tn.tasks import build_datasets, default_config
from qrnn_tn.training import load_run, train
from tests.qrnn_tn.test_plots import assert_png


def _train_run(out, task, options, spec):
    data = build_datasets(task, seed=0, **options)
    config = default_config(
        task, steps=20, eval_every=10, batch_size=32, lr=0.05, out=str(out), backend="statevector"
    )
    config.task_options = options
    train(QRNN(spec, backend="statevector"), data.train, data.val, config, progress=False)
    return data


def _check_confusion(record, model, test):
    n = min(len(test), record["test_images"])
    probs = model.label_distribution(test.words[:n], test.n_label_steps).detach().numpy()
    predicted = probs.argmax(-1)
    assert record["predicted"] == predicted.tolist()
    n_classes = len(record["classes"])
    direct = np.zeros((n_classes, n_classes + 1), dtype=int)
    for y, p in zip(test.labels[:n], predicted, strict=True):
        direct[y, min(p, n_classes)] += 1
    assert np.array_equal(record["confusion"], direct)
    assert np.array_equal(np.sum(record["confusion"], axis=1), np.bincount(test.labels[:n]))
    assert record["accuracy"] == pytest.approx(np.mean(predicted == test.labels[:n]))


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory):
    """Digits 0-4 at 3x3 pixels: 9 input tokens, then two label tokens (5 classes, io 2)."""
    out = tmp_path_factory.mktemp("pixel")
    options = {"digits": "0,1,2,3,4", "size": 3}
    spec = {"cell": {"io": 2, "workspace": 1}, "neuron": {"degree": 1}}
    data = _train_run(out, "digits-pixel", options, spec)
    return out, plot_run(out), data.test


def test_pixel_run_gets_the_classification_figures(pixel_run):
    out, paths, test = pixel_run
    assert {"confusion", "readout", "classification"} <= set(paths)
    assert "embedding" not in paths
    assert_png(paths["confusion"], CONFUSION_SIZE)
    assert_png(paths["readout"], READOUT_SIZE)
    record = json.loads(paths["classification"].read_text())
    model, _ = load_run(out, "best")
    assert record["classes"] == [0, 1, 2, 3, 4] and record["test_images"] == min(300, len(test))
    _check_confusion(record, model, test)


def test_readout_with_two_label_tokens_is_the_cut_sequence_label_distribution(pixel_run):
    out, paths, test = pixel_run
    record = json.loads(paths["classification"].read_text())["readout"]
    model, _ = load_run(out, "best")
    assert record["steps"] == list(range(1, 10))
    probs = np.array(record["probs"])
    assert probs.shape == (len(record["rows"]), 9, 16)
    for i, row in enumerate(record["rows"]):
        words = test.words[row]
        for j, n in enumerate(record["steps"]):
            # p(v1 v2) = p_{n-1}(v1) * p_n(v2 | v1): two teacher-forced runs per v1, by hand
            expected = np.zeros(16)
            for v1 in range(4):
                cut = torch.tensor([[*words[:n], v1, 0]])
                p = model(cut)[0].detach().numpy()
                expected[4 * v1 : 4 * v1 + 4] = p[n - 1, v1] * p[n]
            assert np.allclose(probs[i, j], expected, atol=1e-10)
        full = model.label_distribution(test.words[row : row + 1], 2)[0].detach().numpy()
        assert np.allclose(probs[i, -1], full, atol=1e-10)  # the last cut is the answer


@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory):
    """Digits 0-2 by t-SNE, 3 bits per coordinate: one 2-bit label token."""
    out = tmp_path_factory.mktemp("reduced")
    options = {"digits": "0,1,2", "bits": 3}
    spec = {"cell": {"io": 2, "workspace": 1}, "neuron": {"degree": 1}}
    data = _train_run(out, "digits-reduced", options, spec)
    return out, plot_run(out), data


def test_reduced_run_draws_the_embedding_of_the_test_points(reduced_run):
    out, paths, data = reduced_run
    assert_png(paths["embedding"], EMBEDDING_SIZE)
    assert_png(paths["readout"], READOUT_SIZE)
    record = json.loads(paths["classification"].read_text())
    model, _ = load_run(out, "best")
    _check_confusion(record, model, data.test)
    n = record["test_images"]
    assert np.allclose(record["embedding"], data.test.embedding[:n])
    # the codes are the embedding cut into 2^3 cells of the training range, per coordinate
    low, high = data.train.embedding.min(0), data.train.embedding.max(0)
    cells = np.clip(np.floor((data.test.embedding - low) / (high - low) * 8), 0, 7).astype(int)
    bits = (data.test.words[:, :3, None] >> np.array([1, 0])) & 1  # [N, step, coordinate]
    assert np.array_equal(cells, (bits * np.array([4, 2, 1])[None, :, None]).sum(1))


def test_readout_with_one_label_token_is_the_teacher_forced_step(reduced_run):
    out, paths, data = reduced_run
    record = json.loads(paths["classification"].read_text())["readout"]
    model, _ = load_run(out, "best")
    for i, row in enumerate(record["rows"]):
        p = model(data.test.words[row : row + 1])[0].detach().numpy()  # [3 steps, 4 words]
        assert np.allclose(np.array(record["probs"])[i], p[np.array(record["steps"]) - 1])


def test_confusion_counts_put_label_words_beyond_the_classes_in_the_last_column():
    counts = confusion_counts(np.array([0, 0, 1, 2, 2]), np.array([0, 3, 1, 7, 1]), 3)
    assert counts.tolist() == [[1, 0, 0, 1], [0, 1, 0, 0], [0, 1, 0, 1]]


def test_long_sequences_are_subsampled_and_keep_the_last_step():
    assert readout_steps(5).tolist() == [1, 2, 3, 4, 5]
    steps = readout_steps(100, 10)
    assert len(steps) == 10 and steps[0] == 1 and steps[-1] == 100
    assert np.all(np.diff(steps) > 0)

"""The ceiling script's pieces against hand-made cases and a brute-force optimum."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks.reduced_ceiling import Embedding, code_bits, gray, lookup_ceiling


def test_lookup_is_the_best_any_function_of_the_codes_does_on_its_own_data():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, size=(40, 1))
    labels = rng.integers(0, 2, size=40)
    best = max(  # every function from the 3 codes to the 2 labels
        np.mean(np.array(f)[codes[:, 0]] == labels) for f in itertools.product(range(2), repeat=3)
    )
    assert lookup_ceiling(codes, labels, codes, labels) == pytest.approx(best)


def test_unseen_codes_get_the_most_frequent_training_label():
    train = np.array([[0, 0], [0, 0], [1, 1]])
    assert (
        lookup_ceiling(train, np.array([5, 5, 7]), np.array([[1, 1], [2, 2]]), np.array([7, 5]))
        == 1.0
    )


def test_gray_code_neighbours_differ_in_one_bit():
    values = gray(np.arange(16))
    assert sorted(values.tolist()) == list(range(16))
    assert all(bin(a ^ b).count("1") == 1 for a, b in zip(values[:-1], values[1:], strict=True))
    assert code_bits(np.array([[5, 2]]), 3).tolist() == [[1, 0, 1, 0, 1, 0]]


def test_embedding_names_parse():
    assert Embedding.parse("tsne:2:50") == Embedding("tsne", 2, 50.0)
    assert Embedding.parse("umap:3") == Embedding("umap", 3)
    with pytest.raises(ValueError, match="method:dims"):
        Embedding.parse("pca:2")

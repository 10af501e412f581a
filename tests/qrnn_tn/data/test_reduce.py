import importlib.util
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from qrnn_tn.data import (
    DataError,
    ReducedEncoder,
    code_sequences,
    reduced_dataset,
    reduced_splits,
)
from qrnn_tn.tasks import build_datasets

N_TRAIN = 240


@pytest.fixture(scope="module")
def digits():
    bunch = load_digits()
    return bunch.images[: N_TRAIN + 60], bunch.target[: N_TRAIN + 60]


@pytest.fixture(scope="module")
def fitted(digits):
    images = digits[0][:N_TRAIN]
    encoder = ReducedEncoder(n_components=2, bits=3, seed=0)
    codes = encoder.fit_transform(images)
    return encoder, codes, images


def test_code_sequences_hand_cases():
    # coordinates 0b10 and 0b01; class 9 of 10 -> two 2-bit label tokens 10 01
    ds = code_sequences(np.array([[2, 1]]), 2, np.array([9]), 10)
    assert ds.io == 2 and ds.words.tolist() == [[0b10, 0b01, 0b10, 0b01]]
    assert ds.mask.tolist() == [[False, True, True]] and ds.n_label_steps == 2
    # three coordinates 101, 000, 111: step b holds bit b of each, coordinate j on lane j
    ds = code_sequences(np.array([[5, 0, 7]]), 3, np.array([2]), 4)
    assert ds.words[0, :3].tolist() == [0b101, 0b001, 0b101]
    assert ds.words[0, 3:].tolist() == [2] and ds.labels.tolist() == [2]
    with pytest.raises(DataError, match="codes"):
        code_sequences(np.array([[8, 0]]), 3, np.array([0]), 2)


def test_train_codes_in_range_and_span_the_grid(fitted):
    encoder, codes, _ = fitted
    assert codes.shape == (N_TRAIN, 2) and codes.dtype == np.int64
    assert codes.min() == 0 and codes.max() == 7  # the training range maps onto [0, 1]
    for j in range(2):
        assert set(codes[:, j].tolist()) >= {0, 7}


def test_quantise_uses_training_range(fitted):
    encoder, _, _ = fitted
    lo, hi = encoder.low_, encoder.high_
    pts = np.stack([lo, hi, lo - 10, hi + 10, lo + (hi - lo) * 0.3])
    assert encoder.quantise(pts).tolist() == [[0, 0], [7, 7], [0, 0], [7, 7], [2, 2]]


def test_test_points_do_not_change_the_fit(fitted, digits):
    encoder, codes, train_images = fitted
    lo, hi = encoder.low_.copy(), encoder.high_.copy()
    pca = encoder.pca_.components_.copy()
    test_codes = encoder.transform(np.concatenate([digits[0][N_TRAIN:], 50 * digits[0][:5]]))
    assert test_codes.min() >= 0 and test_codes.max() <= 7
    assert np.array_equal(lo, encoder.low_) and np.array_equal(hi, encoder.high_)
    assert np.array_equal(pca, encoder.pca_.components_)
    # k-NN placement returns the fitted t-SNE position for a training point (distance 0)
    again = encoder.transform(train_images)
    assert (again == codes).all(axis=1).mean() > 0.98


def test_reduced_dataset_fits_on_train_only(digits):
    images, labels = digits
    train_x, train_y = images[:N_TRAIN], labels[:N_TRAIN]
    classes = list(range(10))
    kw = {"n_components": 2, "bits": 3, "seed": 0}
    a_train, a_test = reduced_dataset(
        train_x, train_y, classes, test=(images[N_TRAIN:], labels[N_TRAIN:]), **kw
    )
    b_train, _ = reduced_dataset(train_x, train_y, classes, test=(images[:3], labels[:3]), **kw)
    assert np.array_equal(a_train.words, b_train.words)  # independent of the test set
    for ds, n in ((a_train, N_TRAIN), (a_test, len(images) - N_TRAIN)):
        assert ds.words.shape == (n, 3 + 2)  # 3 bit steps + two 2-bit label tokens
        assert ds.words.min() >= 0 and ds.words.max() < 4 and ds.io == 2
        assert ds.mask.tolist() == [[False, False, True, True]] * n
    assert a_test.labels.tolist() == labels[N_TRAIN:].tolist()


def test_reduced_dataset_internal_split_and_four_components(digits):
    images, labels = digits[0][:120], digits[1][:120]
    train, test = reduced_dataset(images, labels, (0, 1, 2), n_components=4, bits=2, seed=1)
    assert len(train) + len(test) == np.isin(labels, (0, 1, 2)).sum()
    assert train.io == 4 and train.n_label_steps == 1 and train.words.shape[1] == 3
    assert set(test.labels.tolist()) == {0, 1, 2}


def test_umap_missing_gives_install_hint_before_any_fitting(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` now raises ImportError
    with pytest.raises(DataError, match=r"pip install 'qrnn-tn\[umap\]'.*method='tsne'"):
        ReducedEncoder(method="umap")
    with pytest.raises(DataError, match="umap-learn"):
        build_datasets("digits-reduced", 0, method="umap")


@pytest.mark.skipif(importlib.util.find_spec("umap") is None, reason="needs umap-learn")
def test_umap_places_test_points_by_its_transform(digits):
    images, labels = digits[0][:150], digits[1][:150]
    encoder = ReducedEncoder(2, 4, "umap", seed=0)
    codes = encoder.fit_transform(images[:100])
    assert codes.shape == (100, 2) and codes.min() >= 0 and codes.max() <= 15
    placed = encoder.embed(images[100:])
    assert np.array_equal(encoder.transform(images[100:]), encoder.quantise(placed))
    # a test image placed among the training images of its class more often than not
    nearest = np.linalg.norm(placed[:, None] - encoder.embedding_[None], axis=-1).argmin(1)
    assert np.mean(labels[:100][nearest] == labels[100:]) > 0.8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"bits": 0}, "bits"), ({"method": "pca"}, "method"), ({"n_components": 0}, "n_comp")],
)
def test_encoder_argument_errors(kwargs, match):
    with pytest.raises(DataError, match=match):
        ReducedEncoder(**kwargs)


def test_transform_before_fit():
    with pytest.raises(DataError, match="not fitted"):
        ReducedEncoder().transform(np.zeros((2, 4)))


def _codes(ds, bits=3):
    """The integer code of each coordinate, read back from the bit tokens (io = 2)."""
    steps = (ds.words[:, :bits, None] >> np.array([1, 0])) & 1  # [N, bit, coordinate]
    return (steps << np.arange(bits - 1, -1, -1)[None, :, None]).sum(1)


def test_reduced_splits_hold_the_validation_images_out_of_the_fit(digits):
    images, labels = digits
    classes = (0, 1, 2)
    keep = np.isin(labels, classes)
    images, labels = images[keep], labels[keep]
    train, val, test = reduced_splits(
        images[:80], labels[:80], (images[80:], labels[80:]), classes,
        val_fraction=0.25, seed=0, n_components=2, bits=3, n_neighbors=1,
    )  # fmt: skip
    assert len(train) + len(val) == 80 and len(test) == len(images) - 80
    y = labels[:80]
    fit, held = train_test_split(np.arange(80), test_size=0.25, random_state=0, stratify=y)
    fit, held = np.sort(fit), np.sort(held)
    assert val.labels.tolist() == labels[held].tolist()
    # an encoder fitted here on the training images alone gives the same codes, and places
    # the validation images as it places the test images: out of sample, without labels
    encoder = ReducedEncoder(2, 3, n_neighbors=1, seed=0)
    assert np.array_equal(encoder.fit_transform(images[fit]), _codes(train))
    assert np.array_equal(encoder.transform(images[held]), _codes(val))
    assert np.array_equal(encoder.transform(images[80:]), _codes(test))
    assert np.allclose(encoder.embed(images[80:]), test.embedding)
    with pytest.raises(DataError, match="too few"):
        reduced_splits(images[:4], labels[:4], (images[80:], labels[80:]), classes,
                       val_fraction=0.5)  # fmt: skip

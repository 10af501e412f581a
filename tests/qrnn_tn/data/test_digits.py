from collections import Counter

import numpy as np
import pytest
from sklearn.datasets import load_digits

from qrnn_tn.data import DataError, digits_pixel_dataset, digits_split


@pytest.fixture(scope="module")
def raw():
    bunch = load_digits()
    return bunch.images, bunch.target


def rows(images):
    return Counter(img.tobytes() for img in images)


def test_split_is_disjoint_complete_and_stratified(raw):
    images, target = raw
    keep = np.isin(target, (3, 6))
    tr_x, tr_y = digits_split((3, 6), "train", test_fraction=0.25, seed=0)
    te_x, te_y = digits_split((3, 6), "test", test_fraction=0.25, seed=0)
    assert len(tr_y) + len(te_y) == keep.sum()
    assert rows(tr_x) + rows(te_x) == rows(images[keep])
    assert set(tr_y.tolist()) == set(te_y.tolist()) == {3, 6}
    for digit in (3, 6):
        share = (te_y == digit).sum() / (target == digit).sum()
        assert share == pytest.approx(0.25, abs=0.02)


def test_split_determinism(raw):
    a = digits_split((0, 1), "test", seed=1)[0]
    b = digits_split((0, 1), "test", seed=1)[0]
    c = digits_split((0, 1), "test", seed=2)[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_encoding_matches_an_independent_binarisation():
    images, labels = digits_split((0, 1), "train", seed=0)
    ds = digits_pixel_dataset((0, 1), "train", seed=0)
    assert ds.io == 2 and ds.words.shape == (len(images), 65)
    on = images > 8
    for n in (0, 7, len(images) - 1):
        assert (ds.words[n, :64] >> 1).tolist() == on[n].ravel().tolist()
        assert (ds.words[n, :64] & 1).tolist() == on[n].T.ravel().tolist()
    assert ds.labels.tolist() == labels.tolist()  # (0, 1): class index equals the digit
    assert ds.mask[:, -1].all() and ds.mask.sum() == len(images)


def test_class_order_follows_digits_and_downscale():
    ds = digits_pixel_dataset((6, 3), "test", size=4)
    _, labels = digits_split((6, 3), "test")
    assert ds.words.shape == (len(labels), 17)
    assert ds.labels.tolist() == [0 if d == 6 else 1 for d in labels]


def test_bad_arguments():
    with pytest.raises(DataError, match="split"):
        digits_split((0, 1), "dev")
    with pytest.raises(DataError, match="test_fraction"):
        digits_split((0, 1), "test", test_fraction=1.5)

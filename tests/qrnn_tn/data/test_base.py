import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qrnn_tn.data import (
    DataError,
    SequenceDataset,
    decode_label,
    encode_label,
    label_tokens_needed,
)


def make(n=6, length=4, io=3, **kw):
    words = (np.arange(n * length, dtype=np.int64).reshape(n, length)) % 2**io
    mask = np.ones((n, length - 1), dtype=bool)
    return SequenceDataset(words, mask, io=io, **kw)


def numbered(n, io=6):
    """Dataset whose sequence i starts with token i, to identify sequences after shuffling."""
    words = np.stack([np.arange(n), np.zeros(n)], axis=1).astype(np.int64)
    return SequenceDataset(words, np.ones((n, 1), dtype=bool), io=io, name="num")


@pytest.mark.parametrize(
    ("n_classes", "io", "expected"),
    [
        (1, 1, 1),
        (2, 1, 1),
        (3, 1, 2),
        (2, 2, 1),
        (4, 2, 1),
        (5, 2, 2),
        (10, 2, 2),
        (10, 3, 2),
        (10, 4, 1),
        (16, 4, 1),
        (17, 4, 2),
    ],
)
def test_label_tokens_needed(n_classes, io, expected):
    assert label_tokens_needed(n_classes, io) == expected


def test_encode_label_hand_cases():
    assert encode_label(6, 2, 2) == [0b01, 0b10]
    assert encode_label(5, 3, 1) == [5]
    assert encode_label(1, 1, 3) == [0, 0, 1]
    assert decode_label([0b01, 0b10], 2) == 6


@given(st.integers(1, 4), st.integers(1, 4), st.data())
def test_label_round_trip(io, n_tokens, data):
    label = data.draw(st.integers(0, 2 ** (io * n_tokens) - 1))
    words = encode_label(label, io, n_tokens)
    assert len(words) == n_tokens
    assert all(0 <= w < 2**io for w in words)
    assert decode_label(words, io) == label
    # MSB first: the first word holds the highest bits
    assert words[0] == label >> (io * (n_tokens - 1))


def test_encode_label_out_of_range():
    with pytest.raises(DataError, match="does not fit"):
        encode_label(4, 2, 1)
    with pytest.raises(DataError, match="not an 2-bit word"):
        decode_label([4], 2)


def test_valid_dataset_basics():
    ds = make(n=5, length=7)
    assert len(ds) == 5 and ds.length == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.io = 4


@pytest.mark.parametrize(
    ("words", "mask", "io", "match"),
    [
        (np.zeros((2, 3), dtype=np.int32), np.ones((2, 2), bool), 1, "int64"),
        (np.zeros(3, dtype=np.int64), np.ones(2, bool), 1, r"\[N, L\]"),
        (np.zeros((2, 1), dtype=np.int64), np.ones((2, 0), bool), 1, "L >= 2"),
        (np.full((2, 3), 2, dtype=np.int64), np.ones((2, 2), bool), 1, "2\\*\\*io"),
        (np.full((2, 3), -1, dtype=np.int64), np.ones((2, 2), bool), 1, "2\\*\\*io"),
        (np.zeros((2, 3), dtype=np.int64), np.ones((2, 3), bool), 1, "mask"),
        (np.zeros((2, 3), dtype=np.int64), np.ones((2, 2), np.int64), 1, "mask"),
        (np.zeros((2, 3), dtype=np.int64), np.ones((2, 2), bool), 0, "io"),
    ],
)
def test_dataset_validation(words, mask, io, match):
    with pytest.raises(DataError, match=match):
        SequenceDataset(words, mask, io=io)


def test_label_validation():
    words = np.array([[0, 1, 2], [0, 3, 1]], dtype=np.int64)
    mask = np.array([[False, True], [False, True]])
    ok = SequenceDataset(words, mask, io=2, labels=np.array([2, 1]), n_label_steps=1)
    assert ok.labels.tolist() == [2, 1]
    # two label steps: tokens (1, 2) -> 6 and (3, 1) -> 13
    SequenceDataset(words, mask, io=2, labels=np.array([6, 13]), n_label_steps=2)
    with pytest.raises(DataError, match="disagree"):
        SequenceDataset(words, mask, io=2, labels=np.array([2, 2]), n_label_steps=1)
    with pytest.raises(DataError, match="labels is None"):
        SequenceDataset(words, mask, io=2, n_label_steps=1)
    with pytest.raises(DataError, match="n_label_steps"):
        SequenceDataset(words, mask, io=2, labels=np.array([2, 1]), n_label_steps=0)
    with pytest.raises(DataError, match="labels must be"):
        SequenceDataset(words, mask, io=2, labels=np.array([2, 1, 0]), n_label_steps=1)


def test_subset_indices_and_bool_mask():
    ds = numbered(6)
    assert ds.subset([4, 1]).words[:, 0].tolist() == [4, 1]
    picked = ds.subset(np.array([True, False, True, False, False, True]))
    assert picked.words[:, 0].tolist() == [0, 2, 5]
    assert len(ds.subset([])) == 0
    with pytest.raises(DataError, match="indices"):
        ds.subset([6])
    with pytest.raises(DataError, match="bool mask"):
        ds.subset(np.array([True, False]))


def test_subset_keeps_labels_aligned():
    words = np.array([[0, 1], [0, 0], [0, 1]], dtype=np.int64)
    ds = SequenceDataset(
        words, np.ones((3, 1), bool), io=1, labels=np.array([1, 0, 1]), n_label_steps=1
    )
    assert ds.subset([1, 2]).labels.tolist() == [0, 1]


def test_split_is_deterministic_disjoint_and_complete():
    ds = numbered(50)
    a = ds.split((0.8, 0.2), seed=3)
    b = ds.split((0.8, 0.2), seed=3)
    c = ds.split((0.8, 0.2), seed=4)
    assert [len(p) for p in a] == [40, 10]
    ids = [set(p.words[:, 0].tolist()) for p in a]
    assert ids[0].isdisjoint(ids[1]) and ids[0] | ids[1] == set(range(50))
    assert all(np.array_equal(x.words, y.words) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1].words, c[1].words)
    assert [p.name for p in a] == ["num/0", "num/1"]


def test_split_three_parts_sizes_add_up():
    parts = numbered(7).split([1 / 3, 1 / 3, 1 / 3], seed=0)
    assert sum(len(p) for p in parts) == 7
    assert len({i for p in parts for i in p.words[:, 0].tolist()}) == 7


@pytest.mark.parametrize("fractions", [(0.5, 0.4), (1.2, -0.2), (), (0.0, 1.0)])
def test_split_rejects_bad_fractions(fractions):
    with pytest.raises(DataError, match="fractions"):
        numbered(10).split(fractions)


def test_batches_cover_every_sequence_once():
    ds = numbered(10)
    plain = list(ds.batches(4))
    assert [len(w) for w, _, _ in plain] == [4, 4, 2]
    assert np.concatenate([w[:, 0] for w, _, _ in plain]).tolist() == list(range(10))
    assert all(m.shape == (len(w), 1) and m.dtype == bool for w, m, _ in plain)
    assert all(y is None for _, _, y in plain)
    shuffled = [w[:, 0] for w, _, _ in ds.batches(3, shuffle=True, seed=1)]
    again = [w[:, 0] for w, _, _ in ds.batches(3, shuffle=True, seed=1)]
    order = np.concatenate(shuffled).tolist()
    assert sorted(order) == list(range(10)) and order != list(range(10))
    assert order == np.concatenate(again).tolist()
    with pytest.raises(DataError, match="batch_size"):
        next(ds.batches(0))


def test_targets_travel_with_subsets_and_batches_and_carry_the_labels():
    words = np.array([[1, 2, 3], [0, 1, 2], [3, 3, 0]], dtype=np.int64)
    targets = np.array([[0, 2], [1, 1], [2, 3]], dtype=np.int64)
    ds = SequenceDataset(
        words,
        np.ones((3, 2), dtype=bool),
        io=2,
        labels=targets[:, -1].copy(),
        n_label_steps=1,
        targets=targets,
    )
    assert ds.step_targets is targets
    assert ds.subset([2, 0]).targets.tolist() == [[2, 3], [0, 2]]
    batches = list(ds.batches(2))
    assert [y.tolist() for _, _, y in batches] == [[[0, 2], [1, 1]], [[2, 3]]]
    with pytest.raises(DataError, match="labels disagree with the last 1 target"):
        dataclasses.replace(ds, labels=words[:, -1].copy())


@pytest.mark.parametrize(
    ("targets", "match"),
    [
        (np.zeros((3, 3), dtype=np.int64), r"targets must be an int64 array of shape \[N, L-1\]"),
        (np.zeros((3, 2), dtype=np.int32), "targets must be an int64"),
        (np.full((3, 2), 4, dtype=np.int64), r"targets must satisfy 0 <= w < 2\*\*io = 4"),
    ],
)
def test_bad_targets_are_refused_with_the_shape_or_range_expected(targets, match):
    words = np.zeros((3, 3), dtype=np.int64)
    with pytest.raises(DataError, match=match):
        SequenceDataset(words, np.ones((3, 2), dtype=bool), io=2, targets=targets)

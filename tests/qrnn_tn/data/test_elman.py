import re

import numpy as np
import pytest

from qrnn_tn.data import DataError, dna, elman_letters, elman_xor, memorise

LETTER_OF = {0b100: "b", 0b101: "d", 0b110: "g", 0b000: "a", 0b001: "i", 0b010: "u"}


def test_memorise_constant():
    ds = memorise("constant", 5, n_sequences=2)
    assert ds.io == 3
    assert ds.words.tolist() == [[4, 4, 4, 4, 4]] * 2
    assert ds.mask.all() and ds.mask.shape == (2, 4)


def test_memorise_cyclic():
    ds = memorise("cyclic", 10)
    assert ds.words.tolist() == [[0, 1, 2, 3, 0, 1, 2, 3, 0, 1]]
    assert memorise("cyclic", 5, period=3).words.tolist() == [[0, 1, 2, 0, 1]]
    assert ds.mask.all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pattern": "random", "length": 4}, "pattern"),
        ({"pattern": "constant", "length": 4, "value": 8}, "value"),
        ({"pattern": "cyclic", "length": 4, "period": 9}, "period"),
        ({"pattern": "cyclic", "length": 1}, "length"),
    ],
)
def test_memorise_errors(kwargs, match):
    with pytest.raises(DataError, match=match):
        memorise(**kwargs)


def test_xor_targets_are_xor_of_the_two_preceding_bits():
    ds = elman_xor(20, n_sequences=8, seed=5)
    assert ds.io == 1 and ds.words.shape == (8, 60)
    assert set(np.unique(ds.words).tolist()) <= {0, 1}
    for seq, mask in zip(ds.words, ds.mask, strict=True):
        steps = np.flatnonzero(mask)
        assert steps.tolist() == list(range(1, 59, 3))
        for t in steps:  # step t predicts token t+1 from tokens t-1, t
            assert seq[t + 1] == seq[t - 1] ^ seq[t]


def test_xor_seed_determinism():
    assert np.array_equal(elman_xor(10, seed=1).words, elman_xor(10, seed=1).words)
    assert not np.array_equal(elman_xor(10, seed=1).words, elman_xor(10, seed=2).words)


def test_letters_vowel_runs_and_mask():
    ds = elman_letters(12, n_sequences=10, seed=3)
    assert ds.io == 3
    for seq, mask in zip(ds.words, ds.mask, strict=True):
        real = [int(w) for w in seq if w in LETTER_OF]
        n_pad = len(seq) - len(real)
        assert seq[len(real) :].tolist() == [0b111] * n_pad  # padding only at the end
        text = "".join(LETTER_OF[w] for w in real)
        assert re.fullmatch(r"(ba|dii|guuu)+", text), text
        assert sum(text.count(c) for c in "bdg") == 12
        expected = [nxt in "aiu" for nxt in text[1:]] + [False] * n_pad
        assert mask.tolist() == expected
    # padded to the longest sequence: some sequence has no padding
    assert (ds.words[:, -1] != 0b111).any()


def test_letters_hand_decoded_single_sequence():
    ds = elman_letters(3, seed=0)
    text = "".join(LETTER_OF[int(w)] for w in ds.words[0])
    # the mask is True exactly on the steps before a vowel
    assert [text[t + 1] in "aiu" for t in range(len(text) - 1)] == ds.mask[0].tolist()
    assert ds.mask[0].sum() == sum({"b": 1, "d": 2, "g": 3}[c] for c in text if c in "bdg")


@pytest.mark.parametrize("length", [4, 5, 17, 1000])
def test_dna_targets_hold_the_marked_base_from_the_mark_on(length):
    ds = dna(length, n_sequences=20, seed=length)
    assert ds.io == 3 and ds.words.shape == (20, length) and ds.targets.shape == (20, length - 1)
    for seq, targets, mask, label in zip(ds.words, ds.targets, ds.mask, ds.labels, strict=True):
        marked = np.flatnonzero(seq & 0b100)
        assert len(marked) == 1
        m = marked[0]
        assert 1 <= m < length // 2  # first half, as in the paper's code
        assert seq[m] & 0b11 == label
        # step t reads token t: G before the mark, the marked word when it is the next
        # input, then the base itself at every step from the mark on
        assert targets.tolist() == [0] * (m - 1) + [seq[m]] + [label] * (length - 1 - m)
        assert mask.tolist() == [False] * (length - 2) + [True]
    assert ds.n_label_steps == 1 and ds.step_targets is ds.targets


def test_dna_bases_are_random_and_seeded():
    a, b = dna(50, n_sequences=4, seed=0), dna(50, n_sequences=4, seed=0)
    assert np.array_equal(a.words, b.words) and np.array_equal(a.targets, b.targets)
    assert set(np.unique(a.words & 0b11).tolist()) == {0, 1, 2, 3}
    with pytest.raises(DataError, match="length"):
        dna(3)

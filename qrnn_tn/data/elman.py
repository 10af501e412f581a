"""Synthetic sequence tasks of the paper (QRNN.md §7): memorisation, Elman XOR and letters, DNA.

Every generator takes ``n_sequences`` and ``seed`` and returns a :class:`SequenceDataset`;
the same arguments always give the same data.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from qrnn_tn.data.base import DataError, SequenceDataset

__all__ = [
    "DNA_BASES",
    "LETTER_PAD",
    "LETTERS",
    "dna",
    "elman_letters",
    "elman_xor",
    "memorise",
]

#: 3-bit words of Elman's letters (QRNN.md §7).
LETTERS: dict[str, int] = {"b": 0b100, "d": 0b101, "g": 0b110, "a": 0b000, "i": 0b001, "u": 0b010}
#: Word padding letter sequences to a common length (no letter uses it; never in the loss).
LETTER_PAD = 0b111
_EXPANSION = {"b": "ba", "d": "dii", "g": "guuu"}
_VOWELS = np.array([LETTERS[v] for v in "aiu"])

#: Bases of the DNA task; base ``DNA_BASES[k]`` is written as the word ``k``.
DNA_BASES = "GATC"
_DNA_MARK = 0b100


def _check_count(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise DataError(f"{name} must be >= {minimum}, got {value}")


def memorise(
    pattern: Literal["constant", "cyclic"],
    length: int,
    *,
    n_sequences: int = 1,
    seed: int = 0,
    value: int = 4,
    period: int = 4,
    io: int = 3,
) -> SequenceDataset:
    """Memorisation: ``value value …`` (constant) or ``0 1 … period-1 0 1 …`` (cyclic).

    Every step counts. The sequences are fully determined, so all ``n_sequences`` are
    identical and ``seed`` has no effect (it is accepted for a uniform generator signature).
    """
    _check_count("length", length, 2)
    _check_count("n_sequences", n_sequences, 1)
    if pattern == "constant":
        if not 0 <= value < 2**io:
            raise DataError(f"value must be an {io}-bit word (0 <= value < {2**io}), got {value}")
        row = np.full(length, value, dtype=np.int64)
    elif pattern == "cyclic":
        if not 1 <= period <= 2**io:
            raise DataError(f"period must be in 1..2**io = 1..{2**io}, got {period}")
        row = np.arange(length, dtype=np.int64) % period
    else:
        raise DataError(f"pattern must be 'constant' or 'cyclic', got {pattern!r}")
    words = np.tile(row, (n_sequences, 1))
    mask = np.ones((n_sequences, length - 1), dtype=bool)
    return SequenceDataset(words, mask, io=io, name=f"memorise-{pattern}")


def elman_xor(n_triples: int, *, n_sequences: int = 1, seed: int = 0) -> SequenceDataset:
    """Elman's XOR: random bit triples ``a b (a xor b)`` concatenated, ``io = 1``.

    Only the steps that predict the third bit of a triple count: the first two bits of
    each triple are random and cannot be predicted.
    """
    _check_count("n_triples", n_triples, 1)
    _check_count("n_sequences", n_sequences, 1)
    ab = np.random.default_rng(seed).integers(0, 2, size=(n_sequences, n_triples, 2))
    triples = np.concatenate([ab, ab[..., :1] ^ ab[..., 1:]], axis=-1)
    words = triples.reshape(n_sequences, 3 * n_triples).astype(np.int64)
    mask = np.zeros((n_sequences, 3 * n_triples - 1), dtype=bool)
    mask[:, 1::3] = True  # step 3j+1 predicts token 3j+2, the xor bit
    return SequenceDataset(words, mask, io=1, name="elman-xor")


def elman_letters(n_consonants: int, *, n_sequences: int = 1, seed: int = 0) -> SequenceDataset:
    """Elman's letters: random consonants ``b, d, g`` expanded to ``ba, dii, guuu`` (``io = 3``).

    Words follow :data:`LETTERS`. Only the steps predicting a vowel count: given the
    consonant, its whole vowel run is determined, while the next consonant is random.
    Each sequence has ``n_consonants`` consonants, so lengths differ; shorter sequences
    are padded at the end with :data:`LETTER_PAD` (steps predicting padding never count)
    up to the longest one drawn.
    """
    _check_count("n_consonants", n_consonants, 1)
    _check_count("n_sequences", n_sequences, 1)
    picks = np.random.default_rng(seed).integers(0, 3, size=(n_sequences, n_consonants))
    rows = [[LETTERS[c] for k in row for c in _EXPANSION["bdg"[k]]] for row in picks]
    length = max(len(r) for r in rows)
    words = np.full((n_sequences, length), LETTER_PAD, dtype=np.int64)
    for n, r in enumerate(rows):
        words[n, : len(r)] = r
    mask = np.isin(words[:, 1:], _VOWELS)
    return SequenceDataset(words, mask, io=3, name="elman-letters")


def dna(length: int, *, n_sequences: int = 1, seed: int = 0) -> SequenceDataset:
    """Long-range memory: hold one marked base of a random GATC string to the last step.

    Encoding (``io = 3``): a base is the 2-bit word ``DNA_BASES.index(base)`` in the low
    two bits (G=0, A=1, T=2, C=3); the top bit (bit 0, value 4) is set on exactly one input
    token, the marked base, at a uniformly random position ``1 <= m < length // 2`` (the
    first half). Every other input is a random base.

    As in the paper's original code, the steps have a target stream of their own
    (:attr:`SequenceDataset.targets`): the steps before the mark target ``G`` (0), the step
    that reads token ``m - 1`` targets the marked word itself, and every step from the mark
    on targets the marked base, so teacher forcing projects the i/o lanes onto the base the
    cell must hold. Only the last step counts; ``labels`` hold the marked base (one label
    step), so the task also reads as 4-class classification.
    """
    _check_count("length", length, 4)
    _check_count("n_sequences", n_sequences, 1)
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 4, size=(n_sequences, length), dtype=np.int64)
    marked = rng.integers(1, length // 2, size=n_sequences)
    rows = np.arange(n_sequences)
    labels = words[rows, marked].copy()
    words[rows, marked] |= _DNA_MARK
    step = np.arange(length - 1)[None, :]  # step t reads token t, targets token t + 1
    from_mark = step >= marked[:, None]
    targets = np.where(from_mark, labels[:, None], 0)
    targets[rows, marked - 1] = words[rows, marked]
    mask = np.zeros((n_sequences, length - 1), dtype=bool)
    mask[:, -1] = True
    return SequenceDataset(
        words, mask, io=3, labels=labels, n_label_steps=1, name="dna", targets=targets
    )

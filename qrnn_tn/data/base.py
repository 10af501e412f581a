"""Sequence datasets shared by every task, and the label-token helpers.

A dataset holds ``N`` sequences of ``L`` tokens; each token is an ``io``-bit word whose bit 0
(qubit 0) is the most significant bit (QRNN.md §1). Step ``t`` (0-based, ``t < L - 1``) reads
token ``t`` and predicts token ``t + 1``; ``mask[n, t]`` says whether that prediction counts in
the loss (QRNN.md §3, §6). A task may give the steps a target stream of their own (``targets``):
step ``t`` then reads token ``t`` and predicts, and is projected on, ``targets[n, t]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from qrnn_tn.errors import Error

__all__ = [
    "DataError",
    "SequenceDataset",
    "decode_label",
    "encode_label",
    "label_tokens_needed",
]


class DataError(Error, ValueError):
    """Invalid data, arguments or files; the message says what, where and how to fix it."""


def label_tokens_needed(n_classes: int, io: int) -> int:
    """Return the number of ``io``-bit tokens needed to write a class index below ``n_classes``.

    At least one token, so that even a single class has a label step.
    """
    if n_classes < 1:
        raise DataError(f"n_classes must be >= 1, got {n_classes}")
    if io < 1:
        raise DataError(f"io must be >= 1, got {io}")
    bits = (n_classes - 1).bit_length()
    return max(1, -(-bits // io))


def encode_label(label: int, io: int, n_tokens: int) -> list[int]:
    """Write ``label`` MSB-first across ``n_tokens`` words of ``io`` bits each."""
    if io < 1 or n_tokens < 1:
        raise DataError(f"io and n_tokens must be >= 1, got io={io}, n_tokens={n_tokens}")
    if not 0 <= label < 2 ** (io * n_tokens):
        raise DataError(
            f"label {label} does not fit in {n_tokens} token(s) of {io} bit(s) "
            f"(needs 0 <= label < {2 ** (io * n_tokens)}); use label_tokens_needed() "
            "to choose n_tokens"
        )
    mask = 2**io - 1
    return [(int(label) >> (io * (n_tokens - 1 - i))) & mask for i in range(n_tokens)]


def decode_label(words: Sequence[int] | np.ndarray, io: int) -> int:
    """Inverse of :func:`encode_label`: read ``io``-bit words MSB-first as one integer."""
    value = 0
    for w in np.asarray(words, dtype=np.int64).reshape(-1):
        if not 0 <= w < 2**io:
            raise DataError(f"label word {int(w)} is not an {io}-bit word (0 <= w < {2**io})")
        value = (value << io) | int(w)
    return value


@dataclass(frozen=True, eq=False)
class SequenceDataset:
    """Equal-length token sequences with a loss mask, optionally with class labels.

    Attributes
    ----------
    words : np.ndarray
        int64 ``[N, L]``, tokens with ``0 <= w < 2**io``; ``L >= 2``.
    mask : np.ndarray
        bool ``[N, L - 1]``; ``mask[n, t]`` is True when step ``t`` (reads token ``t``,
        predicts token ``t + 1``) counts in the loss.
    io : int
        Bits per token (the number of i/o lanes).
    labels : np.ndarray or None
        int64 ``[N]`` class indices for classification tasks; they must equal the last
        ``n_label_steps`` step targets read as one number (:func:`decode_label`).
    n_label_steps : int
        Number of label tokens at the end of each sequence (0 without labels).
    name : str
        Human-readable name used in messages and logs.
    targets : np.ndarray or None
        int64 ``[N, L - 1]``: the word each step is projected on and scored against, when it
        is not the next input (``None``: step ``t`` targets ``words[:, t + 1]``).
    embedding : np.ndarray or None
        float64 ``[N, C]``: the continuous coordinates the tokens encode, for tasks that
        reduce their inputs (``None`` otherwise); kept for figures and diagnostics, never
        read by the model.
    """

    words: np.ndarray
    mask: np.ndarray
    io: int
    labels: np.ndarray | None = None
    n_label_steps: int = 0
    name: str = "dataset"
    targets: np.ndarray | None = None
    embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Check the arrays' shapes, dtypes and token range."""
        where = f"SequenceDataset {self.name!r}"
        if not isinstance(self.io, int | np.integer) or self.io < 1:
            raise DataError(f"{where}: io must be an integer >= 1, got {self.io!r}")
        w, m = self.words, self.mask
        if not isinstance(w, np.ndarray) or w.ndim != 2 or w.dtype != np.int64:
            raise DataError(
                f"{where}: words must be an int64 array of shape [N, L], got "
                f"{_describe(w)}; build it with np.asarray(..., dtype=np.int64)"
            )
        n, length = w.shape
        if length < 2:
            raise DataError(f"{where}: sequences need L >= 2 tokens (one step), got L={length}")
        self._check_range(where, "tokens", w)
        if not isinstance(m, np.ndarray) or m.dtype != np.bool_ or m.shape != (n, length - 1):
            raise DataError(
                f"{where}: mask must be a bool array of shape [N, L-1] = [{n}, {length - 1}], "
                f"got {_describe(m)}"
            )
        y = self.targets
        if y is not None:
            if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.shape != m.shape:
                raise DataError(
                    f"{where}: targets must be an int64 array of shape [N, L-1] = "
                    f"[{n}, {length - 1}] (one word per step), got {_describe(y)}"
                )
            self._check_range(where, "targets", y)
        self._check_labels(where, n, length)
        e = self.embedding
        if e is not None and (
            not isinstance(e, np.ndarray) or e.dtype != np.float64 or e.ndim != 2 or len(e) != n
        ):
            raise DataError(
                f"{where}: embedding must be a float64 array of shape [N, C] with N = {n}, got "
                f"{_describe(e)}"
            )

    def _check_range(self, where: str, what: str, w: np.ndarray) -> None:
        if w.size and (w.min() < 0 or w.max() >= 2**self.io):
            raise DataError(
                f"{where}: {what} must satisfy 0 <= w < 2**io = {2**self.io}, found values "
                f"in [{w.min()}, {w.max()}]; raise io or fix the encoding"
            )

    def _check_labels(self, where: str, n: int, length: int) -> None:
        k, labels = self.n_label_steps, self.labels
        if labels is None:
            if k != 0:
                raise DataError(f"{where}: n_label_steps={k} but labels is None; pass labels")
            return
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.shape != (n,):
            raise DataError(
                f"{where}: labels must be an int64 array of shape [N] = [{n}], got "
                f"{_describe(labels)}"
            )
        if not 1 <= k <= length - 1:
            raise DataError(
                f"{where}: with labels, n_label_steps must be in 1..L-1 = 1..{length - 1}, got {k}"
            )
        weights = 2 ** (self.io * np.arange(k - 1, -1, -1, dtype=np.int64))
        written = self.step_targets[:, length - 1 - k :] @ weights
        bad = np.flatnonzero(written != labels)
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{where}: labels disagree with the last {k} target(s) of {bad.size} "
                f"sequence(s), e.g. sequence {i}: label {labels[i]} but tokens encode "
                f"{written[i]}; write labels with encode_label()"
            )

    @property
    def step_targets(self) -> np.ndarray:
        """``[N, L - 1]``: the word each step is scored against (``targets`` or the next input)."""
        return self.words[:, 1:] if self.targets is None else self.targets

    def __len__(self) -> int:
        """Return the number of sequences."""
        return int(self.words.shape[0])

    @property
    def length(self) -> int:
        """Tokens per sequence ``L`` (the model runs ``L - 1`` steps)."""
        return int(self.words.shape[1])

    def subset(self, indices: Sequence[int] | np.ndarray) -> SequenceDataset:
        """Dataset of the sequences at ``indices`` (integer indices or a bool mask)."""
        idx = np.asarray(indices)
        if idx.dtype == np.bool_:
            if idx.shape != (len(self),):
                raise DataError(
                    f"subset of {self.name!r}: bool mask must have shape ({len(self)},), "
                    f"got {idx.shape}"
                )
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64)
        elif not np.issubdtype(idx.dtype, np.integer):
            raise DataError(
                f"subset of {self.name!r}: indices must be integers or a bool mask, "
                f"got dtype {idx.dtype}"
            )
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise DataError(
                f"subset of {self.name!r}: indices must lie in [-{len(self)}, {len(self)}), "
                f"got values in [{idx.min()}, {idx.max()}]"
            )
        return replace(
            self,
            words=self.words[idx],
            mask=self.mask[idx],
            labels=None if self.labels is None else self.labels[idx],
            targets=None if self.targets is None else self.targets[idx],
            embedding=None if self.embedding is None else self.embedding[idx],
        )

    def split(self, fractions: Sequence[float], seed: int = 0) -> tuple[SequenceDataset, ...]:
        """Randomly partition into disjoint parts of the given ``fractions`` (summing to 1).

        The permutation depends only on ``seed``; part sizes are rounded cumulatively so
        they add up to ``N``. Each part keeps the original order of its sequences and is
        named ``"<name>/<part index>"``.
        """
        fr = np.asarray(fractions, dtype=np.float64)
        if fr.ndim != 1 or fr.size == 0 or np.any(fr <= 0) or abs(fr.sum() - 1.0) > 1e-9:
            raise DataError(
                f"split of {self.name!r}: fractions must be positive and sum to 1, "
                f"got {list(fractions)}"
            )
        order = np.random.default_rng(seed).permutation(len(self))
        ends = np.round(np.cumsum(fr) * len(self)).astype(np.int64)
        ends[-1] = len(self)
        starts = np.concatenate([[0], ends[:-1]])
        return tuple(
            replace(self.subset(np.sort(order[a:b])), name=f"{self.name}/{i}")
            for i, (a, b) in enumerate(zip(starts, ends, strict=True))
        )

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """Yield ``(words [B, L], mask [B, L-1], targets [B, L-1] or None)`` batches.

        The batches cover every sequence once (``targets`` is ``None`` when the dataset has
        none). The last batch may be smaller. With ``shuffle`` the order is a permutation fixed
        by ``seed`` (pass e.g. the epoch number for a fresh order per epoch).
        """
        if batch_size < 1:
            raise DataError(f"batches of {self.name!r}: batch_size must be >= 1, got {batch_size}")
        n = len(self)
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            yield (
                self.words[idx],
                self.mask[idx],
                None if self.targets is None else self.targets[idx],
            )


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {x.shape}"
    return type(x).__name__

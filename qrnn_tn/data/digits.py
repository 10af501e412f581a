"""sklearn's bundled 8x8 digits: a small, offline stand-in for MNIST (QRNN.md §7).

Two pipelines: pixel by pixel (:func:`digits_pixel_dataset`, as for MNIST) and
dimensionality reduction (:func:`digits_reduced_datasets`, PCA → t-SNE/UMAP → bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from qrnn_tn.data.base import DataError, SequenceDataset
from qrnn_tn.data.pixels import binarise, downscale, pixel_sequences, select_classes
from qrnn_tn.data.reduce import Method, reduced_splits

__all__ = ["digits_split", "digits_pixel_dataset", "digits_reduced_datasets"]


def digits_split(
    digits: Sequence[int] = (0, 1),
    split: Literal["train", "test"] = "train",
    test_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Images (float 0..16, ``[N, 8, 8]``) and labels of one split of the chosen digits.

    The train/test split is stratified by digit and fixed by ``seed``; the two splits are
    disjoint and together hold every sample of the chosen digits.
    """
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    bunch = load_digits()
    images, labels = select_classes(bunch.images, bunch.target.astype(np.int64), digits)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels
    )
    idx = np.sort(train_idx if split == "train" else test_idx)
    return images[idx], labels[idx]


def digits_pixel_dataset(
    digits: Sequence[int] = (0, 1),
    split: Literal["train", "test"] = "train",
    test_fraction: float = 0.25,
    seed: int = 0,
    size: int = 8,
    threshold: float = 8.0,
    io: int = 2,
) -> SequenceDataset:
    """Digits pixel by pixel: optional area downscale from 8x8, binarise, two scanlines.

    Pixels (0..16) are on when above ``threshold``. Class indices follow ``digits``.
    """
    images, labels = digits_split(digits, split, test_fraction, seed)
    if size != images.shape[1]:
        images = downscale(images, size)
    name = f"digits-pixels-{'v'.join(map(str, digits))}-{split}"
    return pixel_sequences(binarise(images, threshold), labels, digits, io, name=name)


def digits_reduced_datasets(
    digits: Sequence[int] = tuple(range(10)),
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.25,
    n_components: int = 2,
    bits: int = 4,
    method: Method = "tsne",
    seed: int = 0,
) -> tuple[SequenceDataset, SequenceDataset, SequenceDataset]:
    """Train, validation and test sets of the digits reduced to ``bits``-bit coordinates.

    The test split is that of :func:`digits_split`; a stratified ``val_fraction`` of the
    training split (fixed by ``seed``) is held out *before* the encoder is fitted, so the
    validation points are placed like the test points (out of sample). See
    :func:`~qrnn_tn.data.reduce.reduced_dataset` for the encoding; ``io = n_components``.
    """
    images, labels = digits_split(digits, "train", test_fraction, seed)
    test = digits_split(digits, "test", test_fraction, seed)
    return reduced_splits(
        images,
        labels,
        test,
        digits,
        val_fraction=val_fraction,
        seed=seed,
        name="digits",
        n_components=n_components,
        bits=bits,
        method=method,
    )

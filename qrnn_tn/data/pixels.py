"""Pixel-by-pixel classification sequences (QRNN.md §7), shared by MNIST and sklearn digits.

Pipeline: crop the centre, downscale by area averaging, binarise, then read the image as two
scanlines at once (row-major on bit 0, column-major on bit 1), one token per pixel, followed
by the class index as label tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from qrnn_tn.data.base import DataError, SequenceDataset, encode_label, label_tokens_needed
from qrnn_tn.data.mnist import load_mnist

__all__ = [
    "binarise",
    "class_indices",
    "crop_center",
    "deskew",
    "downscale",
    "mnist_pixel_dataset",
    "pixel_sequences",
    "select_classes",
]


def _check_images(images: np.ndarray, where: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3:
        raise DataError(f"{where}: images must have shape [N, rows, cols], got {images.shape}")
    return images


def crop_center(images: np.ndarray, size: int) -> np.ndarray:
    """Central ``size x size`` window of each image ``[N, rows, cols]``.

    When the margin is odd the extra pixel is dropped at the bottom/right.
    """
    images = _check_images(images, "crop_center")
    _, rows, cols = images.shape
    if not 1 <= size <= min(rows, cols):
        raise DataError(f"crop_center: size must be in 1..{min(rows, cols)}, got {size}")
    top, left = (rows - size) // 2, (cols - size) // 2
    return images[:, top : top + size, left : left + size]


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` matrix averaging input pixels by their overlap with each output pixel."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    pix = np.arange(n_in)
    lo = np.maximum(pix[None, :], edges[:-1, None])
    hi = np.minimum(pix[None, :] + 1, edges[1:, None])
    weights = np.clip(hi - lo, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def downscale(images: np.ndarray, size: int) -> np.ndarray:
    """Resize images ``[N, rows, cols]`` to ``[N, size, size]`` by area averaging (float64).

    Each output pixel is the mean of the input area it covers, weighting partially covered
    pixels by their overlap, so divisible sizes give the plain block average and other
    sizes behave like area interpolation.
    """
    images = _check_images(images, "downscale")
    if size < 1:
        raise DataError(f"downscale: size must be >= 1, got {size}")
    _, rows, cols = images.shape
    a, b = _area_weights(rows, size), _area_weights(cols, size)
    return np.einsum("ir,nrc,jc->nij", a, images.astype(np.float64), b)


def deskew(images: np.ndarray) -> np.ndarray:
    """Undo each image's slant: shear its columns so that the ink's principal axis is upright.

    The classic MNIST preprocessing (LeCun et al. 1998): from the grey-value moments of
    image ``k``, the shear ``α = cov(row, col) / var(row)`` maps output pixel ``o`` to input
    position ``(o_r, o_c + α (o_r - c_r)) + m - c`` (``m`` the centre of mass, ``c`` the
    image centre; bilinear interpolation), so the ink's row–column covariance vanishes and
    its centre of mass moves to the centre. Blank images stay blank; images whose ink lies
    in one row are only centred. Returns float64 images of the same shape, grey values in the
    input's range.
    """
    from scipy import ndimage

    images = _check_images(images, "deskew").astype(np.float64)
    _, rows, cols = images.shape
    r, c = np.mgrid[:rows, :cols].astype(np.float64)
    mass = images.sum(axis=(1, 2))
    safe = np.where(mass > 0, mass, 1.0)
    mean_r = (images * r).sum(axis=(1, 2)) / safe
    mean_c = (images * c).sum(axis=(1, 2)) / safe
    dr = r[None] - mean_r[:, None, None]
    dc = c[None] - mean_c[:, None, None]
    var_r = (images * dr**2).sum(axis=(1, 2)) / safe
    cov = (images * dr * dc).sum(axis=(1, 2)) / safe
    alpha = np.where(var_r > 0, cov / np.where(var_r > 0, var_r, 1.0), 0.0)
    centre = (np.array([rows, cols], dtype=np.float64) - 1.0) / 2.0
    out = np.zeros_like(images)
    for k in np.flatnonzero(mass > 0):
        shear = np.array([[1.0, 0.0], [alpha[k], 1.0]])
        offset = np.array([mean_r[k], mean_c[k]]) - shear @ centre
        out[k] = ndimage.affine_transform(images[k], shear, offset=offset, order=1)
    return out


def binarise(images: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean images: a pixel is on when its value is strictly above ``threshold``."""
    return np.asarray(images) > threshold


def select_classes(
    images: np.ndarray, labels: np.ndarray, classes: Sequence[int], *, require_all: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the samples whose label is in ``classes``.

    ``classes`` must hold at least two classes, each present among ``labels``
    (``require_all=False``, for a test set: at least one sample of one of them), so that a
    classifier is never trained on a class it cannot see or on a single class.
    Returns the kept images and their labels unchanged (not yet class indices).
    """
    classes = _check_classes(classes)
    labels = np.asarray(labels)
    keep = np.isin(labels, classes)
    present = set(labels[keep].tolist())
    missing = [c for c in classes if c not in present]
    if missing if require_all else not present:
        raise DataError(
            f"select_classes: no sample has label(s) {missing} of classes={classes}; labels "
            f"present are {sorted(set(labels.tolist()))}: choose classes among them"
        )
    if len(classes) < 2:
        raise DataError(
            f"select_classes: classes={classes} is a single class; a classifier needs at "
            "least two (its accuracy on one class is trivially 1)"
        )
    return np.asarray(images)[keep], labels[keep]


def _check_classes(classes: Sequence[int]) -> list[int]:
    out = [int(c) for c in classes]
    if len(out) < 1 or len(set(out)) != len(out):
        raise DataError(f"classes must be a non-empty list without repeats, got {list(classes)}")
    return out


def class_indices(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Position of each label in ``classes`` (int64); every label must be one of them."""
    classes = _check_classes(classes)
    labels = np.asarray(labels)
    lookup = {c: i for i, c in enumerate(classes)}
    missing = sorted(set(labels.tolist()) - lookup.keys())
    if missing:
        raise DataError(
            f"labels {missing} are not in classes={classes}; filter the samples first "
            "with select_classes()"
        )
    return np.array([lookup[v] for v in labels.tolist()], dtype=np.int64).reshape(labels.shape)


def pixel_sequences(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[int],
    io: int = 2,
    *,
    name: str = "pixels",
) -> SequenceDataset:
    """Encode binary images as two-scanline token sequences followed by label tokens.

    Token ``t`` (one per pixel) has bit 0 (MSB) = pixel ``t`` in row-major order and, when
    ``io >= 2``, bit 1 = pixel ``t`` in column-major order; further bits are 0. Then come
    ``label_tokens_needed(len(classes), io)`` tokens holding the class index (position of
    the label in ``classes``) MSB-first. Only the steps predicting label tokens count.
    """
    images = _check_images(images, "pixel_sequences")
    if not np.isin(images, (0, 1)).all():
        raise DataError("pixel_sequences: images must be binary (0/1 or bool); use binarise()")
    if io < 1:
        raise DataError(f"pixel_sequences: io must be >= 1, got {io}")
    classes = _check_classes(classes)
    targets = class_indices(labels, classes)
    if targets.shape != (len(images),):
        raise DataError(
            f"pixel_sequences: need one label per image, got {targets.shape} labels for "
            f"{len(images)} images"
        )
    n, rows, cols = images.shape
    bits = images.astype(np.int64)
    tokens = bits.reshape(n, rows * cols) << (io - 1)
    if io >= 2:
        tokens |= bits.transpose(0, 2, 1).reshape(n, rows * cols) << (io - 2)
    k = label_tokens_needed(len(classes), io)
    label_words = np.array([encode_label(int(c), io, k) for c in targets], dtype=np.int64)
    words = np.concatenate([tokens, label_words.reshape(n, k)], axis=1)
    mask = np.zeros((n, words.shape[1] - 1), dtype=bool)
    mask[:, -k:] = True
    return SequenceDataset(words, mask, io=io, labels=targets, n_label_steps=k, name=name)


def mnist_pixel_dataset(
    data_dir: str | Path,
    digits: Sequence[int] = (0, 1),
    split: Literal["train", "test"] = "train",
    size: int = 10,
    crop: int = 20,
    threshold: float = 127.5,
    io: int = 2,
    *,
    deskew_images: bool = False,
) -> SequenceDataset:
    """MNIST pixel by pixel (paper setup): crop 20x20, downscale to 10x10, binarise, scan.

    ``threshold`` applies to the downscaled 0..255 grey values. Class indices follow the
    order of ``digits``. ``deskew_images`` straightens the 28x28 images first
    (:func:`deskew`), a step the paper does not take.
    """
    images, labels = select_classes(*load_mnist(data_dir, split), digits)
    if deskew_images:
        images = deskew(images)
    small = binarise(downscale(crop_center(images, crop), size), threshold)
    name = f"mnist-pixels-{'v'.join(map(str, digits))}-{split}"
    return pixel_sequences(small, labels, digits, io, name=name)

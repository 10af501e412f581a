"""Classification with dimensionality reduction (QRNN.md §7): PCA, then t-SNE or UMAP.

Images are reduced to ``n_components`` coordinates, each mapped to [0, 1] and discretised
to ``bits`` bits. A sequence feeds the coordinates MSB-first: step ``b`` holds bit ``b`` of
every coordinate (coordinate ``j`` on lane ``j``, so ``io = n_components``), followed by the
class index as label tokens. Everything is fitted on the training split only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsRegressor

from qrnn_tn.data.base import DataError, SequenceDataset, encode_label, label_tokens_needed
from qrnn_tn.data.pixels import class_indices, select_classes

__all__ = ["ReducedEncoder", "code_sequences", "reduced_dataset", "reduced_splits"]

Method = Literal["tsne", "umap"]


class ReducedEncoder:
    """PCA → t-SNE/UMAP → [0, 1] → ``bits``-bit integer codes, fitted on training images.

    t-SNE has no out-of-sample transform, so new points are placed by k-nearest-neighbour
    regression (distance-weighted, ``n_neighbors``) from the training points in PCA space
    onto their fitted t-SNE coordinates; with ``n_neighbors=1`` a new point takes the
    coordinates of its nearest training image (averaging neighbours from two clusters puts
    it between them, docs/mnist.md). UMAP (``method="umap"``, optional package
    ``umap-learn``: ``pip install 'qrnn-tn[umap]'``) uses its own ``transform``. The map to
    [0, 1] uses the training minimum and maximum of each coordinate; new points outside that
    range are clipped. After fitting, ``embedding_`` holds the training coordinates.

    Parameters
    ----------
    n_components : int
        Output coordinates (the paper uses 2–4); t-SNE with more than 3 uses its exact,
        slower method.
    bits : int
        Bits per coordinate (the paper uses 2–8).
    method : {"tsne", "umap"}
        Non-linear embedding after PCA.
    pca_components : int
        PCA dimensions (capped by the number of samples and features).
    n_neighbors : int
        Neighbours for placing new points (t-SNE only).
    perplexity : float
        t-SNE perplexity (capped at ``(N - 1) / 3`` for small training sets).
    seed : int
        Seed of PCA, t-SNE and UMAP.
    """

    def __init__(
        self,
        n_components: int = 2,
        bits: int = 4,
        method: Method = "tsne",
        *,
        pca_components: int = 30,
        n_neighbors: int = 5,
        perplexity: float = 30.0,
        seed: int = 0,
    ) -> None:
        if n_components < 1:
            raise DataError(f"n_components must be >= 1, got {n_components}")
        if not 1 <= bits <= 16:
            raise DataError(f"bits must be in 1..16 (the paper uses 2..8), got {bits}")
        if method not in ("tsne", "umap"):
            raise DataError(f"method must be 'tsne' or 'umap', got {method!r}")
        if method == "umap":
            _import_umap()  # before any fitting: say how to install it
        if pca_components < 1 or n_neighbors < 1:
            raise DataError(
                f"pca_components and n_neighbors must be >= 1, got {pca_components}, {n_neighbors}"
            )
        self.n_components = n_components
        self.bits = bits
        self.method = method
        self.pca_components = pca_components
        self.n_neighbors = n_neighbors
        self.perplexity = perplexity
        self.seed = seed

    def fit_transform(self, images: np.ndarray) -> np.ndarray:
        """Fit on training ``images [N, ...]``; return their codes, int64 ``[N, n_components]``."""
        x = _flatten(images)
        if len(x) <= self.n_neighbors:
            raise DataError(
                f"ReducedEncoder needs more than n_neighbors={self.n_neighbors} training "
                f"images, got {len(x)}"
            )
        self.pca_ = PCA(min(self.pca_components, *x.shape), random_state=self.seed)
        z = self.pca_.fit_transform(x)
        if self.method == "umap":
            self.umap_ = _umap(self.n_components, len(x), self.seed).fit(z)
            emb = np.asarray(self.umap_.embedding_, dtype=np.float64)
        else:
            tsne = TSNE(
                self.n_components,
                perplexity=min(self.perplexity, max(1.0, (len(x) - 1) / 3)),
                init="pca",
                method="barnes_hut" if self.n_components <= 3 else "exact",
                random_state=self.seed,
            )
            emb = tsne.fit_transform(z).astype(np.float64)
            self.knn_ = KNeighborsRegressor(self.n_neighbors, weights="distance").fit(z, emb)
        self.embedding_ = emb
        self.low_ = emb.min(axis=0)
        self.high_ = emb.max(axis=0)
        return self.quantise(emb)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Coordinates of new ``images`` in the fitted embedding, float ``[N, n_components]``."""
        if not hasattr(self, "pca_"):
            raise DataError("ReducedEncoder is not fitted: call fit_transform(train_images) first")
        z = self.pca_.transform(_flatten(images))
        if self.method == "umap":
            return np.asarray(self.umap_.transform(z), dtype=np.float64)
        return self.knn_.predict(z)

    def transform(self, images: np.ndarray) -> np.ndarray:
        """Codes of new (e.g. test) ``images``; the fitted state is not changed."""
        return self.quantise(self.embed(images))

    def quantise(self, embedding: np.ndarray) -> np.ndarray:
        """Map coordinates to [0, 1] by the training range (clipped) and then to ``bits`` bits."""
        span = np.where(self.high_ > self.low_, self.high_ - self.low_, 1.0)
        unit = np.clip((np.asarray(embedding) - self.low_) / span, 0.0, 1.0)
        levels = 2**self.bits
        return np.minimum(np.floor(unit * levels), levels - 1).astype(np.int64)


def code_sequences(
    codes: np.ndarray,
    bits: int,
    targets: np.ndarray,
    n_classes: int,
    *,
    name: str = "reduced",
    embedding: np.ndarray | None = None,
) -> SequenceDataset:
    """Sequences from integer codes ``[N, C]`` (``0 <= code < 2**bits``) and class indices.

    Token ``b`` (``b = 0 … bits-1``) has lane ``j`` (bit ``j`` from the MSB) equal to bit
    ``b`` (MSB first) of coordinate ``j``; ``io = C``. Then the class index follows as
    ``label_tokens_needed(n_classes, C)`` label tokens; only label steps count.
    ``embedding`` (float ``[N, C]``, the coordinates before quantisation) is kept on the
    dataset for figures.
    """
    codes = np.asarray(codes, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    if codes.ndim != 2 or targets.shape != (len(codes),):
        raise DataError(
            f"code_sequences: need codes [N, C] and targets [N], got shapes {codes.shape} "
            f"and {targets.shape}"
        )
    n, io = codes.shape
    if codes.size and (codes.min() < 0 or codes.max() >= 2**bits):
        raise DataError(f"code_sequences: codes must lie in [0, {2**bits}), got {codes.max()}")
    shifts = np.arange(bits - 1, -1, -1)  # bit b of a coordinate, MSB first
    lanes = np.arange(io - 1, -1, -1)  # coordinate j on lane j (lane 0 = MSB of the word)
    coord_bits = (codes[:, None, :] >> shifts[None, :, None]) & 1  # [N, bits, C]
    tokens = (coord_bits << lanes[None, None, :]).sum(axis=2)
    k = label_tokens_needed(n_classes, io)
    label_words = np.array([encode_label(int(c), io, k) for c in targets], dtype=np.int64)
    words = np.concatenate([tokens, label_words.reshape(n, k)], axis=1)
    mask = np.zeros((n, bits + k - 1), dtype=bool)
    mask[:, -k:] = True
    if embedding is not None:
        embedding = np.asarray(embedding, dtype=np.float64)
    return SequenceDataset(
        words, mask, io=io, labels=targets, n_label_steps=k, name=name, embedding=embedding
    )


def reduced_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[int],
    *,
    n_components: int = 2,
    bits: int = 4,
    method: Method = "tsne",
    test: tuple[np.ndarray, np.ndarray] | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    pca_components: int = 30,
    n_neighbors: int = 5,
    perplexity: float = 30.0,
) -> tuple[SequenceDataset, SequenceDataset]:
    """Train and test sequences of the samples whose label is in ``classes``.

    The test split is ``test = (images, labels)`` when given (e.g. the official MNIST test
    set), otherwise a stratified ``test_fraction`` of ``images`` fixed by ``seed``. The
    encoder (:class:`ReducedEncoder`, whose arguments ``n_neighbors`` and ``perplexity``
    are passed on) is fitted on the training split only; the test images are placed out of
    sample, without their labels.
    """
    images, labels = select_classes(images, labels, classes)
    if test is None:
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
        tr, te = train_test_split(
            np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels
        )
        tr, te = np.sort(tr), np.sort(te)
        test_images, test_labels = images[te], labels[te]
        images, labels = images[tr], labels[tr]
    else:
        test_images, test_labels = select_classes(*test, classes, require_all=False)
    encoder = ReducedEncoder(
        n_components,
        bits,
        method,
        pca_components=pca_components,
        n_neighbors=n_neighbors,
        perplexity=perplexity,
        seed=seed,
    )
    n_classes = len(classes)
    tag = f"reduced-{method}-{n_components}x{bits}"
    train = code_sequences(
        encoder.fit_transform(images),
        bits,
        class_indices(labels, classes),
        n_classes,
        name=f"{tag}-train",
        embedding=encoder.embedding_,
    )
    test_embedding = encoder.embed(test_images)
    test_ds = code_sequences(
        encoder.quantise(test_embedding),
        bits,
        class_indices(test_labels, classes),
        n_classes,
        name=f"{tag}-test",
        embedding=test_embedding,
    )
    return train, test_ds


def reduced_splits(
    images: np.ndarray,
    labels: np.ndarray,
    test: tuple[np.ndarray, np.ndarray],
    classes: Sequence[int],
    *,
    val_fraction: float,
    seed: int = 0,
    name: str = "reduced",
    **encoding: Any,
) -> tuple[SequenceDataset, SequenceDataset, SequenceDataset]:
    """Train, validation and test sequences, the validation part held out before fitting.

    A stratified ``val_fraction`` of ``images`` (fixed by ``seed``) is set aside first, the
    encoder is fitted on the rest, and the validation and ``test`` images are both placed
    out of sample: a t-SNE fitted on the validation images as well would place them better
    than it can place the test images, and the validation figures would promise more than
    the test delivers. ``encoding`` goes to :func:`reduced_dataset`.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    images, labels = select_classes(images, labels, classes)
    test_images, test_labels = select_classes(*test, classes, require_all=False)
    counts = np.unique(labels, return_counts=True)[1]
    n_val = int(np.ceil(val_fraction * len(labels)))
    if counts.min() < 2 or n_val < len(classes) or len(labels) - n_val < len(classes):
        raise DataError(
            f"{name}: {len(labels)} training images of classes {list(classes)} (fewest "
            f"{counts.min()} of one class) are too few to hold out val_fraction="
            f"{val_fraction} with every class on both sides; use more images (limit) or "
            "fewer classes"
        )
    fit, val = train_test_split(
        np.arange(len(labels)), test_size=val_fraction, random_state=seed, stratify=labels
    )
    fit, val = np.sort(fit), np.sort(val)
    train, held_out = reduced_dataset(
        images[fit],
        labels[fit],
        classes,
        test=(
            np.concatenate([images[val], test_images]),
            np.concatenate([labels[val], test_labels]),
        ),
        seed=seed,
        **encoding,
    )
    tag = f"{name}-{train.name.removesuffix('-train')}"
    n_val = len(val)
    return (
        replace(train, name=f"{tag}-train"),
        replace(held_out.subset(np.arange(n_val)), name=f"{tag}-val"),
        replace(held_out.subset(np.arange(n_val, len(held_out))), name=f"{tag}-test"),
    )


def _flatten(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images, dtype=np.float64)
    if x.ndim < 2:
        raise DataError(f"images must have shape [N, ...features], got {x.shape}")
    return x.reshape(len(x), -1)


def _import_umap() -> Any:
    """Import the ``umap`` module of the optional package umap-learn.

    Raises :class:`DataError` saying how to install it when it is missing.
    """
    try:
        import umap
    except ImportError as exc:
        raise DataError(
            "method='umap' needs the optional package umap-learn, which is not installed: "
            "install it with `pip install 'qrnn-tn[umap]'` (or `pip install umap-learn`), "
            "or use method='tsne'"
        ) from exc
    return umap


def _umap(n_components: int, n_samples: int, seed: int) -> Any:
    return _import_umap().UMAP(
        n_components=n_components, n_neighbors=min(15, n_samples - 1), random_state=seed
    )

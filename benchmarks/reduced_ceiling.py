"""The accuracy ceiling of the reduced MNIST encoding, measured without training a QRNN.

``python -m benchmarks.reduced_ceiling --data-dir DIR [--limits 2000,7500]
[--embeddings tsne:2:30,umap:2] [--bits 4,5,6] [--place 5] [--deskew] [--out FILE]``

The ``mnist-reduced`` task feeds each image as ``bits``-bit codes of its PCA → t-SNE/UMAP
coordinates. No classifier of the codes can beat the one that answers, for every code, the
training label most frequent there; its accuracy on held-out images is the *ceiling* of the
encoding. For every embedding (``method:dims[:perplexity]``) and number of training images
(``limit``, the first images of the training file) this script fits the encoder on the
training part (``1 - val_fraction``, stratified, fixed by ``seed``), places the validation
and test images out of sample as the task does, and reports per ``bits``:

- ``ceiling`` on validation and test (the lookup table above; unseen codes get the most
  frequent training label),
- ``knn`` the accuracy of a 10-nearest-neighbour vote on the continuous embedding (what the
  coordinates hold before they are cut into cells),
- ``pca_knn`` the same vote in the PCA space the out-of-sample placement starts from,
- ``linear`` for the binary and the Gray code: a logistic regression on the code bits, a rough
  measure of how far from linear in the bits the QRNN's task is (the ceiling is the same for
  both codes, since each is a bijection of the other coordinate by coordinate).

``--deskew`` straightens every image first (:func:`qrnn_tn.data.pixels.deskew`, as the task
option ``deskew`` does).

Each line printed is one JSON record; ``--out`` also writes them as a markdown table.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from qrnn_tn.data import load_mnist
from qrnn_tn.data.pixels import deskew
from qrnn_tn.data.reduce import ReducedEncoder
from qrnn_tn.training import atomic_write

__all__ = ["Embedding", "lookup_ceiling", "gray", "code_bits", "measure", "main"]


@dataclass(frozen=True)
class Embedding:
    """One embedding to measure: ``method`` (tsne/umap), ``dims`` and the t-SNE perplexity."""

    method: str
    dims: int
    perplexity: float = 30.0

    @classmethod
    def parse(cls, text: str) -> Embedding:
        """``method:dims[:perplexity]``, e.g. ``tsne:2:30`` or ``umap:3``."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or parts[0] not in ("tsne", "umap"):
            raise ValueError(f"embedding {text!r}: write method:dims[:perplexity], e.g. tsne:2:30")
        return cls(parts[0], int(parts[1]), float(parts[2]) if len(parts) == 3 else 30.0)

    def __str__(self) -> str:
        """Return the embedding as a short label, e.g. ``tsne 2-D perplexity 30``."""
        tail = f" perplexity {self.perplexity:g}" if self.method == "tsne" else ""
        return f"{self.method} {self.dims}-D{tail}"


def lookup_ceiling(
    train_codes: np.ndarray, train_labels: np.ndarray, codes: np.ndarray, labels: np.ndarray
) -> float:
    """Accuracy on ``(codes, labels)`` of the most frequent training label of each code.

    Codes are rows of integers; a code never seen in training gets the most frequent
    training label overall. Ties go to the label seen first in training.
    """
    table: dict[tuple[int, ...], collections.Counter] = collections.defaultdict(collections.Counter)
    for code, label in zip(map(tuple, train_codes.tolist()), train_labels.tolist(), strict=True):
        table[code][label] += 1
    fallback = collections.Counter(train_labels.tolist()).most_common(1)[0][0]
    guesses = [
        table[code].most_common(1)[0][0] if code in table else fallback
        for code in map(tuple, codes.tolist())
    ]
    return float(np.mean(np.array(guesses) == labels))


def gray(codes: np.ndarray) -> np.ndarray:
    """Return the reflected binary Gray code of each integer: ``c ^ (c >> 1)``."""
    codes = np.asarray(codes, dtype=np.int64)
    return codes ^ (codes >> 1)


def code_bits(codes: np.ndarray, bits: int) -> np.ndarray:
    """``[N, C]`` integer codes as ``[N, C * bits]`` 0/1 features, MSB first per coordinate."""
    shifts = np.arange(bits - 1, -1, -1)
    return ((codes[:, :, None] >> shifts) & 1).reshape(len(codes), -1).astype(np.float64)


def _flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float64)


def _linear(train_codes, y_train, codes, y, bits: int) -> float:
    model = LogisticRegression(max_iter=2000).fit(code_bits(train_codes, bits), y_train)
    return float(model.score(code_bits(codes, bits), y))


def measure(
    images: np.ndarray,
    labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    embedding: Embedding,
    bits: Sequence[int],
    *,
    places: Sequence[int] = (5,),
    val_fraction: float = 0.1,
    in_sample: bool = False,
    seed: int = 0,
) -> list[dict]:
    """Measure one embedding's ceilings, per ``bits`` and per placement.

    The embedding is fitted on ``images`` less the validation part; t-SNE records come per
    number of neighbours placing new points (``places``).

    ``in_sample`` fits on every image instead and reads the validation codes from the fit
    (how the task embedded its validation split before it held it out first).
    """
    fit, val = train_test_split(
        np.arange(len(labels)), test_size=val_fraction, random_state=seed, stratify=labels
    )
    fit, val = np.sort(fit), np.sort(val)
    start = time.perf_counter()
    encoder = ReducedEncoder(
        embedding.dims, max(bits), embedding.method, perplexity=embedding.perplexity, seed=seed
    )
    encoder.fit_transform(images if in_sample else images[fit])
    seconds = time.perf_counter() - start
    fitted = encoder.embedding_
    train_emb = fitted[fit] if in_sample else fitted
    pca_fit = encoder.pca_.transform(_flat(images[fit]))
    splits = {"val": (images[val], labels[val]), "test": (test_images, test_labels)}
    pca = {name: encoder.pca_.transform(_flat(x)) for name, (x, _) in splits.items()}
    knn = KNeighborsClassifier(10).fit(train_emb, labels[fit])
    pca_knn = KNeighborsClassifier(10).fit(pca_fit, labels[fit])
    records = []
    for place in places if embedding.method == "tsne" else (0,):
        if place:
            encoder.knn_ = KNeighborsRegressor(place, weights="distance").fit(
                encoder.pca_.transform(_flat(images if in_sample else images[fit])), fitted
            )
        embedded = {name: encoder.embed(x) for name, (x, _) in splits.items()}
        if in_sample:
            embedded["val"] = fitted[val]
        for b in bits:
            encoder.bits = b
            train_codes = encoder.quantise(train_emb)
            record = {
                "limit": len(labels),
                "embedding": str(embedding) + (" (val in the fit)" if in_sample else ""),
                "bits": b,
                "place": place or "umap",
                "fit_seconds": round(seconds, 1),
                "cells_used": len({tuple(c) for c in train_codes.tolist()}),
                "train_lookup": lookup_ceiling(train_codes, labels[fit], train_codes, labels[fit]),
            }
            for name, (_, y) in splits.items():
                codes = encoder.quantise(embedded[name])
                record[f"ceiling_{name}"] = lookup_ceiling(train_codes, labels[fit], codes, y)
                record[f"knn_{name}"] = float(knn.score(embedded[name], y))
                record[f"pca_knn_{name}"] = float(pca_knn.score(pca[name], y))
            codes = encoder.quantise(embedded["val"])
            y = labels[val]
            record["linear_binary_val"] = _linear(train_codes, labels[fit], codes, y, b)
            record["linear_gray_val"] = _linear(gray(train_codes), labels[fit], gray(codes), y, b)
            records.append(record)
    return records


_COLUMNS = (
    ("limit", "train images"),
    ("embedding", "embedding"),
    ("deskew", "deskewed"),
    ("bits", "bits"),
    ("place", "placed by"),
    ("cells_used", "cells used"),
    ("train_lookup", "lookup on fit"),
    ("ceiling_val", "ceiling val"),
    ("ceiling_test", "ceiling test"),
    ("knn_val", "10-NN embedding val"),
    ("knn_test", "10-NN embedding test"),
    ("pca_knn_test", "10-NN PCA test"),
    ("linear_binary_val", "linear binary val"),
    ("linear_gray_val", "linear Gray val"),
    ("fit_seconds", "fit s"),
)


def table(records: list[dict]) -> str:
    """Format the records as a markdown table (accuracies in %)."""
    lines = [
        "| " + " | ".join(title for _, title in _COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    for r in records:
        cells = [
            f"{100 * r[key]:.1f}"
            if isinstance(r[key], float) and key != "fit_seconds"
            else str(r[key])
            for key, _ in _COLUMNS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """Run the ceiling study from the command line; return its records."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--limits", default="2000,7500")
    parser.add_argument("--embeddings", default="tsne:2:30")
    parser.add_argument("--bits", default="4,5,6")
    parser.add_argument("--places", default="5", help="neighbours placing new t-SNE points")
    parser.add_argument("--in-sample", action="store_true", help="validation inside the fit")
    parser.add_argument("--deskew", action="store_true", help="deskew the images first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="markdown table of the records")
    args = parser.parse_args(argv)
    images, labels = load_mnist(args.data_dir, "train")
    test_images, test_labels = load_mnist(args.data_dir, "test")
    if args.deskew:
        images, test_images = deskew(images), deskew(test_images)
    bits = [int(b) for b in args.bits.split(",")]
    records = []
    for limit in (int(n) for n in args.limits.split(",")):
        for text in args.embeddings.split(","):
            for record in measure(
                images[:limit],
                labels[:limit],
                test_images,
                test_labels,
                Embedding.parse(text),
                bits,
                places=[int(k) for k in args.places.split(",")],
                in_sample=args.in_sample,
                seed=args.seed,
            ):
                record["deskew"] = args.deskew
                print(json.dumps(record), flush=True)
                records.append(record)
    if args.out:
        atomic_write(Path(args.out), lambda f: f.write(table(records).encode()))
    return records


if __name__ == "__main__":
    main()

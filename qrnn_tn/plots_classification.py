"""Figures of a digit classification run (MNIST, sklearn digits): what the trained cell answers.

Three figures for the kept (best) parameters on the first :data:`MAX_IMAGES` test images
(a bound that keeps ``qrnn-tn plot`` within seconds to a minute, said in each title):

- ``confusion.png``: true class against the most probable label (QRNN.md §3), with a column
  for label words that name no class when the label tokens can write more than the classes;
- ``readout.png``: for a few test sequences, the label distribution the cell would give if
  the input stopped after each step, beside the image (pixel tasks) or its place in the
  embedding (reduced tasks);
- ``embedding.png`` (reduced tasks): the test points' continuous coordinates coloured by the
  predicted class, wrong ones ringed, on the grid of cells the bit codes tell apart.

The numbers drawn are written beside the figures in ``classification.json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.ticker import MaxNLocator

from qrnn_tn import jsonio
from qrnn_tn.data import SequenceDataset
from qrnn_tn.model import QRNN
from qrnn_tn.plots import DPI, _save
from qrnn_tn.training import EVAL_BATCH, TrainConfig, atomic_write

__all__ = [
    "CLASSIFICATION_TASKS",
    "REDUCED_TASKS",
    "MAX_IMAGES",
    "CONFUSION_SIZE",
    "READOUT_SIZE",
    "EMBEDDING_SIZE",
    "label_probabilities",
    "confusion_counts",
    "readout_steps",
    "readout_evolution",
    "plot_confusion",
    "plot_readout",
    "plot_embedding",
    "plot_classification",
]

#: Tasks whose runs get the classification figures.
CLASSIFICATION_TASKS = ("digits-pixel", "digits-reduced", "mnist-pixel", "mnist-reduced")
#: Tasks whose sequences encode an embedding (``SequenceDataset.embedding``).
REDUCED_TASKS = ("digits-reduced", "mnist-reduced")
#: Test images evaluated at most (the first ones of the test split).
MAX_IMAGES = 300
#: Test sequences whose readout is followed step by step.
N_READOUT = 4
#: Points at most along a sequence in the readout figure (long sequences are subsampled).
MAX_READOUT_POINTS = 50
CONFUSION_SIZE = (7.0, 6.0)
READOUT_SIZE = (10.0, 8.0)
EMBEDDING_SIZE = (8.0, 7.0)


@torch.no_grad()
def label_probabilities(
    model: QRNN, dataset: SequenceDataset, batch_size: int = EVAL_BATCH
) -> np.ndarray:
    """Exact label distributions ``[N, 2^(io k)]`` of a labelled set (k label tokens)."""
    k = dataset.n_label_steps
    chunk = max(1, batch_size // 2 ** (model.io * (k - 1)))
    out = []
    for start in range(0, len(dataset), chunk):
        rows = slice(start, start + chunk)
        targets = None if dataset.targets is None else dataset.targets[rows]
        out.append(model.label_distribution(dataset.words[rows], k, targets).cpu().numpy())
    return np.concatenate(out)


def confusion_counts(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Count ``[n_classes, n_classes + 1]``: row the true class, column the prediction.

    The last column counts predictions that are no class (a label word ``>= n_classes``).
    """
    counts = np.zeros((n_classes, n_classes + 1), dtype=np.int64)
    np.add.at(counts, (labels, np.minimum(predicted, n_classes)), 1)
    return counts


def readout_steps(n_inputs: int, max_points: int = MAX_READOUT_POINTS) -> np.ndarray:
    """Choose the numbers of input tokens after which the readout is shown.

    All of ``1 … n_inputs``, or ``max_points`` of them evenly spread, always including the
    last.
    """
    if n_inputs <= max_points:
        return np.arange(1, n_inputs + 1)
    return np.unique(np.linspace(1, n_inputs, max_points).round().astype(np.int64))


@torch.no_grad()
def readout_evolution(
    model: QRNN, words: np.ndarray, n_label_steps: int, steps: np.ndarray
) -> np.ndarray:
    """Compute label distributions ``[n, len(steps), 2^(io k)]`` of cut sequences.

    The sequences ``words [n, L]`` are cut after ``steps[j]`` input tokens: the inputs read
    so far, then the label tokens.

    The last entry of ``steps`` equal to ``L - k`` gives the cell's actual answer.
    """
    words = np.asarray(words, dtype=np.int64)
    k = n_label_steps
    labels = words[:, -k:]
    return np.stack(
        [
            model.label_distribution(np.concatenate([words[:, :n], labels], axis=1), k)
            .cpu()
            .numpy()
            for n in steps
        ],
        axis=1,
    )


def _class_names(classes: list[int], n_words: int) -> list[str]:
    return [str(c) for c in classes] + (["none"] if n_words > len(classes) else [])


def plot_confusion(
    counts: np.ndarray, classes: list[int], path: str | os.PathLike, title: str
) -> Path:
    """Heat map of :func:`confusion_counts` with each count written in its cell."""
    n = len(classes)
    shown = counts if counts[:, n].any() else counts[:, :n]
    fig, ax = plt.subplots(figsize=CONFUSION_SIZE, dpi=DPI, layout="constrained")
    rates = shown / np.maximum(shown.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), c in np.ndenumerate(shown):
        if c:
            ax.text(j, i, str(c), ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(shown.shape[1]), _class_names(classes, shown.shape[1]))
    ax.set_yticks(range(n), [str(c) for c in classes])
    ax.set_xlabel("predicted (most probable label)")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize="medium")
    fig.colorbar(image, ax=ax, label="share of the true class")
    return _save(fig, path)


def _pixel_image(words: np.ndarray, io: int, n_inputs: int) -> np.ndarray | None:
    """Draw the row-major scanline (lane 0) of a pixel sequence as a square image, if square."""
    side = int(round(np.sqrt(n_inputs)))
    if side * side != n_inputs:
        return None
    return ((words[:n_inputs] >> (io - 1)) & 1).reshape(side, side)


def plot_readout(
    evolution: np.ndarray,
    steps: np.ndarray,
    dataset: SequenceDataset,
    rows: np.ndarray,
    classes: list[int],
    path: str | os.PathLike,
    title: str,
) -> Path:
    """Plot one row per sequence: its thumbnail, then its label distribution per cut.

    The thumbnail is its place in the embedding of a reduced set, else the image its
    row-major scanline draws; the distributions come from :func:`readout_evolution`, a
    column per cut, the true class ringed.
    """
    assert dataset.labels is not None  # a classification set
    n_words = evolution.shape[-1]
    n = len(classes)
    names = _class_names(classes, n_words)
    shown = np.concatenate(
        [evolution[..., :n], evolution[..., n:].sum(-1, keepdims=True)], axis=-1
    )[..., : len(names)]
    n_inputs = dataset.length - dataset.n_label_steps
    fig, axes = plt.subplots(
        len(rows), 2, figsize=READOUT_SIZE, dpi=DPI, layout="constrained", squeeze=False,
        gridspec_kw={"width_ratios": [1, 4]},
    )  # fmt: skip
    for i, ((thumb, heat), row) in enumerate(zip(axes, rows, strict=True)):
        label = int(dataset.labels[row])
        if dataset.embedding is not None and dataset.embedding.shape[1] >= 2:
            thumb.scatter(*dataset.embedding[:, :2].T, s=2, c="0.8")
            thumb.scatter(*dataset.embedding[row, :2], s=60, c="red", marker="*")
            thumb.set_title(f"test point {row}", fontsize="small")
        elif (image := _pixel_image(dataset.words[row], dataset.io, n_inputs)) is not None:
            thumb.imshow(image, cmap="gray_r", interpolation="nearest")
            thumb.set_title(f"test image {row}", fontsize="small")
        thumb.set_xticks([])
        thumb.set_yticks([])
        edges = np.concatenate([[0.5], (steps[1:] + steps[:-1]) / 2, [steps[-1] + 0.5]])
        mesh = heat.pcolormesh(
            edges, np.arange(len(names) + 1) - 0.5, shown[i].T, cmap="magma", vmin=0, vmax=1
        )
        heat.plot(steps[-1], label, "o", ms=10, mfc="none", mec="cyan", mew=1.5)
        predicted = int(np.argmax(evolution[i, -1]))
        heat.set_title(
            f"true {classes[label]}, answer {names[min(predicted, len(names) - 1)]} "
            f"(p = {evolution[i, -1, predicted]:.2f})",
            fontsize="small",
        )
        heat.set_yticks(range(len(names)), names)
        heat.xaxis.set_major_locator(MaxNLocator(integer=True))
        heat.set_ylabel("class")
    axes[-1, 1].set_xlabel("input tokens read before the label is asked for")
    fig.colorbar(mesh, ax=axes[:, 1], label="probability of the label")
    fig.suptitle(title, fontsize="medium")
    return _save(fig, path)


def plot_embedding(
    embedding: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    classes: list[int],
    grid: tuple[np.ndarray, np.ndarray, int] | None,
    path: str | os.PathLike,
    title: str,
) -> Path:
    """Test points ``embedding [N, C]`` coloured by predicted class, wrong ones ringed.

    One panel per pair of the first three coordinates. ``grid = (low, high, bits)`` draws
    the cells of the bit codes (the training range cut into ``2**bits`` per coordinate).
    """
    n_coords = embedding.shape[1]
    pairs = [(0, 1), (0, 2), (1, 2)][: 1 if n_coords == 2 else 3] if n_coords >= 2 else [(0, 0)]
    width, height = EMBEDDING_SIZE
    fig, axes = plt.subplots(
        1, len(pairs), figsize=(width * len(pairs), height), dpi=DPI, layout="constrained",
        squeeze=False,
    )  # fmt: skip
    n = len(classes)
    colours = plt.get_cmap("tab10" if n <= 10 else "tab20")
    wrong = predicted != labels
    for ax, (a, b) in zip(axes[0], pairs, strict=True):
        y = embedding[:, b] if a != b else labels + np.linspace(-0.3, 0.3, len(labels))
        if grid is not None:
            low, high, bits = grid
            for value in np.linspace(low[a], high[a], 2**bits + 1):
                ax.axvline(value, color="0.8", lw=0.5, zorder=0)
            if a != b:
                for value in np.linspace(low[b], high[b], 2**bits + 1):
                    ax.axhline(value, color="0.8", lw=0.5, zorder=0)
        for c in range(n + 1):
            chosen = np.minimum(predicted, n) == c
            if chosen.any():
                ax.scatter(
                    embedding[chosen, a], y[chosen], s=12,
                    color=colours(c % colours.N) if c < n else "black",
                    label=str(classes[c]) if c < n else "none",
                )  # fmt: skip
        ax.scatter(
            embedding[wrong, a], y[wrong], s=60, facecolors="none", edgecolors="red",
            linewidths=1.0, label="wrong",
        )  # fmt: skip
        ax.set_xlabel(f"coordinate {a}")
        ax.set_ylabel(f"coordinate {b}" if a != b else "true class (jittered)")
    axes[0, -1].legend(title="predicted", fontsize="small", loc="best", markerscale=1.5)
    fig.suptitle(title, fontsize="medium")
    return _save(fig, path)


@dataclass(frozen=True)
class _Context:
    """What every figure title says: task, data, how many test images of how many."""

    task: str
    data: str
    shown: int
    total: int

    def title(self, what: str) -> str:
        return (
            f"{self.task}: {what}\n{self.data}\n"
            f"first {self.shown} of {self.total} test images, best parameters"
        )


def _data_label(config: TrainConfig, options: dict[str, Any]) -> str:
    """How to name the data: the README of an MNIST subset asks for its sizes to be said."""
    if not config.task.startswith("mnist"):
        return "sklearn digits 8x8"
    from qrnn_tn.data import load_mnist
    from qrnn_tn.tasks import _mnist_dir

    directory = _mnist_dir(options.get("data_dir"))
    n_train, n_test = (len(load_mnist(directory, split)[1]) for split in ("train", "test"))
    if (n_train, n_test) == (60000, 10000):
        return "MNIST"
    return f"MNIST subset ({n_train} train / {n_test} test images, {Path(directory).name})"


def plot_classification(
    model: QRNN,
    config: TrainConfig,
    train: SequenceDataset,
    test: SequenceDataset,
    classes: list[int],
    out_dir: str | os.PathLike,
    max_images: int = MAX_IMAGES,
) -> dict[str, Path]:
    """Draw the classification figures of a run, and ``classification.json`` with their numbers.

    ``classes`` are the digits in class-index order; ``train`` gives the code grid of a
    reduced task (its embedding's range). Returns ``{name: path}`` for ``confusion``,
    ``readout``, ``embedding`` (reduced tasks) and ``classification`` (the JSON).
    """
    from qrnn_tn.tasks import task_options

    out_dir = Path(out_dir)
    shown = test.subset(np.arange(min(max_images, len(test))))
    assert shown.labels is not None  # the caller checks it is a classification task
    context = _Context(
        config.task, _data_label(config, task_options(config.task, config.task_options)),
        len(shown), len(test),
    )  # fmt: skip
    probs = label_probabilities(model, shown)
    predicted = probs.argmax(-1)
    counts = confusion_counts(shown.labels, predicted, len(classes))
    accuracy = float(np.mean(predicted == shown.labels))
    out = {
        "confusion": plot_confusion(
            counts,
            classes,
            out_dir / "confusion.png",
            context.title(f"confusion matrix, accuracy {100 * accuracy:.1f} %"),
        )
    }
    rows = _readout_rows(shown.labels, predicted)
    steps = readout_steps(shown.length - shown.n_label_steps)
    evolution = readout_evolution(model, shown.words[rows], shown.n_label_steps, steps)
    out["readout"] = plot_readout(
        evolution,
        steps,
        shown,
        rows,
        classes,
        out_dir / "readout.png",
        context.title("label distribution if the input stopped after each step"),
    )
    record: dict[str, Any] = {
        "task": config.task,
        "classes": classes,
        "test_images": len(shown),
        "accuracy": accuracy,
        "predicted": predicted.tolist(),
        "confusion": counts.tolist(),
        "readout": {"rows": rows.tolist(), "steps": steps.tolist(), "probs": evolution.tolist()},
    }
    if config.task in REDUCED_TASKS and shown.embedding is not None:
        bits = shown.length - shown.n_label_steps
        grid = None
        if train.embedding is not None:
            grid = (train.embedding.min(axis=0), train.embedding.max(axis=0), bits)
        out["embedding"] = plot_embedding(
            shown.embedding,
            shown.labels,
            predicted,
            classes,
            grid,
            out_dir / "embedding.png",
            context.title(
                f"test embedding by predicted class, {int((predicted != shown.labels).sum())} "
                "wrong (ringed), grey grid: the code cells"
            ),
        )
        record["embedding"] = shown.embedding.tolist()
    path = out_dir / "classification.json"
    atomic_write(path, lambda f: f.write(jsonio.dumps(record).encode()))
    out["classification"] = path
    return out


def _readout_rows(labels: np.ndarray, predicted: np.ndarray, n: int = N_READOUT) -> np.ndarray:
    """Choose up to ``n`` test rows to follow.

    The first wrong answer, if any, then the first row of each class not yet shown, then
    further rows in order.
    """
    wrong = np.flatnonzero(predicted != labels)
    chosen = [int(wrong[0])] if wrong.size else []
    for row in range(len(labels)):
        if len(chosen) < n and row not in chosen and labels[row] not in labels[chosen]:
            chosen.append(row)
    for row in range(len(labels)):
        if len(chosen) < n and row not in chosen:
            chosen.append(row)
    return np.array(sorted(chosen), dtype=np.int64)

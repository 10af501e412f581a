"""Figures of a training run (matplotlib, Agg): curves, per-step distributions, samples.

Every figure has a fixed size in pixels (``figsize * DPI``) and is written atomically as
PNG. :func:`plot_run` makes all of them next to a run's ``metrics.jsonl``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeGuard

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import Colormap, ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from qrnn_tn.model import QRNN, step_targets  # noqa: E402
from qrnn_tn.training import RunDir, RunDirError, atomic_write, load_run, read_metrics  # noqa: E402  # noqa: E402

__all__ = [
    "DPI",
    "CURVES_SIZE",
    "DISTRIBUTION_SIZE",
    "SAMPLES_SIZE",
    "plot_curves",
    "plot_distributions",
    "plot_samples",
    "plot_bands",
    "plot_run",
]

DPI = 100
#: Figure sizes in inches; the PNG is ``size * DPI`` pixels (width, height).
CURVES_SIZE = (12.0, 3.6)
DISTRIBUTION_SIZE = (10.0, 4.0)
SAMPLES_SIZE = (10.0, 4.0)


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
    plt.close(fig)
    return path


def _word_labels(io: int) -> list[str] | None:
    return [format(w, f"0{io}b") for w in range(2**io)] if io <= 4 else None


def _finite_points(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """Return the steps and values of ``key`` where both are finite numbers.

    A diverged step (logged as ``null``) or a damaged record leaves a gap instead of
    breaking the plot.
    """
    steps: list[float] = []
    values: list[float] = []
    for record in records:
        step, value = record.get("step"), record.get(key)
        if _is_number(step) and _is_number(value) and np.isfinite(step) and np.isfinite(value):
            steps.append(step)
            values.append(value)
    return steps, values


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def plot_curves(metrics: str | os.PathLike | list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Plot loss, accuracy and postselection overhead against the step (train, validation).

    With a truncating backend (MPS) the weight a bond cap discarded is plotted too.

    ``metrics`` is a run directory, a ``metrics.jsonl`` path or its records.
    """
    records = metrics if isinstance(metrics, list) else read_metrics(metrics)
    by_split = {
        split: [r for r in records if r.get("split") == split] for split in ("train", "val")
    }
    if not by_split["train"] and not by_split["val"]:
        raise RunDirError(
            f"{metrics if not isinstance(metrics, list) else 'the metrics'}: no train or "
            "validation records to plot; has the run made a step yet?"
        )
    panels = [
        ("loss", "loss", "linear"),
        ("accuracy", "accuracy", "linear"),
        ("overhead", "postselection overhead (mean 1/p)", "log"),
    ]
    if any("discarded" in r for r in by_split["train"] + by_split["val"]):
        # symlog: a cap that discarded nothing plots at zero instead of vanishing
        panels.append(("discarded", "weight discarded by the bond cap", "symlog"))
    width, height = CURVES_SIZE
    fig, axes = plt.subplots(
        1, len(panels), figsize=(width * len(panels) / 3, height), dpi=DPI, layout="constrained"
    )
    for ax, (key, title, scale) in zip(axes, panels, strict=True):
        steps, values = _finite_points(by_split["train"], key)
        if steps:
            ax.plot(steps, values, lw=0.8, alpha=0.5, label="train batch")
        steps, values = _finite_points(by_split["val"], key)
        if steps:
            ax.plot(steps, values, "o-", ms=3, label="validation")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_yscale(scale, **({"linthresh": 1e-15} if scale == "symlog" else {}))
        ax.grid(alpha=0.3)
    axes[1].set_ylim(-0.02, 1.02)
    axes[0].legend()
    return _save(fig, path)


@torch.no_grad()
def plot_distributions(
    model: QRNN,
    words: torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    mask: torch.Tensor | np.ndarray | None = None,
    title: str = "",
    targets: torch.Tensor | np.ndarray | None = None,
) -> Path:
    """Heat map of the teacher-forced distributions ``p_t(w)`` of one sequence ``[L]``.

    Rows are words, columns steps; the target of each step (``targets [L - 1]`` when the
    task has a target stream, else the next word) is marked: a ring where the step is
    scored, a dot where it is not.
    """
    words = torch.as_tensor(words).reshape(1, -1)
    if targets is not None:
        targets = torch.as_tensor(targets).reshape(1, -1)
    probs = model(words, targets)[0].cpu().numpy()  # [steps, 2^io]
    steps = probs.shape[0]
    scored = np.ones(steps, bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    targets = step_targets(words, targets)[0].cpu().numpy()
    fig, ax = plt.subplots(figsize=DISTRIBUTION_SIZE, dpi=DPI, layout="constrained")
    image = ax.imshow(
        probs.T,
        aspect="auto",
        origin="lower",
        cmap="magma",
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    t = np.arange(steps)
    ax.scatter(
        t[scored],
        targets[scored],
        s=60,
        facecolors="none",
        edgecolors="cyan",
        linewidths=1.5,
        label="target (scored)",
    )
    ax.scatter(t[~scored], targets[~scored], s=10, c="cyan", label="target (not scored)")
    labels = _word_labels(model.io)
    if labels is not None:
        ax.set_yticks(range(2**model.io), labels)
    ax.set_xlabel("step t (reads token t, predicts token t+1)")
    ax.set_ylabel("word")
    ax.set_title(title or "per-step output distributions p_t(w), teacher forced")
    ax.legend(loc="upper right", fontsize="small", framealpha=0.6)
    fig.colorbar(image, ax=ax, label="probability")
    return _save(fig, path)


@torch.no_grad()
def plot_samples(
    model: QRNN,
    prompts: torch.Tensor | np.ndarray,
    steps: int,
    path: str | os.PathLike,
    generator: torch.Generator | None = None,
    title: str = "",
) -> Path:
    """Sequences generated from ``prompts [n, P]`` (``steps`` sampled tokens each) as a grid."""
    prompts = torch.as_tensor(prompts)
    if prompts.ndim == 1:
        prompts = prompts.unsqueeze(0)
    samples = model.generate(prompts, steps, generator=generator).cpu().numpy()
    n_words = 2**model.io
    fig, ax = plt.subplots(figsize=SAMPLES_SIZE, dpi=DPI, layout="constrained")
    if n_words <= 10:
        cmap: Colormap = ListedColormap(plt.get_cmap("tab10")(np.arange(n_words)))
    else:
        cmap = plt.get_cmap("viridis", n_words)
    image = ax.imshow(
        samples, aspect="auto", cmap=cmap, vmin=-0.5, vmax=n_words - 0.5, interpolation="nearest"
    )
    ax.axvline(prompts.shape[1] - 0.5, color="black", lw=2)
    if samples.size <= 400:
        labels = _word_labels(model.io) or [str(w) for w in range(n_words)]
        for (i, j), w in np.ndenumerate(samples):
            ax.text(j, i, labels[w], ha="center", va="center", fontsize=7, color="white")
    ax.set_xlabel("position (prompt left of the black line, sampled right of it)")
    ax.set_ylabel("sample")
    ax.set_title(title or "free-running samples")
    bar = fig.colorbar(image, ax=ax, label="word", ticks=range(n_words) if n_words <= 16 else None)
    if n_words <= 16:
        bar.ax.set_yticklabels(_word_labels(model.io) or [str(w) for w in range(n_words)])
    return _save(fig, path)


def plot_run(run_dir: str | os.PathLike, n_samples: int = 8, seed: int = 0) -> dict[str, Path]:
    """All figures of a run, written into ``run_dir``; returns ``{name: path}``.

    ``curves.png`` always; for a run of a registered task with a checkpoint also
    ``distributions.png`` (the first test sequence under the best parameters) and
    ``samples.png`` (``n_samples`` sequences generated from the test sequences' first
    tokens, as long as a test sequence); for a digit classification run also the figures of
    :func:`~qrnn_tn.plots_classification.plot_classification`.
    """
    from qrnn_tn.plots_classification import CLASSIFICATION_TASKS, plot_classification
    from qrnn_tn.tasks import TASKS, build_datasets, task_classes

    run_dir = Path(run_dir)
    out = {"curves": plot_curves(run_dir, run_dir / "curves.png")}
    if not RunDir(run_dir).file(RunDir.BEST).is_file():
        return out
    model, config = load_run(run_dir, "best")
    if config.task not in TASKS:
        return out
    data = build_datasets(config.task, seed=config.seed, **config.task_options)
    test = data.test
    out["distributions"] = plot_distributions(
        model,
        test.words[0],
        run_dir / "distributions.png",
        mask=test.mask[0],
        targets=None if test.targets is None else test.targets[0],
        title=f"{config.task}: p_t(w) on test sequence 0 (rings: scored targets)",
    )
    prompts = test.words[:n_samples, :1]
    out["samples"] = plot_samples(
        model,
        prompts,
        test.length - 1,
        run_dir / "samples.png",
        generator=torch.Generator().manual_seed(seed),
        title=f"{config.task}: {len(prompts)} sequences sampled from the trained cell",
    )
    classes = task_classes(config.task, config.task_options)
    if config.task in CLASSIFICATION_TASKS and classes is not None:
        out.update(plot_classification(model, config, data.train, test, classes, run_dir))
    return out


def plot_bands(
    summary: dict[str, list[dict[str, Any]]],
    path: str | os.PathLike,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logy: bool = False,
) -> Path:
    """Per series (e.g. model): ``median`` vs ``length`` with a ``min``–``max`` band.

    ``summary[name]`` is a list of rows with keys ``length``, ``median``, ``min``, ``max``.
    Lengths spanning more than a factor of 10 get a logarithmic axis.
    """
    fig, ax = plt.subplots(figsize=CURVES_SIZE)
    lengths = [r["length"] for rows in summary.values() for r in rows]
    if lengths and max(lengths) > 10 * min(lengths):
        ax.set_xscale("log")
    for name, rows in summary.items():
        if not rows:
            continue
        x = [r["length"] for r in rows]
        (line,) = ax.plot(x, [r["median"] for r in rows], "o-", label=name)
        lo, hi = [r["min"] for r in rows], [r["max"] for r in rows]
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)

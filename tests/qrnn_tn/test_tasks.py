"""The task registry: defaults, dataset builders, options and their errors."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.spec import load_spec
from qrnn_tn.data import DataError, digits_split
from qrnn_tn.model import QRNN, step_losses
from qrnn_tn.tasks import TASKS, build_datasets, default_config, default_spec

REPO = Path(__file__).resolve().parents[2]


def splits(data):
    return data.train, data.val, data.test


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_has_a_valid_cell_and_config(name):
    spec = default_spec(name)
    config = default_config(name)
    config.validate()
    assert spec.n_parameters() > 0 and config.task == name


def test_default_cells_are_the_packaged_files_one_per_task():
    """Each task's default cell is ``qrnn_tn/cells/<task>.toml`` (and no file is orphaned);
    the parameter counts are those the docs quote (the DNA default is the small cell, the
    MNIST pixel default the paper's 1212-parameter cell)."""
    cells = REPO / "qrnn_tn" / "cells"
    assert sorted(p.stem for p in cells.glob("*.toml")) == sorted(TASKS)
    for name in TASKS:
        assert default_spec(name) == load_spec(cells / f"{name}.toml")
    assert default_spec("dna").n_parameters() == 96
    assert default_spec("mnist-pixel").n_parameters() == 1212
    assert default_spec("mnist-pixel").neuron.offset == 1.2


def _without_name(spec):
    data = spec.to_dict()
    data.pop("name", None)
    return data


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.toml")), ids=lambda p: p.stem)
def test_each_example_says_truly_which_task_default_it_is(path):
    """An example's ``# Task default: X`` line names a task whose default cell it is (up to
    its name); ``none`` only where it is no task's default."""
    label = re.search(r"^# Task default: ([a-z-]+)", path.read_text(), re.MULTILINE)
    assert label, f"{path.name} does not say which task default it is"
    same = {n for n in TASKS if _without_name(default_spec(n)) == _without_name(load_spec(path))}
    if label.group(1) == "none":
        assert not same, f"{path.name} is the default of {same}"
    else:
        assert label.group(1) in same


@pytest.fixture(scope="module")
def pixels():
    return build_datasets("digits-pixel", 0, digits="3,6")


def test_digits_pixel_defaults_read_the_full_image(pixels):
    _, test_labels = digits_split((3, 6), "test")
    size = TASKS["digits-pixel"].options["size"]
    assert pixels.test.words.shape == (len(test_labels), size * size + 1)
    assert pixels.train.io == default_spec("digits-pixel").io == 2
    assert pixels.test.labels.tolist() == [int(d == 6) for d in test_labels]
    assert len(pixels.train) + len(pixels.val) == len(digits_split((3, 6), "train")[1])


def test_digits_pixel_is_deterministic_and_threshold_matters(pixels):
    again = build_datasets("digits-pixel", 0, digits="3,6")
    for a, b in zip(splits(pixels), splits(again), strict=True):
        assert np.array_equal(a.words, b.words)
    other = build_datasets("digits-pixel", 0, digits="3,6", threshold=2.0)
    assert other.test.words[:, :-1].sum() > pixels.test.words[:, :-1].sum()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"size": 9}, "size=9"),
        ({"size": 2.5}, "size=2.5"),
        ({"digits": "3,x"}, "digits="),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"colour": "red"}, "no option"),
    ],
)
def test_digits_pixel_bad_options(options, match):
    with pytest.raises(DataError, match=match):
        build_datasets("digits-pixel", 0, **options)


@pytest.fixture(scope="module")
def reduced():
    return build_datasets("digits-reduced", 0, digits="0,1", bits=3)


def test_digits_reduced_splits_shapes_and_labels(reduced):
    bits = 3
    train_labels = digits_split((0, 1), "train")[1]
    test_labels = digits_split((0, 1), "test")[1]
    assert len(reduced.train) + len(reduced.val) == len(train_labels)
    assert len(reduced.val) == round(0.2 * len(train_labels))
    assert reduced.test.labels.tolist() == test_labels.tolist()  # class index = digit here
    for ds in splits(reduced):
        assert ds.io == default_spec("digits-reduced").io == 2
        assert ds.words.shape == (len(ds), bits + 1) and ds.n_label_steps == 1
        assert ds.mask.sum() == len(ds) and ds.mask[:, -1].all()
        assert set(np.unique(ds.labels)) == {0, 1}
    assert len({ds.name for ds in splits(reduced)}) == 3


def test_digits_reduced_is_deterministic_given_the_seed(reduced):
    again = build_datasets("digits-reduced", 0, digits="0,1", bits=3)
    for a, b in zip(splits(reduced), splits(again), strict=True):
        assert np.array_equal(a.words, b.words) and np.array_equal(a.labels, b.labels)


def test_digits_reduced_defaults_are_ten_classes_in_two_label_tokens():
    options = TASKS["digits-reduced"].options
    assert options["digits"] == "0,1,2,3,4,5,6,7,8,9"
    assert options["n_components"] == default_spec("digits-reduced").io


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"method": "pca"}, "method"),
        ({"bits": 0}, "bits"),
        ({"n_components": 0}, "n_components"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"digits": "1,1"}, "repeats"),
        ({"data_dir": "x"}, "no option"),
    ],
)
def test_digits_reduced_bad_options(options, match):
    with pytest.raises(DataError, match=match):
        build_datasets("digits-reduced", 0, **options)


def _write_idx(path, array):
    """IDX bytes written independently of the reader: magic, big-endian sizes, uint8 data."""
    import gzip
    import struct

    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def tiny_mnist(tmp_path):
    """Eight 28x28 images per split: digit d lights the d-th row of 2x2 blocks of the crop."""
    labels = np.array([3, 6, 1, 3, 6, 6, 0, 3], dtype=np.uint8)
    images = np.zeros((8, 28, 28), dtype=np.uint8)
    for n, d in enumerate(labels):
        row = 4 + 2 * int(d)  # crop window starts at 4; 10x10 pixel row d
        images[n, row : row + 2, 4:24] = 255
    for stem in ("train", "t10k"):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", labels)
    return tmp_path, labels


def test_mnist_pixel_task_selects_the_digits_scans_and_labels(tiny_mnist):
    directory, labels = tiny_mnist
    data = build_datasets("mnist-pixel", 0, digits="3,6", data_dir=str(directory), val_fraction=0.4)
    kept = [int(d) for d in labels if d in (3, 6)]
    assert len(data.test) == len(kept) == 6 and len(data.train) + len(data.val) == 6
    assert data.test.labels.tolist() == [int(d == 6) for d in kept]  # classes in --digits order
    for n, d in enumerate(kept):
        words = data.test.words[n]
        assert words.shape == (101,)  # 10x10 pixels, then one 2-bit label token
        row_major = (words[:100] >> 1) & 1
        column_major = words[:100] & 1
        assert np.flatnonzero(row_major).tolist() == list(range(10 * d, 10 * d + 10))
        assert np.flatnonzero(column_major).tolist() == list(range(d, 100, 10))
        assert words[100] == int(d == 6)
    assert data.test.mask[:, :-1].sum() == 0 and data.test.mask[:, -1].all()
    limited = build_datasets("mnist-pixel", 0, digits="3,6", data_dir=str(directory), limit=4)
    assert len(limited.test) == 4 and len(limited.train) + len(limited.val) == 4


def test_mnist_tasks_explain_a_missing_directory(monkeypatch):
    monkeypatch.delenv("QRNN_TN_MNIST", raising=False)
    for name in ("mnist-pixel", "mnist-reduced"):
        with pytest.raises(DataError, match="--data-dir"):
            build_datasets(name, 0)


def test_mnist_reduced_limits_training_images_only_and_deskews_on_request(tmp_path):
    # slanted strokes: class d leans by (d - 1.5) / 4 (pixels.deskew is tested on its own)
    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(4, dtype=np.uint8), 10)
    images = np.zeros((40, 28, 28), dtype=np.uint8)
    for n, d in enumerate(labels):
        start = 10 + rng.integers(-2, 3)
        for row in range(6, 22):
            col = int(start + (d - 1.5) / 4 * (row - 14))
            images[n, row, col : col + 2] = 255
    for stem in ("train", "t10k"):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", labels)
    options = {"digits": "0,1,2,3", "data_dir": str(tmp_path), "val_fraction": 0.25, "limit": 20}
    plain = build_datasets("mnist-reduced", 0, **options)
    upright = build_datasets("mnist-reduced", 0, deskew=True, **options)
    for data in (plain, upright):
        assert len(data.train) + len(data.val) == 20 and len(data.test) == 40
    assert not np.array_equal(plain.train.words, upright.train.words)  # the option is read


@pytest.mark.parametrize(
    ("task", "options", "match"),
    [
        ("elman-xor", {"n_triples": "abc"}, "n_triples='abc': expected an integer"),
        ("elman-xor", {"n_train": 0}, "n_train=0: must be >= 1"),
        ("elman-xor", {"n_val": True}, "expected an integer"),
        ("mnist-pixel", {"limit": 0}, "limit=0: must be >= 1"),
        ("mnist-pixel", {"data_dir": 3}, "expected str"),
        ("digits-pixel", {"threshold": "x"}, "expected a number"),
        ("digits-pixel", {"val_fraction": float("nan")}, "finite"),
        ("memorise", {"pattern": 1}, "expected str"),
        ("digits-pixel", {"digits": "0,11"}, r"no digit class \[11\]"),
        ("digits-pixel", {"digits": "3"}, "at least two digits"),
        ("digits-reduced", {"digits": [4, 4]}, "at least two digits"),
        ("mnist-reduced", {"neighbors": 0}, "neighbors=0: must be >= 1"),
        ("mnist-reduced", {"perplexity": -1.0}, "perplexity=-1.0; must be > 0"),
        ("mnist-reduced", {"perplexity": "x"}, "expected a number"),
        ("mnist-reduced", {"deskew": "yes"}, "expected bool"),
    ],
)
def test_options_of_the_wrong_type_or_range_are_refused(task, options, match):
    with pytest.raises(DataError, match=match):
        build_datasets(task, 0, **options)


@given(
    key=st.sampled_from(["neighbors", "perplexity", "deskew"]),
    value=st.one_of(
        st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.booleans()
    ),
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # same env every input
def test_reduced_placement_options_get_a_clean_error_before_any_data(monkeypatch, key, value):
    monkeypatch.delenv("QRNN_TN_MNIST", raising=False)  # a good value then fails on the data
    with pytest.raises(DataError, match=f"{key}=|--data-dir"):
        build_datasets("mnist-reduced", 0, **{key: value})


def test_default_dna_cell_can_store_and_recall_the_marked_base() -> None:
    # Input neurons hold the workspace (eta = 0) except on the mark, where h0, h1 flip to the
    # base bits (eta = pi/2); output neurons copy h0, h1 onto the base lanes, a little
    # softened so the unscored intermediate tokens keep a nonzero probability.
    spec = default_spec("dna")
    assert (spec.io, spec.workspace, spec.stages, spec.neuron.degree) == (3, 3, 0, 2)
    model = QRNN(spec, init=torch.zeros(spec.n_parameters()))
    index = {name: i for i, name in enumerate(model.slot_names)}
    theta = torch.zeros(model.n_params, dtype=torch.float64)
    soft = 0.6
    for name, i in index.items():
        if name.endswith(".[]"):
            theta[i] = -math.pi / 2 + (soft / 2 if name.startswith("out.") else 0.0)
    theta[index["in.h0.[0,1]"]] = theta[index["in.h1.[0,2]"]] = math.pi
    theta[index["out.o1.[3]"]] = theta[index["out.o2.[4]"]] = math.pi - soft
    val = build_datasets("dna", 0, length=10, n_train=1, n_val=32).val
    words, targets = torch.from_numpy(val.words), torch.from_numpy(val.targets)
    with torch.no_grad():
        last = step_losses(QRNN(spec, init=theta)(words, targets), targets)[:, -1]
    assert float(last.max()) < 1e-5

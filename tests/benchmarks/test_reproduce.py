"""The reproduction budgets: which runs they make and how their rows are labelled."""

from __future__ import annotations

import json

import pytest

from benchmarks import reproduce
from benchmarks.reproduce import BUDGETS, Run, combine_seeds, select_runs
from qrnn_tn.tasks import TASKS
from qrnn_tn.training import TrainError


def test_budgets_name_known_tasks_and_keep_the_quick_one():
    for runs in BUDGETS.values():
        assert all(run.task in TASKS for run in runs)
    assert [r.task for r in BUDGETS["quick"]] == ["elman-xor", "elman-letters", "memorise", "dna"]
    assert {r.task for r in BUDGETS["full"]} == set(TASKS)


def test_digits_budget_rows_show_the_digit_subset():
    labels = [run.label for run in BUDGETS["digits"]]
    assert labels == [
        "digits-pixel (digits=0,1)",
        "digits-pixel (digits=3,6)",
        "digits-reduced",
    ]
    assert all(run.task in reproduce.PAPER for run in BUDGETS["digits"])


def test_select_runs_by_task_name():
    digits = BUDGETS["digits"]
    assert select_runs(digits, []) == list(digits)
    assert select_runs(digits, ["digits-reduced", "digits-pixel"]) == [digits[2], *digits[:2]]
    assert select_runs(digits, ["dna"]) == [Run("dna")]


def test_run_task_trains_and_labels_the_row():
    row = reproduce.run_task(Run("digits-pixel", 1, {"digits": "3,6"}), None)
    assert row["task"] == "digits-pixel (digits=3,6)" and row["options"] == {"digits": "3,6"}
    assert row["steps"] == row["total_steps"] == 1 and 0 <= row["accuracy"] <= 1
    line = reproduce.format_table([row]).splitlines()[2]
    assert line.startswith("| digits-pixel (digits=3,6) | 2/")


def test_mnist_without_data_is_skipped(monkeypatch):
    monkeypatch.delenv("QRNN_TN_MNIST", raising=False)
    row = reproduce.run_task(Run("mnist-reduced"), None)
    assert "skipped" in row and "--data-dir" in row["skipped"]


def test_budget_spec_files_exist_and_run_directories_are_distinct():
    runs = [run for budget in BUDGETS.values() for run in budget]
    for run in runs:
        assert run.spec is None or (reproduce.REPO / run.spec).is_file()
        assert run.slug and all(c.isalnum() or c in ".=-_" for c in run.slug)
    for budget in BUDGETS.values():
        assert len({run.slug for run in budget}) == len(budget)
    assert BUDGETS["digits"][0].spec == "examples/digits_pixel_paper_cell.toml"


def test_a_finished_run_is_read_back_and_a_changed_one_refused(tmp_path):
    run = Run("memorise", 3)
    first = reproduce.run_task(run, None, seed=1, run_dir=tmp_path)
    metrics = (tmp_path / "metrics.jsonl").read_text()
    again = reproduce.run_task(run, None, seed=1, run_dir=tmp_path)
    assert again == first and first["seed"] == 1 and first["steps"] <= 3
    assert (tmp_path / "metrics.jsonl").read_text() == metrics  # not trained again
    with pytest.raises(TrainError, match="another configuration"):
        reproduce.run_task(Run("memorise", 4), None, seed=1, run_dir=tmp_path)
    other_cell = tmp_path / "cell.toml"
    other_cell.write_text("[cell]\nio = 3\nworkspace = 2\n")
    with pytest.raises(TrainError, match="or cell"):
        reproduce.run_task(Run("memorise", 3, spec=str(other_cell)), None, 1, tmp_path)


def test_an_unfinished_run_resumes_to_the_uninterrupted_result(tmp_path):
    options = {"n_train": 8, "n_val": 4, "n_test": 4}
    straight = reproduce.run_task(Run("elman-xor", 4, options), None, 2, tmp_path / "straight")
    cut = tmp_path / "cut"
    reproduce.run_task(Run("elman-xor", 2, options), None, 2, cut)
    (cut / "summary.json").unlink()  # as if killed after the checkpoint of step 2
    resumed = reproduce.run_task(Run("elman-xor", 4, options), None, 2, cut)
    assert resumed["steps"] == straight["steps"] == 4
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=1e-12)


def test_rows_over_seeds_show_means_and_the_range():
    rows = [
        {
            "task": "t",
            "cell": "1/1/1/1",
            "parameters": 3,
            "paper": "",
            "seed": s,
            "steps": n,
            "total_steps": 10,
            "stopped": stop,
            "seconds": 2.0 * s,
            "accuracy": acc,
            "loss": loss,
        }
        for s, n, stop, acc, loss in [(0, 10, "steps", 1.0, 0.1), (1, 6, "target", 0.9, 0.3)]
    ]
    row = combine_seeds(rows)
    assert row["seeds"] == [0, 1] and row["steps"] == [10, 6] and row["stopped"] == "steps"
    assert row["accuracy"] == pytest.approx(0.95) and row["accuracy_range"] == [0.9, 1.0]
    assert row["loss"] == pytest.approx(0.2) and row["seconds"] == pytest.approx(1.0)
    assert [r["accuracy"] for r in row["per_seed"]] == [1.0, 0.9]
    line = reproduce.format_table([row]).splitlines()[2]
    assert "| 6–10/10 |" in line and "95.0 % (90.0–100.0, 2 seeds)" in line
    assert combine_seeds(rows[:1])["seeds"] == [0] and "accuracy_range" not in combine_seeds(
        rows[:1]
    )


def test_seeds_in_parallel_processes_match_one_process(tmp_path):
    argv = ["--tasks", "memorise", "--seeds", "0,1", "--out"]
    assert reproduce.main([*argv, str(tmp_path / "serial")]) == 0
    assert reproduce.main([*argv, str(tmp_path / "parallel"), "--jobs", "2"]) == 0
    serial, parallel = (
        json.loads((tmp_path / d / "results.json").read_text())["rows"][0]["per_seed"]
        for d in ("serial", "parallel")
    )
    for a, b in zip(serial, parallel, strict=True):
        assert a["seed"] == b["seed"] and a["steps"] == b["steps"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-9)


@pytest.mark.parametrize(
    "argv",
    [
        ["--tasks", "nope"],
        ["--budget", "huge"],
        ["--seeds", "0,x"],
        ["--seeds", "1,1"],
        ["--jobs", "0"],
    ],
)
def test_bad_arguments_exit(argv):
    with pytest.raises(SystemExit):
        reproduce.main(argv)


def test_mnist_budget_runs_the_papers_table_and_says_which_data():
    labels = [run.label for run in BUDGETS["mnist"]]
    assert labels == [
        "mnist-pixel (digits=0,1)",
        "mnist-pixel (digits=3,6)",
        "mnist-reduced (method=tsne)",
        "mnist-reduced (method=umap, n_components=3, bits=4)",
    ]
    assert (
        "MNIST subset (7500 train / 1000 test from the official test set)"
        in (reproduce.NOTES["mnist"])
    )


def test_rows_report_the_overhead_before_and_after_training(tmp_path):
    import gzip
    import struct

    import numpy as np

    def idx(array):
        header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        return gzip.compress(header + array.astype(np.uint8).tobytes())

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 28, 28))
    labels = np.array([0, 1, 1, 0, 1, 0])
    for stem in ("train", "t10k"):
        (tmp_path / f"{stem}-images-idx3-ubyte.gz").write_bytes(idx(images))
        (tmp_path / f"{stem}-labels-idx1-ubyte.gz").write_bytes(idx(labels))
    rows = [
        reproduce.run_task(Run("mnist-pixel", 1, {"digits": "0,1"}), str(tmp_path), seed=s)
        for s in (0, 1)
    ]
    for row in rows:
        assert row["overhead_init"] >= 1 and row["overhead"] >= 1
    combined = combine_seeds(rows)
    assert combined["overhead"] == pytest.approx((rows[0]["overhead"] + rows[1]["overhead"]) / 2)
    line = reproduce.format_table([combined]).splitlines()[2]
    assert f"{combined['overhead_init']:.3g} → {combined['overhead']:.3g}" in line


def test_reproduce_table_formats_done_and_skipped_rows() -> None:
    done = {
        "task": "elman-xor",
        "cell": "1/3/1/2",
        "parameters": 52,
        "steps": 75,
        "total_steps": 150,
        "stopped": "target",
        "seconds": 5.12,
        "accuracy": 0.9876,
        "loss": 0.01423,
        "paper": "learns xor",
    }
    skipped = {
        "task": "mnist-pixel",
        "cell": "2/8/2/2",
        "parameters": 1212,
        "skipped": "MNIST IDX files not found: put them in DIR",
        "paper": "99.2 %",
    }
    lines = reproduce.format_table([done, skipped]).splitlines()
    assert len(lines) == 4 and lines[0].count("|") == lines[2].count("|") == 10
    assert lines[2] == (
        "| elman-xor | 1/3/1/2 | 52 | 75/150 (target) | 5.1 | 98.8 % | 0.0142 | — | learns xor |"
    )
    assert "skipped: MNIST IDX files not found: put them in DIR" in lines[3]
    assert lines[3].count("|") == 10
    with_overhead = {**done, "overhead_init": 4.36, "overhead": 129.3}
    assert "| 4.36 → 129 |" in reproduce.format_table([with_overhead])

"""The reproduction budgets: which runs they make and how their rows are labelled."""

from __future__ import annotations

import pytest

from benchmarks import reproduce
from benchmarks.reproduce import BUDGETS, Run, select_runs
from qrnn_tn.tasks import TASKS


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


@pytest.mark.parametrize("argv", [["--tasks", "nope"], ["--budget", "huge"]])
def test_bad_arguments_exit(argv):
    with pytest.raises(SystemExit):
        reproduce.main(argv)

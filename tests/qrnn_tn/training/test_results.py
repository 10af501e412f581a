"""TrainSummary and Evaluation read and write the JSON that run directories hold."""

from __future__ import annotations

import json

import pytest

from qrnn_tn.training import Evaluation, RunDir, RunDirError, TrainSummary, train
from tests.qrnn_tn.training.common import config, make_model, xor_data

# A summary.json as runs have written it (hand-written: the keys and values of such a file).
SAVED_SUMMARY = """{
  "backend": "backend statevector (as configured)",
  "best_step": 5,
  "best_val": {
    "accuracy": 0.1037037037037037,
    "log_overhead": 36.71284202841068,
    "loss": 1.286780036962655,
    "overhead": 6.241560177909435,
    "seconds": 0.8818633290029538,
    "sequences": 270,
    "split": "val",
    "step": 5
  },
  "out": "runs/digits-reduced",
  "parameters": 1292,
  "seconds": 0.9000664980012516,
  "steps": 5,
  "stopped": "steps",
  "task": "digits-reduced",
  "test": {
    "accuracy": 0.1111111111111111,
    "discarded": 0.015,
    "log_overhead": 36.76400647555366,
    "loss": 1.2868198991951139,
    "overhead": 6.109987795592887,
    "sequences": 450,
    "split": "test",
    "step": 5
  },
  "total_steps": 5
}
"""


def test_a_saved_summary_loads_with_its_values_and_writes_back_the_same_json(tmp_path):
    (tmp_path / "summary.json").write_text(SAVED_SUMMARY)
    summary = RunDir(tmp_path).read_summary()
    assert summary.steps == summary.total_steps == 5 and summary.stopped == "steps"
    assert summary.best_val is not None and summary.test is not None
    assert summary.best_val.loss == 1.286780036962655 and summary.best_val.seconds is not None
    assert summary.best_val.split == "val" and summary.best_val.discarded is None
    assert summary.test.discarded == 0.015 and summary.test.seconds is None
    assert summary.test.sequences == 450 and summary.out == "runs/digits-reduced"
    assert summary.to_json() == json.loads(SAVED_SUMMARY)


def test_a_damaged_summary_is_a_clear_error(tmp_path):
    (tmp_path / "summary.json").write_text('{"steps": 3}')
    with pytest.raises(RunDirError, match="summary.json is damaged"):
        RunDir(tmp_path).read_summary()


def test_evaluation_records_keep_the_log_key_order():
    val = Evaluation(0.5, 0.75, 2.0, 0.7, 8, discarded=0.01).at("val", 4, 1.5)
    assert list(val.to_json()) == [
        "split",
        "step",
        "loss",
        "accuracy",
        "overhead",
        "log_overhead",
        "discarded",
        "sequences",
        "seconds",
    ]
    assert Evaluation.from_json(val.to_json()) == val
    plain = Evaluation(0.5, 0.75, 2.0, 0.7, 8)
    assert list(plain.to_json()) == ["loss", "accuracy", "overhead", "log_overhead", "sequences"]
    assert plain.is_finite() and not Evaluation(float("nan"), 0.5, 1.0, 0.0, 1).is_finite()


def test_a_run_writes_the_summary_it_returns(tmp_path):
    run = tmp_path / "run"
    summary = train(make_model(), xor_data(0), None, config(run, steps=4), xor_data(1),
                    progress=False)  # fmt: skip
    assert isinstance(summary, TrainSummary)
    assert RunDir(run).read_summary() == summary
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert summary.test is not None and records[-1] == summary.test.to_json()
    assert summary.best_val in [Evaluation.from_json(r) for r in records if r["split"] == "val"]

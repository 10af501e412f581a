"""``qrnn-tn train``, ``evaluate``, ``plot`` and ``demo`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qrnn_tn.cli import demo as demo_module
from qrnn_tn.cli import main
from qrnn_tn.cli import train as train_cli
from qrnn_tn.training import Evaluation, TrainSummary, load_run, read_metrics

TINY = """\
name = "tiny-xor"
[cell]
io = 1
workspace = 2
stages = 1
"""
SMALL_DATA = ["--option", "n_triples=2", "--option", "n_train=6", "--option", "n_val=4",
              "--option", "n_test=4"]  # fmt: skip


@pytest.fixture
def spec_path(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def train_args(spec, out, *extra):
    return ["train", spec, "--task", "elman-xor", "--backend", "statevector", "--out", str(out),
            "--eval-every", "3", "--batch-size", "3", "--quiet", *SMALL_DATA, *extra]  # fmt: skip


def test_train_evaluate_plot_and_resume(tmp_path, spec_path, capsys):
    out = tmp_path / "run"
    code, text, err = run(capsys, *train_args(spec_path, out, "--steps", "3", "--seed", "1"))
    assert code == 0, err
    assert "22 parameters" in text and "test: loss" in text and "stopped after 3 of 3" in text
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["seed"] == 1 and saved["task_options"]["n_triples"] == 2

    code, text, err = run(capsys, "evaluate", str(out), "--json")
    assert code == 0, err
    assert set(json.loads(text)) == {"val", "test"}

    code, text, err = run(capsys, "plot", str(out))
    assert code == 0, err
    for name in ("curves", "distributions", "samples"):
        assert (out / f"{name}.png").stat().st_size > 0 and name in text

    code, _, err = run(capsys, *train_args(spec_path, out, "--steps", "3"))
    assert code == 2 and "--resume" in err

    code, _, err = run(capsys, *train_args(spec_path, out, "--resume", "--lr", "0.5"))
    assert code == 2 and "lr: saved" in err

    code, text, err = run(capsys, *train_args(spec_path, out, "--resume", "--steps", "6"))
    assert code == 0, err
    assert [r["step"] for r in read_metrics(out) if r["split"] == "val"] == [3, 6]


def test_default_spec_and_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    code, text, err = run(capsys, *train_args("default", out, "--epochs", "1"))
    assert code == 0, err
    assert "stopped after 2 of 2 steps" in text  # 6 sequences, batches of 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "no-such-task"], "unknown task"),
        (["--task", "elman-xor", "--option", "colour=red"], "has no option(s) colour"),
        (["--task", "elman-xor", "--option", "oops"], "KEY=VALUE"),
        (["--task", "elman-letters"], "cell.io = 1"),
        (["--task", "elman-xor", "--optimiser", "lbfgs", "--lr", "-1"], "lr=-1.0"),
        (["--task", "elman-xor", "--option", "n_triples=abc"], "expected an integer"),
        (["--task", "digits-pixel", "--digits", "0,11"], "no digit class [11]"),
        (["--task", "digits-pixel", "--digits", "4"], "at least two digits"),
        (["--task", "elman-xor", "--lr", "1e308"], "not finite"),
    ],
)
def test_user_errors_exit_2_with_a_message(tmp_path, spec_path, capsys, argv, message):
    code, _, err = run(capsys, "train", spec_path, "--out", str(tmp_path / "r"), "--quiet", *argv)
    assert code == 2
    assert message in err


def test_evaluate_a_missing_run(tmp_path, capsys):
    code, _, err = run(capsys, "evaluate", str(tmp_path))
    assert code == 2 and "no checkpoint" in err


def test_demo_trains_to_the_target_and_names_its_plots(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo_module, "DEMO_SPEC", tmp_path / "absent.toml")
    code, text, err = run(capsys, "demo", "--out", str(tmp_path / "demo"))
    assert code == 0, err
    assert "demo PASS" in text and "built-in elman-xor default" in text
    for name in ("curves", "distributions", "samples"):
        assert f"{name}.png" in text
        assert (tmp_path / "demo" / f"{name}.png").is_file()


def test_backend_options_are_part_of_the_run(tmp_path, capsys):
    """``--backend-option`` reaches the backend, is saved with the config, comes back with
    the model of the run, and a resume may not change it."""
    out = tmp_path / "run"
    argv = ["train", "default", "--task", "elman-xor", "--out", str(out), "--quiet",
            "--backend", "mps", "--backend-option", "max_bond=2", "--batch-size", "3",
            "--eval-every", "3", *SMALL_DATA]  # fmt: skip
    code, text, err = run(capsys, *argv, "--steps", "3")
    assert code == 0, err
    assert "discarded" in text.split("test:")[1]  # the capped MPS reports its truncation
    code, text, err = run(capsys, "evaluate", str(out))
    assert code == 0 and text.count("discarded") == 2, err
    assert json.loads((out / "config.json").read_text())["config"]["backend_options"] == {
        "max_bond": 2
    }
    model, _ = load_run(out)
    words = torch.zeros(2, 4, dtype=torch.int64)
    assert model.plan(3, 2).max_bond == 2 and model(words).shape == (2, 3, 2)
    code, _, err = run(capsys, *argv, "--resume", "--backend-option", "max_bond=4")
    assert code == 2 and "backend_options: saved" in err
    argv[argv.index("max_bond=2")] = "max_bnd=2"
    argv[argv.index(str(out))] = str(tmp_path / "misspelt")
    code, _, err = run(capsys, *argv, "--steps", "1")
    assert code == 2 and "unknown backend option(s) max_bnd" in err


def test_train_warns_about_an_input_bit_no_readout_sees(tmp_path, capsys):
    path = tmp_path / "blind.toml"
    path.write_text(TINY + "[neuron.topology.custom]\n0 = [1]\n1 = [2]\n2 = [1]\n")
    code, _, err = run(capsys, *train_args(str(path), tmp_path / "run", "--steps", "1"))
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert warnings == [
        "qrnn-tn train: warning: input bit 0 (o0) of the tokens is never read, so no readout "
        "depends on it as an input: with topology { custom = … } no neuron takes o0 as a source; "
        "add lane 0 to the sources of a workspace lane's neuron"
    ]


MNIST_SUBSET = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "mnist-subset"


def test_mnist_pixel_trains_end_to_end_on_real_digits(tmp_path, capsys):
    if not (MNIST_SUBSET / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the real MNIST subset is not at {MNIST_SUBSET} (a checkout of shared/)")
    out = tmp_path / "run"
    argv = ["train", "default", "--task", "mnist-pixel", "--data-dir", str(MNIST_SUBSET),
            "--digits", "3,6", "--option", "limit=24", "--steps", "2", "--batch-size", "6",
            "--eval-every", "2", "--overhead-penalty", "0.5", "--out", str(out),
            "--quiet"]  # fmt: skip
    code, text, err = run(capsys, *argv)
    assert code == 0, err
    assert "of 101 tokens" in text and "stopped after 2 of 2 steps" in text
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["overhead_penalty"] == 0.5 and config["task_options"]["digits"] == "3,6"
    test = [r for r in read_metrics(out) if r["split"] == "test"][0]
    assert test["sequences"] == 24 and test["overhead"] >= 1 and test["log_overhead"] > 0


def _summary(accuracy: float, stopped: str) -> TrainSummary:
    best = Evaluation(loss=0.5, accuracy=accuracy, overhead=1.0, log_overhead=0.0, sequences=4)
    return TrainSummary("t", 3, "statevector", 9, 9, stopped, 9, best, None, 1.0, None)


def test_the_summary_warns_at_chance_and_when_still_improving():
    labels = type("Val", (), {"labels": np.array([0, 0, 0, 1])})()
    chance, falling = train_cli.summary_warnings(_summary(0.75, "steps"), labels)
    assert "at chance" in chance and "0.750" in chance
    assert "still falling" in falling and "(9)" in falling
    assert train_cli.summary_warnings(_summary(1.0, "target"), labels) == []

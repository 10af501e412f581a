"""``qrnn-tn simulate --scheduler``: a local dask cluster against the statevector reference."""

from __future__ import annotations

import json
import socket
import sys

import numpy as np
import pytest
from distributed import LocalCluster

from qrnn_tn.backends.tensornet import plan as tensornet_plan
from qrnn_tn.cli import main

SPEC = """\
[cell]
io = 2
workspace = 6
stages = 1
[neuron]
degree = 2
order = 2
topology = { local = 1 }
"""
WORDS = "3,1,0,2"
#: Bytes: small enough that the tensor network slices its steps.
BUDGET = "20000"


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=":0",
    ) as cluster:
        yield cluster


@pytest.fixture
def spec_path(tmp_path, monkeypatch):
    monkeypatch.setenv("QRNN_TN_CACHE", str(tmp_path / "paths"))
    path = tmp_path / "local.toml"
    path.write_text(SPEC)
    return str(path)


def _run(capsys, *argv):
    code = main(["simulate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cluster_run_equals_statevector(cluster, spec_path, capsys, monkeypatch):
    planners = []
    find_tree = tensornet_plan.find_tree

    def spy(net, paths, options):
        planners.append(options)
        return find_tree(net, paths, options)

    monkeypatch.setattr(tensornet_plan, "find_tree", spy)
    argv = [spec_path, "--words", WORDS, "--seed", "3", "--json"]
    code, out, err = _run(
        capsys, *argv, "--scheduler", cluster.scheduler_address, "--memory-budget", BUDGET
    )
    assert code == 0, err
    remote = json.loads(out)
    code, out, err = _run(capsys, *argv, "--backend", "statevector")
    assert code == 0, err
    reference = json.loads(out)
    assert remote["backend"] == "tensornet" and remote["scheduler"] == cluster.scheduler_address
    assert "2 dask worker(s)" in remote["reason"]
    assert max(remote["slices_per_step"]) > 1
    np.testing.assert_allclose(remote["probs"], reference["probs"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(remote["target_prob"], reference["target_prob"], rtol=0, atol=1e-10)
    assert "slice_forward" in cluster.scheduler.task_prefixes
    assert planners and all(type(p.parallel).__name__ == "Client" for p in planners)


def test_unsliced_plan_runs_one_task_per_step_and_says_so(cluster, spec_path, capsys):
    argv = [spec_path, "--words", WORDS, "--scheduler", cluster.scheduler_address]
    code, out, err = _run(capsys, *argv, "--backend", "tensornet")
    assert code == 0, err
    assert "no step of this plan is sliced" in err and "--memory-budget" in err
    assert out.startswith("backend tensornet (--scheduler tcp://127.0.0.1:")


def test_unreachable_scheduler_is_a_usage_error(spec_path, capsys):
    address = f"tcp://127.0.0.1:{_free_port()}"
    argv = [spec_path, "--words", WORDS, "--scheduler", address, "--scheduler-timeout", "1"]
    code, out, err = _run(capsys, *argv)
    assert code == 2 and not out
    assert f"--scheduler {address}: could not connect within 1 s" in err
    assert "dask scheduler" in err and "Traceback" not in err


def test_scheduler_without_workers_is_a_usage_error(spec_path, capsys):
    with LocalCluster(
        n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1", dashboard_address=":0"
    ) as empty:
        argv = ["--scheduler", empty.scheduler_address, "--scheduler-timeout", "1"]
        code, out, err = _run(capsys, spec_path, "--words", WORDS, *argv)
    assert code == 2 and not out
    assert "the scheduler has no workers after 1 s" in err and "dask worker" in err


def test_scheduler_with_another_backend_is_a_usage_error(spec_path, capsys):
    code, _, err = _run(
        capsys,
        spec_path,
        "--words",
        WORDS,
        "--backend",
        "statevector",
        "--scheduler",
        "tcp://127.0.0.1:8786",
    )
    assert code == 2
    assert "--scheduler runs the tensornet backend" in err and "--backend statevector" in err


def test_missing_dask_names_the_install_command(spec_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    code, _, err = _run(capsys, spec_path, "--words", WORDS, "--scheduler", "tcp://127.0.0.1:1")
    assert code == 2 and "pip install 'dask[distributed]'" in err


@pytest.mark.parametrize(
    ("text", "size"), [("60000", 60000), ("512MiB", 512 * 2**20), ("1.5g", 3 * 2**29)]
)
def test_memory_budget_sizes(text, size):
    from qrnn_tn.cli.simulate import parse_size

    assert parse_size(text) == size


def test_bad_memory_budget_is_an_argparse_error(spec_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", spec_path, "--words", WORDS, "--memory-budget", "lots"])
    assert exit_info.value.code == 2
    assert "'lots' is not a size" in capsys.readouterr().err

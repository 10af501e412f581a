"""Run directories under faults: concurrent writers, a run killed at a random point and
resumed, damaged files, and the lock of a dead process."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qrnn_tn.cli import main
from qrnn_tn.training import RunDir, RunDirError

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ["train", "default", "--task", "elman-xor", "--backend", "statevector", "--quiet",
         "--batch-size", "4", "--eval-every", "5", "--option", "n_triples=2",
         "--option", "n_train=8", "--option", "n_val=4", "--option", "n_test=4"]  # fmt: skip


def _cli(*argv: str) -> subprocess.Popen:
    """``qrnn-tn ARGV`` in a new process (one torch thread), output captured."""
    code = "import sys; from qrnn_tn.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _holder_process(path: Path) -> subprocess.Popen:
    """A process that takes ``path``'s lock, says so, and sleeps."""
    code = (
        "import sys, time; from qrnn_tn.training import RunDir\n"
        "with RunDir(sys.argv[1]).lock():\n"
        "    print('locked', flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _steps(path: Path) -> list[tuple[str, int]]:
    return [(r["split"], r["step"]) for r in RunDir(path).read_metrics()]


def test_a_held_lock_refuses_a_second_writer_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    holder = _holder_process(out)
    try:
        with pytest.raises(RunDirError, match=f"pid {holder.pid} on host"):
            with RunDir(out).lock():
                pass
        code = main([*TRAIN, "--steps", "2", "--out", str(out)])
        assert code == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert RunDir(out).existing() == []  # the refused run wrote nothing
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the dead holder's lock: it is taken over
    with RunDir(out).lock():
        assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()


def test_two_concurrent_trainings_one_wins_and_its_history_is_whole(tmp_path):
    out = tmp_path / "run"
    procs = [_cli(*TRAIN, "--steps", "30", "--out", str(out)) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "is being written by another run" in loser or "already holds a run" in loser
    assert [s for s in _steps(out) if s[0] == "train"] == [("train", t) for t in range(1, 31)]


def test_killed_at_a_random_point_then_resumed_keeps_the_whole_history(tmp_path):
    """SIGKILL after a random number of steps (``QRNN_TN_KILL_SEED``; ``QRNN_TN_KILLS`` runs),
    then ``--resume``: the history equals the uninterrupted run's."""
    steps = 40
    whole = tmp_path / "whole"
    assert main([*TRAIN, "--steps", str(steps), "--out", str(whole)]) == 0
    rng = random.Random(os.environ.get("QRNN_TN_KILL_SEED", "0"))
    for attempt in range(int(os.environ.get("QRNN_TN_KILLS", "1"))):
        out = tmp_path / f"killed{attempt}"
        kill_after = rng.randint(6, steps - 6)  # train records seen before the kill
        proc = _cli(*TRAIN, "--steps", str(steps), "--out", str(out))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            log = out / "metrics.jsonl"
            if log.exists() and log.read_text().count('"train"') >= kill_after:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
        resumed = _cli(*TRAIN, "--steps", str(steps), "--out", str(out), "--resume")
        assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
        assert _steps(out) == _steps(whole)

        def strip(records):
            return [{k: v for k, v in r.items() if k != "seconds"} for r in records]

        assert strip(RunDir(out).read_metrics()) == strip(RunDir(whole).read_metrics())


def test_damaged_files_are_clear_errors_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--steps", "6", "--out", str(out)]) == 0
    capsys.readouterr()
    good_config = (out / "config.json").read_bytes()
    good_log = (out / "metrics.jsonl").read_text()

    for damage, message in [
        ("config.json", "not valid JSON"),
        ("config.json:bytes", "not UTF-8"),
        ("config.json:list", "expected an object with a 'config' table"),
        ("metrics.jsonl", "damaged at line 2"),
        ("metrics.jsonl:bytes", "not UTF-8"),
        ("last.pt", "damaged"),
    ]:
        name = damage.split(":")[0]
        content = {
            "config.json": b'{"config": ',
            "config.json:bytes": b"\xff\xfe",
            "config.json:list": b"[]",
            "metrics.jsonl": ("\n".join([good_log.splitlines()[0], "{oops"] +
                                        good_log.splitlines()[1:]) + "\n").encode(),
            "metrics.jsonl:bytes": b"\xff" + good_log.encode(),
            "last.pt": b"not a checkpoint",
        }[damage]  # fmt: skip
        saved = (out / name).read_bytes()
        (out / name).write_bytes(content)
        code = main([*TRAIN, "--steps", "8", "--out", str(out), "--resume"])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (damage, err)
        assert (out / name).read_bytes() == content  # nothing was rewritten
        (out / name).write_bytes(saved)
    assert (out / "config.json").read_bytes() == good_config


def test_resume_without_a_checkpoint_refuses_and_keeps_the_history(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--steps", "6", "--out", str(out)]) == 0
    (out / "last.pt").unlink()
    before = {name: (out / name).read_bytes() for name in RunDir(out).existing()}
    code = main([*TRAIN, "--steps", "8", "--out", str(out), "--resume"])
    assert code == 2 and "no checkpoint last.pt" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in RunDir(out).existing()} == before
    code = main([*TRAIN, "--steps", "3", "--out", str(out)])
    assert code == 2 and "already holds a run" in capsys.readouterr().err
    assert main([*TRAIN, "--steps", "3", "--out", str(out), "--overwrite"]) == 0
    assert not (out / "best.pt").read_bytes() == before["best.pt"]
    assert max(step for _, step in _steps(out)) == 3


def test_demo_refuses_to_replace_a_run_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--steps", "3", "--out", str(out)]) == 0
    before = (out / "last.pt").read_bytes()
    code = main(["demo", "--out", str(out)])
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "last.pt").read_bytes() == before


def test_metrics_reading_skips_only_a_cut_last_line_when_strict(tmp_path):
    run = RunDir(tmp_path)
    run.write_metrics([{"split": "train", "step": 1}, {"split": "train", "step": 2}])
    with open(run.file(RunDir.METRICS), "a") as f:
        f.write('{"split": "tr')  # a crash in the middle of an append
    assert [r["step"] for r in run.read_metrics(strict=True)] == [1, 2]
    with open(run.file(RunDir.METRICS), "a") as f:
        f.write('\n{"split": "train", "step": 3}\n')
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]
    with pytest.raises(RunDirError, match="line 3"):
        run.read_metrics(strict=True)


@pytest.mark.parametrize(("name", "says"), [("run\udf5a", "no encoding"), ("a\0b", "NUL")])
def test_a_directory_name_no_file_system_can_hold_is_refused_by_name(name, says):
    with pytest.raises(RunDirError, match=says):
        RunDir(name)


def test_demo_with_such_an_out_exits_2_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--out", "r\udf5a"]) == 2
    assert "no encoding" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

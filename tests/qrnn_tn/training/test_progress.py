"""Progress output: durations and the log lines of a run without a terminal."""

from __future__ import annotations

import pytest

from qrnn_tn.training import train
from qrnn_tn.training.progress import format_duration
from tests.qrnn_tn.training.common import config, make_model, xor_data


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (42.4, "42s"), (185, "3m05s"), (3720, "1h02m")]
)
def test_durations_read_as_hours_minutes_seconds(seconds, text):
    assert format_duration(seconds) == text


def test_log_lines_estimate_the_time_left(capsys):
    train(make_model(), xor_data(0), None, config(steps=8, eval_every=4), progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "step 4/8" in line]
    assert len(lines) == 1 and "left" in lines[0] and "log-overhead" in lines[0]
    elapsed = float(lines[0].split("| ")[-1].split("s,")[0])
    assert lines[0].endswith(f"about {format_duration(elapsed)} left")

"""TrainConfig: bad fields are refused, naming the field, before any training."""

from __future__ import annotations

import pytest

from qrnn_tn.training import TrainError, train
from tests.qrnn_tn.training.common import config, make_model, xor_data


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"optimiser": "adagrad"}, "optimiser"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"loss": "mse"}, "loss"),
        ({"steps": None}, "exactly one"),
        ({"epochs": 2}, "exactly one"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"dtype": "float16"}, "dtype"),
        ({"backend": "auto"}, "backend"),
        ({"overhead_penalty": -0.1}, "overhead_penalty"),
        ({"overhead_penalty": float("nan")}, "overhead_penalty"),
        ({"overhead_penalty_scope": "neurons"}, "overhead_penalty_scope"),
        ({"seed": 2**63}, "seed"),
        ({"seed": -1}, "seed"),
        ({"seed": "1"}, "seed"),
    ],
)
def test_bad_configs_are_refused_before_training(changes, match):
    with pytest.raises(TrainError, match=match):
        train(make_model(), xor_data(0), None, config(**changes), progress=False)

"""Shared pieces of the training tests: a small cell, XOR data, a config, the dense overhead."""

from __future__ import annotations

import numpy as np

from qrnn_tn.data import SequenceDataset, elman_xor
from qrnn_tn.model import QRNN
from qrnn_tn.training import TrainConfig
from tests.reference import dense_log_norm

SPEC = {"cell": {"io": 1, "workspace": 2, "stages": 1}}


def xor_data(seed: int, n: int = 8) -> SequenceDataset:
    return elman_xor(2, n_sequences=n, seed=seed)


def make_model(seed: int = 0) -> QRNN:
    return QRNN(SPEC, backend="statevector", seed=seed)


def config(out=None, **kw) -> TrainConfig:
    base = {"task": "elman-xor", "lr": 0.05, "batch_size": 3, "steps": 10, "eval_every": 4}
    base["backend"] = "statevector"
    base.update(kw)
    return TrainConfig(out=None if out is None else str(out), **base)


def without_seconds(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def dense_neg_log_norm(model: QRNN, words: np.ndarray) -> np.ndarray:
    """``−log_norm`` per sequence of ``words`` under ``model``, from the dense reference.

    Minus the log-probability of every neuron's success and every projection of the run.
    """
    dag = model.program(words.shape[1] - 1).dag
    theta = model.theta.detach().numpy()
    return np.array([-dense_log_norm(dag, theta, row.tolist()) for row in words])

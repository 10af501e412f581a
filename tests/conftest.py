"""Shared test settings: a deterministic hypothesis profile sized for a 2-core CI machine,
and one torch thread per xdist worker (two workers with torch's default thread count each
oversubscribe the cores, which slows the many small kernels of these tests tenfold)."""

import os

import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI results are reproducible
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("default")

if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)

"""Shared test settings: a deterministic hypothesis profile sized for a 2-core CI machine."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI results are reproducible
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("default")

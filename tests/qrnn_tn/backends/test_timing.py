"""The machine model: the constants the backends predict time with, and its calibration."""

from __future__ import annotations

import math
from dataclasses import fields, replace

import pytest
import torch

from compiler.unroll import compile_program
from qrnn_tn.backends import BackendOptions, get_backend, timing
from qrnn_tn.backends.base import Cost
from qrnn_tn.backends.timing import CPU, MachineModel, machine_model

SPEC = {"cell": {"io": 2, "workspace": 4}, "neuron": {"degree": 2, "topology": {"local": 1}}}
SCALES = {"call": 3.0, "element": 0.5, "matmul": 2.0}


def test_every_device_kind_has_a_model():
    assert machine_model("cpu") is CPU
    assert machine_model(torch.device("cpu")) is CPU
    assert machine_model("cuda:0") is CPU  # no CUDA fit yet: the CPU's
    assert all(getattr(CPU, f.name) > 0 for f in fields(CPU) if f.name != "device")


def test_cost_seconds_follow_the_options_machine_model():
    """Each backend's predicted seconds are its counts times the model's constants: doubling
    every per-launch and per-flop constant doubles the prediction."""
    program = compile_program(SPEC, steps=2)
    doubled = replace(
        CPU,
        **{f.name: 2 * getattr(CPU, f.name) for f in fields(CPU) if f.name != "device"},
    )
    for name in ("statevector", "tensornet", "mps"):
        extra = {"cache_dir": None} if name == "tensornet" else {}
        one = get_backend(name)(program, BackendOptions(backend_options=extra)).cost
        two = get_backend(name)(program, BackendOptions(machine=doubled, backend_options=extra))
        assert two.cost.seconds == pytest.approx(2 * one.seconds, rel=1e-12)


def test_statevector_seconds_are_kernels_and_flops_at_the_fitted_rates():
    program = compile_program(SPEC, steps=2)
    plan = get_backend("statevector")(program, BackendOptions())
    cost = plan.cost
    kernels = cost.details.kernels
    expected = kernels * 120e-6 + cost.flops * 0.9e-9
    assert cost.seconds == pytest.approx(expected, rel=1e-12)


def test_unmodelled_backend_is_timed_at_the_default_flop_rate():
    cost = Cost("other", width=1.0, flops=2e9, peak_bytes_forward=0, peak_bytes_backward=0)
    assert cost.predicted_seconds == pytest.approx(2.0)


def test_calibration_scales_each_constant_with_its_probe(monkeypatch):
    """With the probes monkeypatched to known multiples of the reference probe times, every
    constant scales by its own probe's ratio (launches, memory traffic, matrix products)."""
    monkeypatch.setattr(timing, "probe_call", lambda device: SCALES["call"] * CPU.call_seconds)
    monkeypatch.setattr(
        timing, "probe_elements", lambda device: SCALES["element"] * CPU.element_seconds
    )
    monkeypatch.setattr(
        timing, "probe_matmul", lambda device: SCALES["matmul"] * CPU.matmul_flop_seconds
    )
    model = MachineModel.calibrate("cpu")
    probe = {
        "call": ["statevector_kernel_seconds", "fusion_kernel_seconds", "fusion_call_seconds"],
        "element": ["flop_seconds", "statevector_flop_seconds", "fusion_amplitude_seconds"],
        "matmul": ["fusion_flop_seconds", "tensornet_flop_seconds", "matmul_flop_seconds"],
    }
    probe["call"] += ["tensornet_contraction_seconds", "mps_operation_seconds", "call_seconds"]
    probe["element"] += ["element_seconds"]
    named = {name for names in probe.values() for name in names}
    assert named == {f.name for f in fields(CPU)} - {"device"}
    for kind, names in probe.items():
        for name in names:
            assert getattr(model, name) == pytest.approx(SCALES[kind] * getattr(CPU, name))
    assert model.device == "cpu"


def test_calibration_measures_this_machine():
    model = MachineModel.calibrate("cpu")
    for f in fields(model):
        if f.name != "device":
            value = getattr(model, f.name)
            assert math.isfinite(value) and value > 0, f.name
    # a small call costs more than one element of a large pass, which costs more than a flop
    # of a matrix product (the probes are about 1e-6, 1e-9 and 1e-11 s)
    assert model.call_seconds > model.element_seconds > model.matmul_flop_seconds

"""The public API: what ``qrnn_tn`` exposes, documented, with one error base."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import compiler
import qrnn_tn
from compiler.errors import Error

PUBLIC_MODULES = sorted(
    module.name
    for package in (qrnn_tn, compiler)
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    if not module.name.endswith("__main__")
) + ["qrnn_tn", "compiler"]


def test_the_package_exposes_the_core_names():
    for name in ("compile_program", "load_spec", "QRNN", "simulate", "choose", "Error"):
        assert name in qrnn_tn.__all__ and hasattr(qrnn_tn, name)
    assert inspect.isfunction(qrnn_tn.simulate)
    assert importlib.import_module("qrnn_tn.simulation").simulate is qrnn_tn.simulate
    assert inspect.signature(qrnn_tn.simulate).parameters["backend"].default == "auto"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(module_name):
    module = importlib.import_module(module_name)
    assert inspect.getdoc(module), module_name
    missing = [
        name
        for name in getattr(module, "__all__", [])
        if not name.startswith("__")
        and (inspect.isclass(obj := getattr(module, name)) or inspect.isfunction(obj))
        and not inspect.getdoc(obj)
    ]
    assert missing == [], f"{module_name}: no docstring for {missing}"


def test_every_project_error_derives_from_the_one_base():
    from compiler.ir import CompileError
    from compiler.spec import SpecError
    from qrnn_tn.cli import UsageError
    from qrnn_tn.data import DataError
    from qrnn_tn.training import RunDirError, TrainError
    from qrnn_tn.training.distributed import DistributedError

    assert qrnn_tn.Error is Error
    errors = [SpecError, CompileError, qrnn_tn.BackendError, DataError, TrainError]
    errors += [UsageError, RunDirError, DistributedError]
    assert all(issubclass(e, Error) for e in errors)
    assert issubclass(SpecError, ValueError) and issubclass(qrnn_tn.BackendError, RuntimeError)


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "qrnn_tn", "--help"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and "compile" in out.stdout and "train" in out.stdout


@pytest.mark.parametrize(
    "module_name",
    ["qrnn_tn", "qrnn_tn.backends.base", "qrnn_tn.backends.options", "qrnn_tn.semantics"],
)
def test_docstring_examples_run(module_name):
    import doctest

    result = doctest.testmod(importlib.import_module(module_name))
    assert result.attempted > 0 and result.failed == 0

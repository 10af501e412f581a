import sys
import types

import pytest

from qrnn_tn.lazy import lazy_attributes


@pytest.fixture
def package(monkeypatch):
    module = types.ModuleType("lazy_demo")
    monkeypatch.setitem(sys.modules, "lazy_demo", module)
    module.__getattr__, module.__dir__ = lazy_attributes(
        "lazy_demo", {"sqrt": "math", "missing": "no_such_module_anywhere"}
    )
    return module


def test_a_name_is_imported_on_first_read_and_then_kept(package):
    import math

    assert "sqrt" not in vars(package)
    assert package.sqrt is math.sqrt
    assert vars(package)["sqrt"] is math.sqrt


def test_an_unknown_name_is_an_attribute_error(package):
    with pytest.raises(AttributeError, match="'lazy_demo' has no attribute 'cosh'"):
        _ = package.cosh


def test_dir_lists_the_lazy_names(package):
    assert {"sqrt", "missing"} <= set(dir(package))


def test_the_packages_export_what_they_list():
    import qrnn_tn
    import qrnn_tn.backends

    for pkg in (qrnn_tn, qrnn_tn.backends):
        for name in pkg.__all__:
            assert getattr(pkg, name) is not None, (pkg.__name__, name)

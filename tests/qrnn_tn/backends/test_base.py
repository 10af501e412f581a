"""The shared run contract: every backend validates parameters and words the same way."""

import pytest
import torch

from compiler.unroll import compile_program
from qrnn_tn.backends import BackendError, BackendOptions, base, get_backend
from qrnn_tn.backends.base import check_words, format_bytes

BACKENDS = ["statevector", "mps", "tensornet"]
SPEC = {"cell": {"io": 2, "workspace": 2}, "neuron": {"topology": {"local": 1}}}


@pytest.fixture(scope="module")
def program():
    return compile_program(SPEC, steps=3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("words", "mode", "fragment"),
    [
        ([[0, 1, 2]], "teacher", "shape [batch, 4]"),
        ([[0, 1, 2, 4]], "teacher", "token 4 is out of range"),
        ([[0, 1, 2, -1]], "teacher", "token -1"),
        ([[0.0, 1.0, 2.0, 3.0]], "teacher", "integer tokens"),
        ([[0, 1]], "sample", "[batch, 1] or [batch, 4]"),
        ([[0, 1, 2, 3]], "dream", "accepted: 'teacher', 'sample'"),
    ],
)
def test_bad_words_are_refused_alike(program, backend, words, mode, fragment):
    plan = get_backend(backend)(program, BackendOptions())
    params = torch.zeros(program.n_params, dtype=torch.float64)
    with pytest.raises(BackendError) as info:
        plan.run(params, torch.tensor(words), mode=mode)
    assert fragment in str(info.value)
    assert str(info.value).startswith(backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_params_are_refused_alike(program, backend):
    plan = get_backend(backend)(program, BackendOptions())
    with pytest.raises(BackendError, match=rf"shape \[{program.n_params}\]"):
        plan.run(torch.zeros(3, dtype=torch.float64), torch.zeros(1, 4, dtype=torch.long))


def test_sample_mode_keeps_only_the_prompt(program):
    words = check_words(program, torch.tensor([[3], [1]]), "sample", "test")
    assert words.tolist() == [[3, 0, 0, 0], [1, 0, 0, 0]]


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 2**30) == "3.0 GiB"
    assert format_bytes(2.0**100) == "2^100.0 B"


def test_available_memory_is_shared_among_local_ranks(monkeypatch):
    def no_meminfo(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(base, "open", no_meminfo, raising=False)
    monkeypatch.setenv("QRNN_TN_MEMORY", str(12 * 2**30))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert base.available_memory() == 12 * 2**30
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert base.available_memory() == 3 * 2**30
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "not a number")  # ignored, not a crash
    assert base.available_memory() == 12 * 2**30
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.delenv("QRNN_TN_MEMORY")
    assert base.available_memory() == 2 * 2**30  # 8 GiB when nothing says otherwise

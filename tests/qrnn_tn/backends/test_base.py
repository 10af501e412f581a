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


def test_available_memory_on_cuda_is_the_devices_free_memory(monkeypatch):
    """On a CUDA device the budget is that device's free memory, not the host's, and is not
    divided among the local ranks (each has its own device)."""
    asked = []

    def mem_get_info(device):
        asked.append(device)
        return 5 * 2**30, 80 * 2**30

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("QRNN_TN_MEMORY", str(12 * 2**30))
    assert base.available_memory("cuda:1") == 5 * 2**30
    assert asked == [torch.device("cuda:1")]
    options = base.BackendOptions(device="cuda:1")
    assert options.budget() == 5 * 2**30
    assert base.BackendOptions(device="cuda:1", memory_budget=123).budget() == 123

    def no_meminfo(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(base, "open", no_meminfo, raising=False)
    assert base.BackendOptions(device="cpu").budget() == 3 * 2**30  # the host's, shared
    assert len(asked) == 2


def test_each_backend_describes_its_cost_with_typed_details(program, tmp_path):
    """The details are each backend's own dataclass, with values that match the program and
    the options, and ``str(cost)`` shows every one of their lines."""
    from qrnn_tn.backends.mps import MPSCostDetails
    from qrnn_tn.backends.statevector import StatevectorCostDetails
    from qrnn_tn.backends.tensornet import TensorNetCostDetails

    given = {
        "statevector": {},
        "mps": {"max_bond": 4},
        "tensornet": {"cache_dir": tmp_path, "search_time": 0.0},
    }
    costs = {
        name: get_backend(name)(program, BackendOptions(batch_size=3, backend_options=own)).cost
        for name, own in given.items()
    }
    state = costs["statevector"].details
    assert isinstance(state, StatevectorCostDetails)
    assert (state.qubits, state.batch, state.steps) == (program.dag.n_qubits, 3, 3)
    network = costs["tensornet"].details
    assert isinstance(network, TensorNetCostDetails)
    assert len(network.slices_per_step) == len(network.widths_per_step) == program.steps
    assert max(network.widths_per_step) == pytest.approx(costs["tensornet"].width, abs=0.05)
    chain = costs["mps"].details
    assert isinstance(chain, MPSCostDetails) and chain.max_bond == 4 and chain.bond_bound == 4
    for cost in costs.values():
        text = str(cost)
        assert text == cost.describe() and text.startswith(f"backend: {cost.backend}")
        assert all(line in text for line in cost.details.lines())

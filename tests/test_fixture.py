"""The statevector backend reproduces the paper's original code (QRNN.md §9) to 1e-9."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compiler.unroll import compile_program
from qrnn_tn.backends import BackendOptions, get_backend

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "original_memorisation.json"


def _fixture() -> dict:
    if not FIXTURE.is_file():
        pytest.fail(
            f"fixture {FIXTURE} is missing: it lives in ../shared/fixtures beside the repository "
            "(QRNN.md §9); check out the shared folder next to this repository"
        )
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_statevector_reproduces_the_original_code(dtype):
    data = _fixture()
    cell = data["cell"]
    spec = {
        "cell": {k: cell[k] for k in ("io", "workspace", "stages")},
        "neuron": {k: cell[k] for k in ("degree", "order", "topology", "offset")},
    }
    words = torch.tensor([data["words"]])
    program = compile_program(spec, steps=words.shape[1] - 1)
    assert program.n_params == len(data["params"]) == 1162
    plan = get_backend("statevector")(program, BackendOptions(dtype=dtype))
    result = plan.run(torch.tensor(data["params"], dtype=torch.float64), words)
    np.testing.assert_allclose(result.probs[0].numpy(), np.array(data["expect"]), rtol=0, atol=1e-9)

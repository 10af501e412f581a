"""The MPS split refuses non-finite input with a clear error (not a LAPACK failure)."""

from __future__ import annotations

import pytest
import torch

from qrnn_tn.backends.base import BackendError
from qrnn_tn.backends.mps.svd import split


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize(
    ("dtype", "max_bond"), [(torch.float64, None), (torch.float64, 2), (torch.float32, 2)]
)
def test_non_finite_input_is_a_backend_error(bad, dtype, max_bond):
    m = torch.randn(3, 4, 6, dtype=dtype)
    m[1, 2, 3] = bad
    with pytest.raises(BackendError, match=r"mps: a \(3, 4, 6\) tensor .* NaN or infinite"):
        split(m, max_bond, 0.0)


def test_finite_input_still_splits():
    m = torch.randn(2, 4, 6, dtype=torch.float64)
    u, c, discarded = split(m, None, 0.0)
    torch.testing.assert_close(u @ c, m)
    assert torch.all(discarded.abs() < 1e-12)

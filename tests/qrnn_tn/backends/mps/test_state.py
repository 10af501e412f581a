"""The block MPS's site contraction against a dense einsum."""

from __future__ import annotations

import numpy as np
import torch

from qrnn_tn.backends.mps.state import join_sites


def test_join_sites_is_the_site_contraction():
    """Absorbing a site is ``Σ_y A[b,x,p,y] B[b,y,q,z]`` with ``(p, q)`` merged, p major."""
    gen = torch.Generator().manual_seed(6)
    left = torch.randn(2, 3, 2, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    right = torch.randn(2, 4, 8, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    reference = np.einsum("bxpy,byqz->bxpqz", left.detach().numpy(), right.detach().numpy())
    assert np.allclose(join_sites(left, right).detach().numpy(), reference.reshape(2, 3, 16, 5))
    assert torch.autograd.gradcheck(join_sites, (left, right))

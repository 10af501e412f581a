"""The block MPS's building blocks: the fused neuron, the renormalisation, site contraction.

Each against gradcheck (finite differences) and against autograd through the plain formula.
"""

from __future__ import annotations

import numpy as np
import torch

from qrnn_tn.backends.mps.state import NeuronFunction, join_sites, unit


def test_neuron_backward_matches_autograd_of_the_plain_formula():
    """The fused neuron's hand-written backward against gradcheck and against autograd
    through the unfused formula (multiply, flip, renormalise)."""
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(3, 2, 2, 2, 4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    cos = torch.randn(2, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    sin = torch.randn(2, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(NeuronFunction.apply, (v, cos, sin))

    def plain(v, cos, sin):
        signed = torch.stack((-sin, sin), dim=1)[:, :, :, None]
        y = v * cos[:, None, :, None] + v.flip(3) * signed
        norm = torch.linalg.vector_norm(y.reshape(3, -1), dim=1)
        return y / norm.reshape(-1, 1, 1, 1, 1, 1), norm.square()

    weights = torch.randn(v.shape, dtype=torch.float64, generator=gen), torch.randn(3)
    grads = []
    for fn in (NeuronFunction.apply, plain):
        out, prob = fn(v, cos, sin)
        loss = (out * weights[0]).sum() + (prob * weights[1]).sum()
        grads.append(torch.autograd.grad(loss, (v, cos, sin)))
        assert torch.allclose(out, plain(v, cos, sin)[0], atol=1e-14)
    for fused, reference in zip(*grads, strict=True):
        assert torch.allclose(fused, reference, atol=1e-12)


def test_unit_backward_matches_gradcheck_and_plain_autograd():
    """The one-node renormalisation of a split's ``C`` against gradcheck and against autograd
    through ``x / ‖x‖`` written out."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 2, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(unit, (x,))
    weights = torch.randn(x.shape, dtype=torch.float64, generator=gen)
    plain = x / torch.sqrt((x * x).sum(dim=(1, 2)))[:, None, None]
    assert torch.allclose(unit(x), plain, atol=1e-15)
    (fused,) = torch.autograd.grad((unit(x) * weights).sum(), x)
    (reference,) = torch.autograd.grad((plain * weights).sum(), x)
    assert torch.allclose(fused, reference, atol=1e-13)


def test_join_sites_is_the_site_contraction():
    """Absorbing a site is ``Σ_y A[b,x,p,y] B[b,y,q,z]`` with ``(p, q)`` merged, p major."""
    gen = torch.Generator().manual_seed(6)
    left = torch.randn(2, 3, 2, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    right = torch.randn(2, 4, 8, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    reference = np.einsum("bxpy,byqz->bxpqz", left.detach().numpy(), right.detach().numpy())
    assert np.allclose(join_sites(left, right).detach().numpy(), reference.reshape(2, 3, 16, 5))
    assert torch.autograd.gradcheck(join_sites, (left, right))

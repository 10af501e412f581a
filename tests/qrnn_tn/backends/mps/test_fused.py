"""The block MPS's one-node moves against autograd through their plain composition.

Each fused function's hand-written backward is compared with autograd through the unfused
operations (written out with torch primitives, or the split's own autograd node) and
checked by gradcheck (finite differences), in float64.
"""

from __future__ import annotations

import pytest
import torch

from qrnn_tn.backends.mps.fused import (
    NeuronFunction,
    apply_ry,
    join_neuron,
    split_block,
    unit,
    walk_left,
)
from qrnn_tn.backends.mps.svd import split


def _plain_neuron(v, cos, sin):
    """The neuron written out: multiply, flip the target axis, renormalise."""
    signed = torch.stack((-sin, sin), dim=1)[:, :, :, None]
    y = v * cos[:, None, :, None] + v.flip(3) * signed
    norm = torch.linalg.vector_norm(y.reshape(y.shape[0], -1), dim=1)
    return y / norm.reshape(-1, 1, 1, 1, 1, 1), norm.square()


def _grads(fn, inputs, weights):
    """Values of ``fn(*inputs)`` and the gradients of ``Σ weights · outputs`` for inputs."""
    outs = fn(*inputs)
    loss = sum((o * w).sum() for o, w in zip(outs, weights, strict=True))
    return outs, torch.autograd.grad(loss, inputs)


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


def test_join_neuron_is_the_site_absorbed_then_the_neuron():
    """Absorbing a site and applying the neuron as one node: values and gradients of block,
    site, ``c`` and ``s`` against autograd through an einsum and the written-out neuron, and
    gradcheck."""
    gen = torch.Generator().manual_seed(7)
    block = torch.randn(3, 2, 4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    site = torch.randn(3, 3, 2, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    cos = torch.randn(2, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    sin = torch.randn(2, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    left = 2  # the target is the joined block's second site of three

    def plain(block, site, cos, sin):
        joined = torch.einsum("bxpy,byqz->bxpqz", block, site).reshape(3, 2, 8, 2)
        out, prob = _plain_neuron(joined.reshape(3, 2, left, 2, 2, 2), cos, sin)
        return out.reshape(3, 2, 8, 2), prob

    inputs = (block, site, cos, sin)
    weights = (torch.randn(3, 2, 8, 2, dtype=torch.float64, generator=gen), torch.randn(3))
    fused_out, fused = _grads(lambda *x: join_neuron(*x, left), inputs, weights)
    plain_out, reference = _grads(plain, inputs, weights)
    for a, b in zip((*fused_out, *fused), (*plain_out, *reference), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    assert torch.autograd.gradcheck(lambda *x: join_neuron(*x, left), inputs)


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize(
    ("shape", "max_bond"),
    [
        ((2, 3, 4, 3), 3),  # the Gram route, truncating: 6 rows, cap 3
        ((2, 3, 4, 3), 8),  # the Gram route, nothing discarded
        ((2, 3, 4, 3), None),  # the SVD route
        ((2, 4, 2, 1), 2),  # a wide block side: rows > columns, the SVD route
    ],
)
def test_split_block_is_the_split_then_the_renormalisation(first, shape, max_bond):
    """Peeling a site off as one node: the site, the renormalised rest and the discarded
    weight equal :func:`split` and ``x / ‖x‖`` around it; the gradient of a gauge-invariant
    loss (the reconstructed block and the site's projector) equals autograd through that
    composition and passes gradcheck."""
    gen = torch.Generator().manual_seed(11)
    block = torch.randn(shape, dtype=torch.float64, generator=gen, requires_grad=True)
    b, dl, p, dr = shape

    def plain(block):
        if first:
            u, c, disc = split(block.reshape(b, dl * 2, (p // 2) * dr), max_bond, 0.0)
            c = c / torch.linalg.vector_norm(c, dim=(1, 2), keepdim=True)
            return u.reshape(b, dl, 2, -1), c.reshape(b, -1, p // 2, dr), disc
        u, c, disc = split(block.reshape(b, dl * (p // 2), 2 * dr).mT, max_bond, 0.0)
        c = c / torch.linalg.vector_norm(c, dim=(1, 2), keepdim=True)
        return u.mT.reshape(b, -1, 2, dr), c.mT.reshape(b, dl, p // 2, -1), disc

    def fused(block):
        return split_block(block, first, max_bond, 0.0)

    weight = torch.randn(b, dl * p * dr, dtype=torch.float64, generator=gen)
    projector_weight = torch.randn(b, 2 * max(dl, dr), 2 * max(dl, dr), dtype=torch.float64)

    def invariant(fn):
        def loss(block):
            site, rest, _ = fn(block)
            if first:
                whole = torch.einsum("bxpy,byqz->bxpqz", site, rest)
                u = site.reshape(b, dl * 2, -1)
            else:
                whole = torch.einsum("bxpy,byqz->bxpqz", rest, site)
                u = site.reshape(b, -1, 2 * dr).mT
            proj = u @ u.mT
            rows = proj.shape[1]
            return (whole.reshape(b, -1) * weight).sum() + (
                proj * projector_weight[:, :rows, :rows]
            ).sum()

        return loss

    for a, r in zip(fused(block), plain(block), strict=True):
        torch.testing.assert_close(a, r, atol=1e-12, rtol=1e-12)
    (g_fused,) = torch.autograd.grad(invariant(fused)(block), block)
    (g_plain,) = torch.autograd.grad(invariant(plain)(block), block)
    torch.testing.assert_close(g_fused, g_plain, atol=1e-10, rtol=1e-10)
    assert torch.autograd.gradcheck(invariant(fused), (block,))


@pytest.mark.parametrize(("left", "d", "dr"), [(3, 2, 2), (4, 3, 2), (2, 2, 1)])
def test_walk_left_is_absorb_then_qr_then_renormalisation(left, d, dr):
    """One QR step of the sweep back as one node: values and gradients of both outputs against
    autograd through the site contraction, ``torch.linalg.qr`` and ``x / ‖x‖`` (2·Dr ≥ L,
    square and tall QRs), and gradcheck."""
    gen = torch.Generator().manual_seed(13)
    site = torch.randn(2, left, 2, d, dtype=torch.float64, generator=gen, requires_grad=True)
    bond = torch.randn(2, d, 1, dr, dtype=torch.float64, generator=gen, requires_grad=True)

    def plain(site, bond):
        joined = torch.einsum("bxpy,byqz->bxpqz", site, bond).reshape(2, left, 2 * dr)
        q, r = torch.linalg.qr(joined.mT)
        r = r / torch.linalg.vector_norm(r, dim=(1, 2), keepdim=True)
        return q.mT.reshape(2, left, 2, dr), r.mT.reshape(2, left, 1, left)

    weights = (
        torch.randn(2, left, 2, dr, dtype=torch.float64, generator=gen),
        torch.randn(2, left, 1, left, dtype=torch.float64, generator=gen),
    )
    fused_out, fused = _grads(walk_left, (site, bond), weights)
    plain_out, reference = _grads(plain, (site, bond), weights)
    for a, b in zip((*fused_out, *fused), (*plain_out, *reference), strict=True):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-11)
    assert torch.autograd.gradcheck(walk_left, (site, bond))


def test_apply_ry_is_the_rotation_written_out():
    """``RY`` on axis 2 as one node: values and gradients of the tensor, ``cos`` and ``sin``
    against autograd through the two rows of the rotation written out, and gradcheck."""
    gen = torch.Generator().manual_seed(17)
    x = torch.randn(3, 2, 2, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    cos = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    sin = torch.tensor(-0.8, dtype=torch.float64, requires_grad=True)

    def plain(x, cos, sin):
        zero, one = x[:, :, 0], x[:, :, 1]
        return (torch.stack((cos * zero - sin * one, sin * zero + cos * one), dim=2),)

    weights = (torch.randn(3, 2, 2, 4, dtype=torch.float64, generator=gen),)
    fused_out, fused = _grads(lambda *a: (apply_ry(*a),), (x, cos, sin), weights)
    plain_out, reference = _grads(plain, (x, cos, sin), weights)
    for a, b in zip((*fused_out, *fused), (*plain_out, *reference), strict=True):
        torch.testing.assert_close(a, b, atol=1e-13, rtol=1e-13)
    assert torch.autograd.gradcheck(apply_ry, (x, cos, sin))

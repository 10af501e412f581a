"""The block MPS's moves as single autograd nodes with hand-written backward passes.

At bonds up to ~16 a block move is a few dozen tensor operations on small tensors; as a
plain composition each of them is an autograd node with its own saved tensors and backward
call. Each function here does one move (a truncated split with its renormalisation, a site
absorbed together with the neuron that follows, a QR gauge step of the sweep back) as one
node whose backward is the chain rule of the plain composition written out, with the
reshapes and transposes inside the node. What is left of a training step is mostly
arithmetic: the batched ``eigh`` of the splits, Gram products, QR and the neurons'
elementwise work (``benchmarks.mps_training --parts profile``). Each is checked against
autograd through the plain composition and against finite differences
(``tests/qrnn_tn/backends/mps/test_fused.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from qrnn_tn.backends.mps.svd import (
    gram_grad,
    gram_parts,
    svd_grad,
    svd_parts,
    uses_gram,
)

__all__ = ["NeuronFunction", "apply_ry", "join_neuron", "split_block", "unit", "walk_left"]


def _unit_grad(y: torch.Tensor, norm: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Gradient of ``x`` from that of ``y = x / ‖x‖`` (norms over all but the batch axis)."""
    dims = tuple(range(1, y.dim()))
    inner = (y * g).sum(dim=dims, keepdim=True)
    return (g - y * inner) / norm


class _Unit(torch.autograd.Function):
    """``x [B, m, n]`` divided by its norm per batch element, as one autograd node.

    The backward is ``(g - y ⟨y, g⟩) / ‖x‖`` for ``y = x / ‖x‖``, where autograd would run the
    norm's and the division's backward (about ten small operations) at every split.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
        y = x / norm
        ctx.save_for_backward(y, norm)
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        y, norm = ctx.saved_tensors
        return _unit_grad(y, norm, g)


def unit(x: torch.Tensor) -> torch.Tensor:
    """``x [B, m, n]`` divided by its norm per batch element."""
    return _Unit.apply(x)


def _rotate_target(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``[[c, -s], [s, c]]`` on axis 3 of ``v [B, X, L, 2, R, Z]``, ``c``/``s`` per ``[L, R]``."""
    c, s = cos[:, :, None], sin[:, :, None]
    v0, v1 = v[:, :, :, 0], v[:, :, :, 1]
    y = torch.empty_like(v)
    torch.mul(v0, c, out=y[:, :, :, 0]).addcmul_(v1, s, value=-1)
    torch.mul(v1, c, out=y[:, :, :, 1]).addcmul_(v0, s)
    return y


def _neuron_forward(
    v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``y / ‖y‖`` and ``‖y‖`` for ``y = M v`` (``v [B, X, L, 2, R, Z]``)."""
    y = _rotate_target(v, cos, sin)
    norm = torch.linalg.vector_norm(y.reshape(y.shape[0], -1), dim=1)
    return y.div_(norm.reshape(-1, 1, 1, 1, 1, 1)), norm


def _neuron_grad(
    saved: tuple[torch.Tensor, ...],
    g_out: torch.Tensor,
    g_prob: torch.Tensor,
    needs: tuple[bool, bool, bool],
) -> tuple[torch.Tensor | None, ...]:
    """Gradients of ``v``, ``cos``, ``sin`` (those ``needs`` asks for), recomputing ``y``."""
    v, cos, sin, norm = saved
    n = norm.reshape(-1, 1, 1, 1, 1, 1)
    out = _rotate_target(v, cos, sin).div_(n)
    inner = (out * g_out).reshape(out.shape[0], -1).sum(dim=1)
    coef = (inner - 2 * g_prob * norm.square()).reshape(n.shape)
    g_y = (g_out - out * coef).div_(n)
    g_v = _rotate_target(g_y, cos, -sin) if needs[0] else None
    g_cos = g_sin = None
    if needs[1]:
        g_cos = (v * g_y).sum(dim=(0, 1, 3, 5))
    if needs[2]:
        v0, v1, g0, g1 = v[:, :, :, 0], v[:, :, :, 1], g_y[:, :, :, 0], g_y[:, :, :, 1]
        g_sin = (v0 * g1 - v1 * g0).sum(dim=(0, 1, 4))
    return g_v, g_cos, g_sin


class NeuronFunction(torch.autograd.Function):
    """A neuron on a block viewed as ``v [B, X, L, 2, R, Z]`` (axis 3 the target).

    Renormalised: returns ``y / ‖y‖`` and ``‖y‖² [B]`` for ``y = M v``.

    Autograd would keep ``v``, its flipped copy and ``y`` (three blocks per neuron); this
    keeps ``v`` alone and recomputes ``y`` in the backward, so a step's graph holds about
    half the memory and the backward makes fewer passes over the block.
    """

    @staticmethod
    def forward(
        ctx: Any, v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``y / ‖y‖`` and ``‖y‖²``, keeping ``v`` (not ``y``) for the backward."""
        out, norm = _neuron_forward(v, cos, sin)
        ctx.save_for_backward(v, cos, sin, norm)
        return out, norm.square()

    @staticmethod
    def backward(
        ctx: Any, g_out: torch.Tensor, g_prob: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        """Return the gradients of ``v``, ``cos`` and ``sin``, recomputing ``y`` from ``v``."""
        return _neuron_grad(ctx.saved_tensors, g_out, g_prob, ctx.needs_input_grad[:3])


def _turn(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``[[c, -s], [s, c]]`` (0-d ``c``, ``s``) on axis 2 of ``x [B, L, 2, R]``."""
    x0, x1 = x[:, :, 0], x[:, :, 1]
    y = torch.empty_like(x)
    torch.mul(x0, cos, out=y[:, :, 0]).addcmul_(x1, sin, value=-1)
    torch.mul(x1, cos, out=y[:, :, 1]).addcmul_(x0, sin)
    return y


class _Rotate(torch.autograd.Function):
    """``RY`` on axis 2 of ``x [B, L, 2, R]`` as one node (autograd's would be nine)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, cos, sin)
        return _turn(x, cos, sin)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, cos, sin = ctx.saved_tensors
        g_x = _turn(g, cos, -sin) if ctx.needs_input_grad[0] else None
        g_cos = (x * g).sum() if ctx.needs_input_grad[1] else None
        g_sin = None
        if ctx.needs_input_grad[2]:
            g_sin = (x[:, :, 0] * g[:, :, 1]).sum() - (x[:, :, 1] * g[:, :, 0]).sum()
        return g_x, g_cos, g_sin


def apply_ry(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``RY`` (``[[c, -s], [s, c]]``, 0-d ``c``, ``s``) on axis 2 of ``x [B, L, 2, R]``."""
    return _Rotate.apply(x, cos, sin)


class _JoinNeuron(torch.autograd.Function):
    """Absorb ``site [B, D, 2, Dr]`` right of ``block [B, Dl, P, D]``, then the neuron.

    ``left`` is ``2^(target - c0)``: the joined block is viewed as ``[B, Dl, left, 2, R,
    Dr]``. Returns the renormalised joined block ``[B, Dl, 2P, Dr]`` and ``‖y‖²``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        block: torch.Tensor,
        site: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        left: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, dl, p, d = block.shape
        dr = site.shape[3]
        joined = torch.bmm(block.reshape(b, dl * p, d), site.reshape(b, d, 2 * dr))
        v = joined.reshape(b, dl, left, 2, p // left, dr)
        out, norm = _neuron_forward(v, cos, sin)
        ctx.save_for_backward(block, site, v, cos, sin, norm)
        return out.reshape(b, dl, 2 * p, dr), norm.square()

    @staticmethod
    def backward(
        ctx: Any, g_out: torch.Tensor, g_prob: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        block, site, v, cos, sin, norm = ctx.saved_tensors
        b, dl, p, d = block.shape
        needs = (True, *ctx.needs_input_grad[2:4])
        g_v, g_cos, g_sin = _neuron_grad((v, cos, sin, norm), g_out.reshape(v.shape), g_prob, needs)
        assert g_v is not None
        g_joined = g_v.reshape(b, dl * p, -1)
        g_block = g_site = None
        if ctx.needs_input_grad[0]:
            g_block = torch.bmm(g_joined, site.reshape(b, d, -1).mT).reshape(block.shape)
        if ctx.needs_input_grad[1]:
            g_site = torch.bmm(block.reshape(b, dl * p, d).mT, g_joined).reshape(site.shape)
        return g_block, g_site, g_cos, g_sin, None


def join_neuron(
    block: torch.Tensor, site: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, left: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Absorb ``site`` right of ``block`` and apply the neuron (see :class:`_JoinNeuron`)."""
    return _JoinNeuron.apply(block, site, cos, sin, left)


class _SplitBlock(torch.autograd.Function):
    """Peel the first (``first``) or last site off ``block [B, Dl, P, Dr]`` by a truncated split.

    Returns the site (left- or right-orthonormal), the rest of the block renormalised, and
    the discarded weight; the split is :func:`~qrnn_tn.backends.mps.svd.split`'s (Gram or
    SVD route), the renormalisation :func:`unit`'s.
    """

    @staticmethod
    def forward(
        ctx: Any, block: torch.Tensor, first: bool, max_bond: int | None, cutoff: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, dl, p, dr = block.shape
        if first:
            m = block.reshape(b, dl * 2, (p // 2) * dr)
        else:
            m = block.reshape(b, dl * (p // 2), 2 * dr).mT
        gram = uses_gram(m, max_bond)
        if gram:
            assert max_bond is not None
            u, c, discarded, saved = gram_parts(m, max_bond, cutoff)
        else:
            u, c, discarded, saved = svd_parts(m, max_bond, cutoff)
        norm = torch.linalg.vector_norm(c, dim=(1, 2), keepdim=True)
        c = c / norm
        ctx.gram, ctx.first, ctx.shape = gram, first, block.shape
        ctx.save_for_backward(c, norm, *saved)
        ctx.mark_non_differentiable(discarded)
        keep = u.shape[2]
        if first:
            return u.reshape(b, dl, 2, keep), c.reshape(b, keep, p // 2, dr), discarded
        return u.mT.reshape(b, keep, 2, dr), c.mT.reshape(b, dl, p // 2, keep), discarded

    @staticmethod
    def backward(
        ctx: Any, g_site: torch.Tensor, g_rest: torch.Tensor, _g_disc: torch.Tensor
    ) -> tuple[torch.Tensor, None, None, None]:
        c, norm, *saved = ctx.saved_tensors
        b, dl, p, dr = ctx.shape
        keep = c.shape[1]
        if ctx.first:
            g_u = g_site.reshape(b, dl * 2, keep)
            g_c = g_rest.reshape(c.shape)
        else:
            g_u = g_site.reshape(b, keep, 2 * dr).mT
            g_c = g_rest.reshape(b, -1, keep).mT
        g_c = _unit_grad(c, norm, g_c)
        g_m = (gram_grad if ctx.gram else svd_grad)(tuple(saved), g_u, g_c)
        g_block = g_m.reshape(ctx.shape) if ctx.first else g_m.mT.reshape(ctx.shape)
        return g_block, None, None, None


def split_block(
    block: torch.Tensor, first: bool, max_bond: int | None, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(site, rest, discarded)``: the first or last site of ``block`` split off.

    See :class:`_SplitBlock`.
    """
    return _SplitBlock.apply(block, first, max_bond, cutoff)


class _WalkLeft(torch.autograd.Function):
    """One QR gauge step of an empty block walking left.

    ``site [B, L, 2, D]`` is absorbed left of the bond matrix ``bond [B, D, 1, Dr]``, the
    result ``[L, 2·Dr]`` factored as ``Rᵀ Qᵀ`` (QR of its transpose, ``2·Dr ≥ L``): returns
    the right-orthonormal site ``Qᵀ [B, L, 2, Dr]`` and the renormalised bond ``Rᵀ [B, L, 1,
    L]``. The QR backward is the one for full-column-rank ``A = QR``:
    ``∂A = (∂Q + Q copyltu(R ∂Rᵀ - ∂Qᵀ Q)) R⁻ᵀ``.
    """

    @staticmethod
    def forward(
        ctx: Any, site: torch.Tensor, bond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, lft, _, d = site.shape
        dr = bond.shape[3]
        joined = torch.bmm(site.reshape(b, 2 * lft, d), bond.reshape(b, d, dr))
        q, r = torch.linalg.qr(joined.reshape(b, lft, 2 * dr).mT)
        norm = torch.linalg.vector_norm(r, dim=(1, 2), keepdim=True)
        rn = r / norm
        ctx.save_for_backward(site, bond, q, rn, norm)
        return q.mT.reshape(b, lft, 2, dr), rn.mT.reshape(b, lft, 1, lft)

    @staticmethod
    def backward(
        ctx: Any, g_site_out: torch.Tensor, g_bond_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        site, bond, q, rn, norm = ctx.saved_tensors
        b, lft, _, d = site.shape
        dr = bond.shape[3]
        g_q = g_site_out.reshape(b, lft, 2 * dr).mT
        g_r = _unit_grad(rn, norm, g_bond_out.reshape(b, lft, lft).mT)
        r = rn * norm
        m = r @ g_r.mT - g_q.mT @ q
        sym = m.tril() + m.tril(-1).mT
        g_a = torch.linalg.solve_triangular(r, (g_q + q @ sym).mT, upper=True)  # (… R⁻ᵀ)ᵀ
        g_joined = g_a.reshape(b, 2 * lft, dr)
        g_site = g_bond = None
        if ctx.needs_input_grad[0]:
            g_site = torch.bmm(g_joined, bond.reshape(b, d, dr).mT).reshape(site.shape)
        if ctx.needs_input_grad[1]:
            g_bond = torch.bmm(site.reshape(b, 2 * lft, d).mT, g_joined).reshape(bond.shape)
        return g_site, g_bond


def walk_left(site: torch.Tensor, bond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(site', bond')`` of one QR step of an empty block walking left (see :class:`_WalkLeft`).

    Needs ``2 · bond.shape[3] ≥ site.shape[1]`` (the QR's matrix not wider than tall).
    """
    return _WalkLeft.apply(site, bond)

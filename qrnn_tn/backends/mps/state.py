"""A batched MPS in mixed canonical form around a dense *block* of adjacent sites.

Sites ``0 … n-1`` follow lane order (qubit 0 leftmost, the most significant bit). Sites left
of the block are left-orthonormal, sites right of it right-orthonormal, and the block
``[B, Dl, 2^w, Dr]`` (sites ``c0 … c1``, ``c0`` most significant) holds the whole norm and is
kept normalised. An operator on sites ``a … b`` first makes the block cover exactly those
sites (peeling sites off by truncated SVDs, absorbing neighbours by contraction), then acts
on the block; renormalising is dividing the block by its norm, and marginals of sites at
the left end are sums of squares of the block. Neurons sweeping in lane order therefore cost
one SVD each: the block keeps the ``2r`` sites the next neuron shares.
"""

from __future__ import annotations

from typing import Any

import torch

from qrnn_tn.backends.mps.svd import split

__all__ = ["BlockMPS", "NeuronFunction", "join_sites", "unit"]


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
        inner = (y * g).sum(dim=(1, 2), keepdim=True)
        return (g - y * inner) / norm


def unit(x: torch.Tensor) -> torch.Tensor:
    """``x [B, m, n]`` divided by its norm per batch element."""
    return _Unit.apply(x)


def join_sites(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Contract ``[B, Dl, P, D] · [B, D, Q, Dr] -> [B, Dl, P·Q, Dr]``.

    One batched matrix product (``torch.einsum`` adds permutations and copies around it).
    """
    b, dl, p, d = left.shape
    out = torch.bmm(left.reshape(b, dl * p, d), right.reshape(b, d, -1))
    return out.reshape(b, dl, -1, right.shape[3])


def _rotate_target(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``[[c, -s], [s, c]]`` on axis 3 of ``v [B, X, L, 2, R, Z]``, ``c``/``s`` per ``[L, R]``."""
    c, s = cos[:, :, None], sin[:, :, None]
    v0, v1 = v[:, :, :, 0], v[:, :, :, 1]
    y = torch.empty_like(v)
    torch.mul(v0, c, out=y[:, :, :, 0]).addcmul_(v1, s, value=-1)
    torch.mul(v1, c, out=y[:, :, :, 1]).addcmul_(v0, s)
    return y


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
        y = _rotate_target(v, cos, sin)
        norm = torch.linalg.vector_norm(y.reshape(y.shape[0], -1), dim=1)
        ctx.save_for_backward(v, cos, sin, norm)
        return y.div_(norm.reshape(-1, 1, 1, 1, 1, 1)), norm.square()

    @staticmethod
    def backward(
        ctx: Any, g_out: torch.Tensor, g_prob: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        """Return the gradients of ``v``, ``cos`` and ``sin``, recomputing ``y`` from ``v``."""
        v, cos, sin, norm = ctx.saved_tensors
        n = norm.reshape(-1, 1, 1, 1, 1, 1)
        out = _rotate_target(v, cos, sin).div_(n)
        inner = (out * g_out).reshape(out.shape[0], -1).sum(dim=1)
        coef = (inner - 2 * g_prob * norm.square()).reshape(n.shape)
        g_y = (g_out - out * coef).div_(n)
        g_v = _rotate_target(g_y, cos, -sin) if ctx.needs_input_grad[0] else None
        g_cos = g_sin = None
        if ctx.needs_input_grad[1]:
            g_cos = (v * g_y).sum(dim=(0, 1, 3, 5))
        if ctx.needs_input_grad[2]:
            v0, v1, g0, g1 = v[:, :, :, 0], v[:, :, :, 1], g_y[:, :, :, 0], g_y[:, :, :, 1]
            g_sin = (v0 * g1 - v1 * g0).sum(dim=(0, 1, 4))
        return g_v, g_cos, g_sin


class BlockMPS:
    """Site tensors ``[B, Dl, 2, Dr]`` plus the normalised block; see the module doc.

    ``discarded`` accumulates the truncated weight ``[B]`` since it was last reset.
    """

    def __init__(
        self,
        sites: list[torch.Tensor | None],
        block: torch.Tensor,
        c0: int,
        c1: int,
        max_bond: int | None,
        cutoff: float,
        differentiable: bool = False,
    ) -> None:
        self.sites = sites
        self.block = block
        self.c0, self.c1 = c0, c1
        self.max_bond = max_bond
        self.cutoff = cutoff
        self.differentiable = differentiable
        self.discarded = torch.zeros(block.shape[0], dtype=block.dtype, device=block.device)

    @classmethod
    def zeros(
        cls,
        n: int,
        width: int,
        batch: int,
        dtype: torch.dtype,
        device: torch.device | str,
        max_bond: int | None,
        cutoff: float,
    ) -> BlockMPS:
        """``|0…0⟩`` for every sequence; the block is sites ``0 … width-1``."""
        site = torch.zeros(batch, 1, 2, 1, dtype=dtype, device=device)
        site[:, :, 0] = 1.0
        block = torch.zeros(batch, 1, 2**width, 1, dtype=dtype, device=device)
        block[:, :, 0] = 1.0
        sites: list[torch.Tensor | None] = [None] * width
        sites += [site.clone() for _ in range(n - width)]
        return cls(sites, block, 0, width - 1, max_bond, cutoff)

    def site(self, k: int) -> torch.Tensor:
        """Site tensor ``k`` (outside the block: sites inside it are held by the block)."""
        site = self.sites[k]
        if site is None:
            raise IndexError(f"site {k} is inside the block {self.c0}…{self.c1}")
        return site

    @property
    def n(self) -> int:
        """Number of sites."""
        return len(self.sites)

    def bond_dims(self) -> list[int]:
        """Bond dimensions between sites (the block's inner bonds reported as dense)."""
        dims = []
        for k in range(self.n - 1):
            if self.c0 <= k < self.c1:
                left = self.block.shape[1] * 2 ** (k - self.c0 + 1)
                right = self.block.shape[3] * 2 ** (self.c1 - k)
                dims.append(min(left, right))
            elif k == self.c1:
                dims.append(self.block.shape[3])
            else:
                dims.append(self.site(k).shape[3])
        return dims

    # -- moving and reshaping the block ------------------------------------------------------

    def _absorb_left(self) -> None:
        self.block = join_sites(self.site(self.c0 - 1), self.block)
        self.sites[self.c0 - 1] = None
        self.c0 -= 1

    def _absorb_right(self) -> None:
        self.block = join_sites(self.block, self.site(self.c1 + 1))
        self.sites[self.c1 + 1] = None
        self.c1 += 1

    def _truncate(self, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, c, discarded = split(m, self.max_bond, self.cutoff)
        self.discarded = self.discarded + discarded
        return u, unit(c)

    def _gauge_by_qr(self) -> bool:
        """Whether a one-site block moves by QR instead of SVD.

        A pure gauge move: its outer bonds already respect the cap. Without gradients always; with
        gradients only in the capped float64 mode, whose splits keep singular values ≥ ``GRAM_FLOOR
        · s_max`` so that ``R`` is well conditioned for the QR backward. The choice follows
        ``differentiable``, not the grad mode, so a checkpointed run recomputes exactly the tensors
        (and gauge) of its forward pass.
        """
        if not self.differentiable:
            return True
        return self.max_bond is not None and self.block.dtype == torch.float64

    def _qr(self, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, r = torch.linalg.qr(m)
        return q, unit(r)

    def _split_left(self) -> None:
        b, dl, p, dr = self.block.shape
        if p == 2 and self._gauge_by_qr():
            u, c = self._qr(self.block.reshape(b, dl * 2, dr))
            self.sites[self.c0] = u.reshape(b, dl, 2, -1)
            self.block = c.reshape(b, -1, 1, dr)
            self.c0 += 1
            return
        u, c = self._truncate(self.block.reshape(b, dl * 2, (p // 2) * dr))
        self.sites[self.c0] = u.reshape(b, dl, 2, -1)
        self.block = c.reshape(b, -1, p // 2, dr)
        self.c0 += 1

    def _split_right(self) -> None:
        b, dl, p, dr = self.block.shape
        if p == 2 and self._gauge_by_qr():
            u, c = self._qr(self.block.reshape(b, dl, 2 * dr).mT)
            self.sites[self.c1] = u.mT.reshape(b, -1, 2, dr)
            self.block = c.mT.reshape(b, dl, 1, -1)
            self.c1 -= 1
            return
        u, c = self._truncate(self.block.reshape(b, dl * (p // 2), 2 * dr).mT)
        self.sites[self.c1] = u.mT.reshape(b, -1, 2, dr)
        self.block = c.mT.reshape(b, dl, p // 2, -1)
        self.c1 -= 1

    def cover(self, a: int, b: int) -> None:
        """Make the block span exactly sites ``a … b`` (an empty block when ``b = a - 1``)."""
        while self.c1 > b and self.c1 >= self.c0:
            self._split_right()
        while self.c0 < a and self.c0 <= self.c1:
            self._split_left()
        while self.c1 > b:  # empty block right of the window: walk it left
            self._absorb_left()
            self._split_right()
        while self.c0 < a:  # empty block left of the window: walk it right
            self._absorb_right()
            self._split_left()
        while self.c0 > a:
            self._absorb_left()
        while self.c1 < b:
            self._absorb_right()

    def _legs(self, pos: int) -> tuple[int, int, int, int]:
        """``(B·Dl, L, R, Dr)`` to view the block as ``[B·Dl, L, 2, R, Dr]`` around ``pos``."""
        b, dl, p, dr = self.block.shape
        left = 2 ** (pos - self.c0)
        return b * dl, left, p // (2 * left), dr

    # -- operations --------------------------------------------------------------------------

    def flip(self, pos: int, mask: torch.Tensor) -> None:
        """``X`` on site ``pos`` for the sequences where ``mask [B]`` is true."""
        if self.c0 <= pos <= self.c1:
            bd, left, right, dr = self._legs(pos)
            view = self.block.reshape(self.block.shape[0], -1, left, 2, right, dr)
            flipped = torch.where(mask[:, None, None, None, None, None], view.flip(3), view)
            self.block = flipped.reshape(self.block.shape)
        else:
            site = self.site(pos)
            self.sites[pos] = torch.where(mask[:, None, None, None], site.flip(2), site)

    def rotate(self, pos: int, cos: torch.Tensor, sin: torch.Tensor) -> None:
        """``RY`` on a site outside the block (keeps its orthonormality: the gate is unitary)."""
        if self.c0 <= pos <= self.c1:
            bd, left, right, dr = self._legs(pos)
            view = self.block.reshape(bd, left, 2, right, dr)
            zero, one = view[:, :, 0], view[:, :, 1]
            out = torch.stack((cos * zero - sin * one, sin * zero + cos * one), dim=2)
            self.block = out.reshape(self.block.shape)
            return
        site = self.site(pos)
        zero, one = site[:, :, 0], site[:, :, 1]
        self.sites[pos] = torch.stack((cos * zero - sin * one, sin * zero + cos * one), dim=2)

    def neuron(
        self, a: int, b: int, target: int, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        """``Σ_x |x⟩⟨x| ⊗ M(x)`` on window ``a … b``; returns the squared norm ``[B]``.

        ``cos``/``sin`` are ``c(x)``, ``s(x)`` laid out as ``[L, R]`` over the window's other
        sites (those left of the target, those right of it). The block is renormalised.
        """
        self.cover(a, b)
        _, left, right, dr = self._legs(target)
        view = self.block.reshape(self.block.shape[0], -1, left, 2, right, dr)
        out, prob = NeuronFunction.apply(view, cos, sin)
        self.block = out.reshape(self.block.shape)
        return prob

    def swap(self, pos: int) -> None:
        """Exchange the lanes on sites ``pos`` and ``pos + 1``."""
        self.cover(pos, pos + 1)
        b, dl, _, dr = self.block.shape
        self.block = self.block.reshape(b, dl, 2, 2, dr).transpose(2, 3).reshape(b, dl, 4, dr)

    def marginal(self, width: int) -> torch.Tensor:
        """Distribution ``[B, 2^width]`` of the first ``width`` sites (words, MSB first)."""
        self.cover(0, width - 1)
        probs = self.block.square().sum(dim=(1, 3))
        return probs / probs.sum(dim=1, keepdim=True)

    def project(self, width: int, words: torch.Tensor, prob: torch.Tensor) -> None:
        """Project the first ``width`` sites on ``words [B]`` (of probability ``prob``)."""
        self.cover(0, width - 1)
        hot = torch.nn.functional.one_hot(words, 2**width).to(self.block.dtype)
        scale = prob.clamp_min(torch.finfo(prob.dtype).tiny).rsqrt()
        self.block = self.block * (hot * scale[:, None])[:, None, :, None]

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

import torch

from qrnn_tn.backends.mps.fused import (
    NeuronFunction,
    apply_ry,
    join_neuron,
    split_block,
    unit,
    walk_left,
)

__all__ = ["BlockMPS", "NeuronFunction", "join_sites", "unit"]


def join_sites(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Contract ``[B, Dl, P, D] · [B, D, Q, Dr] -> [B, Dl, P·Q, Dr]``.

    One batched matrix product (``torch.einsum`` adds permutations and copies around it).
    """
    b, dl, p, d = left.shape
    out = torch.bmm(left.reshape(b, dl * p, d), right.reshape(b, d, -1))
    return out.reshape(b, dl, -1, right.shape[3])


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

    def _discard(self, discarded: torch.Tensor) -> None:
        self.discarded = self.discarded + discarded

    def _walk_left(self) -> None:
        """Move an empty block one site left (absorb the site, split it off by QR)."""
        site = self.site(self.c0 - 1)
        if self._gauge_by_qr() and 2 * self.block.shape[3] >= site.shape[1]:
            self.sites[self.c1], self.block = walk_left(site, self.block)  # c1 = c0 - 1
            self.c0 -= 1
            self.c1 -= 1
            return
        self._absorb_left()
        self._split_right()

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
        site, self.block, discarded = split_block(self.block, True, self.max_bond, self.cutoff)
        self.sites[self.c0] = site
        self._discard(discarded)
        self.c0 += 1

    def _split_right(self) -> None:
        b, dl, p, dr = self.block.shape
        if p == 2 and self._gauge_by_qr():
            u, c = self._qr(self.block.reshape(b, dl, 2 * dr).mT)
            self.sites[self.c1] = u.mT.reshape(b, -1, 2, dr)
            self.block = c.mT.reshape(b, dl, 1, -1)
            self.c1 -= 1
            return
        site, self.block, discarded = split_block(self.block, False, self.max_bond, self.cutoff)
        self.sites[self.c1] = site
        self._discard(discarded)
        self.c1 -= 1

    def cover(self, a: int, b: int, defer_last: bool = False) -> bool:
        """Make the block span exactly sites ``a … b`` (an empty block when ``b = a - 1``).

        With ``defer_last``, when the last move would absorb site ``b`` on the right, it is
        left to the caller (the block spans ``a … b-1``) and the return value is true.
        """
        while self.c1 > b and self.c1 >= self.c0:
            self._split_right()
        while self.c0 < a and self.c0 <= self.c1:
            self._split_left()
        while self.c1 > b:  # empty block right of the window: walk it left
            self._walk_left()
        while self.c0 < a:  # empty block left of the window: walk it right
            self._absorb_right()
            self._split_left()
        while self.c0 > a:
            self._absorb_left()
        while self.c1 < b:
            if defer_last and self.c1 == b - 1:
                return True
            self._absorb_right()
        return False

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
            view = self.block.reshape(bd, left, 2, right * dr)
            self.block = apply_ry(view, cos, sin).reshape(self.block.shape)
            return
        self.sites[pos] = apply_ry(self.site(pos), cos, sin)

    def neuron(
        self, a: int, b: int, target: int, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        """``Σ_x |x⟩⟨x| ⊗ M(x)`` on window ``a … b``; returns the squared norm ``[B]``.

        ``cos``/``sin`` are ``c(x)``, ``s(x)`` laid out as ``[L, R]`` over the window's other
        sites (those left of the target, those right of it). The block is renormalised.
        """
        if self.cover(a, b, defer_last=True):  # absorb site b and apply, as one node
            self.block, prob = join_neuron(
                self.block, self.site(b), cos, sin, 2 ** (target - self.c0)
            )
            self.sites[b] = None
            self.c1 = b
            return prob
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

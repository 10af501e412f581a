"""Truncated SVD split of a batch of matrices, with a backward that survives degeneracy.

``split(M)`` factors ``M ≈ U @ C`` with ``U`` an isometry (``Uᵀ U = 1``) and ``C = S Vᵀ``:
the step that peels one site off an MPS block. Its backward is the exact derivative of the
truncated factorisation, computed from the *full* thin SVD so that kept and discarded
singular vectors couple through ``1 / (s_k² - s_j²)``. Two guards keep it finite:

* ``1 / (s_k² - s_j²)`` is written as ``½ [1/(s_k - s_j) ± 1/(s_k + s_j)]`` and each factor
  is Lorentzian-broadened, ``1/x -> x / (x² + ε)``. For outputs invariant under the gauge
  ``U -> U O, C -> Oᵀ C`` (every MPS observable) the degenerate part cancels analytically,
  so broadening it costs nothing there, while ``1/(s_k + s_j)`` keeps its finite value.
* ``1 / s`` on the ``U`` side becomes ``s / (s² + ε)``; the ``V`` side needs no inverse
  because the gradient arrives through ``C = S Vᵀ``.
"""

from __future__ import annotations

import torch

__all__ = ["split", "broadening"]


def broadening(dtype: torch.dtype) -> float:
    """``ε`` of the Lorentzian guards: squared relative resolution of the singular values."""
    return 1e-24 if dtype == torch.float64 else 1e-12


def _lorentz(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x / (x * x + eps)


class _Split(torch.autograd.Function):
    """``M [B, m, n] -> (U [B, m, D], C [B, D, n], discarded [B])``; see the module doc."""

    @staticmethod
    def forward(ctx, m: torch.Tensor, max_bond: int | None, cutoff: float):
        u, s, vh = torch.linalg.svd(m, full_matrices=False)
        keep = int((s > cutoff * s[:, :1]).sum(dim=1).max().clamp_min(1))
        if max_bond is not None:
            keep = min(keep, max_bond)
        total = (s * s).sum(dim=1)
        discarded = (s[:, keep:] ** 2).sum(dim=1) / total.clamp_min(torch.finfo(s.dtype).tiny)
        ctx.keep = keep
        ctx.save_for_backward(u, s, vh)
        ctx.mark_non_differentiable(discarded)
        return u[..., :keep], s[:, :keep, None] * vh[:, :keep], discarded

    @staticmethod
    def backward(ctx, g_u: torch.Tensor, g_c: torch.Tensor, _g_disc: torch.Tensor):
        u, s, vh = ctx.saved_tensors
        keep, full = ctx.keep, s.shape[1]
        eps = broadening(s.dtype)
        if keep < full:
            g_u = torch.nn.functional.pad(g_u, (0, full - keep))
            g_c = torch.nn.functional.pad(g_c, (0, 0, 0, full - keep))
        a = u.mT @ g_u
        c_v = g_c @ vh.mT  # (gC V)_jk; b = Vᵀ gV has b_jk = (V gCᵀ)_jk s_k = (c_v)ᵀ_jk s_k
        b = c_v.mT * s[:, None, :]
        skew_a, skew_b = a - a.mT, b - b.mT
        diff = s[:, None, :] - s[:, :, None]  # s_k - s_j at [j, k]
        summ = s[:, None, :] + s[:, :, None]
        inner = 0.5 * (
            (skew_a + skew_b) * _lorentz(diff, eps) + (skew_a - skew_b) * _lorentz(summ, eps)
        )
        inner = inner + torch.diag_embed(torch.diagonal(c_v, dim1=1, dim2=2))
        s_inv = s / (s * s + eps)
        g_m = u @ inner @ vh
        g_m = g_m + ((g_u - u @ a) * s_inv[:, None, :]) @ vh
        g_m = g_m + u @ (g_c - c_v @ vh)
        return g_m, None, None


def split(
    m: torch.Tensor, max_bond: int | None, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Factor ``M [B, m, n]`` as ``U [B, m, D] @ C [B, D, n]`` keeping ``D`` singular values.

    ``D`` is the largest count of singular values above ``cutoff · s_max`` over the batch,
    capped at ``max_bond``; one ``D`` for the batch keeps the tensors rectangular. Also
    returns the discarded weight ``Σ_{i ≥ D} s_i² / Σ s_i²`` per batch element.
    """
    return _Split.apply(m, max_bond, cutoff)

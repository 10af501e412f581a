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

from typing import Any

import torch

from qrnn_tn.errors import BackendError

__all__ = [
    "GRAM_FLOOR",
    "broadening",
    "gram_grad",
    "gram_parts",
    "split",
    "svd_grad",
    "svd_parts",
    "uses_gram",
]

GRAM_FLOOR = 1e-7
"""Relative singular-value floor of the Gram (eigh) route: its eigenvalues carry an absolute
error ~1e-16·s_max², so singular values below ~1e-8·s_max are noise there. Used only when
truncation is active (``max_bond`` set, float64); the factorisation stays exact up to the
reported discarded weight because ``C = Uᵀ M`` is a projection onto orthonormal ``U``."""


def broadening(dtype: torch.dtype) -> float:
    """``ε`` of the Lorentzian guards: squared relative resolution of the singular values."""
    return 1e-24 if dtype == torch.float64 else 1e-12


def _lorentz(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x / (x * x + eps)


def svd_parts(
    m: torch.Tensor, max_bond: int | None, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """``U``, ``C``, the discarded weight and what :func:`svd_grad` needs, by the exact SVD."""
    try:
        u, s, vh = torch.linalg.svd(m, full_matrices=False)
    except torch.linalg.LinAlgError:  # checked after a failure, not before every split
        check_finite(m)
        raise
    if not bool(torch.isfinite(s).all()):  # the SVD returns NaN for infinite input
        check_finite(m)
    keep = int((s > cutoff * s[:, :1]).sum(dim=1).max().clamp_min(1))
    if max_bond is not None:
        keep = min(keep, max_bond)
    total = (s * s).sum(dim=1)
    discarded = (s[:, keep:] ** 2).sum(dim=1) / total.clamp_min(torch.finfo(s.dtype).tiny)
    return u[..., :keep], s[:, :keep, None] * vh[:, :keep], discarded, (u, s, vh)


def svd_grad(saved: tuple[torch.Tensor, ...], g_u: torch.Tensor, g_c: torch.Tensor) -> torch.Tensor:
    """Gradient of ``M`` from those of ``U`` and ``C``; see the module doc."""
    u, s, vh = saved
    keep, full = g_u.shape[2], s.shape[1]
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
    return g_m + u @ (g_c - c_v @ vh)


def gram_parts(
    m: torch.Tensor, max_bond: int, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """``U``, ``C``, the discarded weight and what :func:`gram_grad` needs, by ``eigh``."""
    try:
        lam, w = torch.linalg.eigh(m @ m.mT)  # ascending
    except torch.linalg.LinAlgError:  # as for every non-finite input
        check_finite(m)
        raise
    lam, w = lam.flip(-1).clamp_min(0), w.flip(-1)
    cut = max(cutoff, GRAM_FLOOR) ** 2
    keep = int((lam > cut * lam[:, :1]).sum(dim=1).max().clamp_min(1))
    keep = min(keep, max_bond)
    total = lam.sum(dim=1)
    discarded = lam[:, keep:].sum(dim=1) / total.clamp_min(torch.finfo(m.dtype).tiny)
    u = w[..., :keep]
    return u, u.mT @ m, discarded, (m, lam, w)


def gram_grad(
    saved: tuple[torch.Tensor, ...], g_u: torch.Tensor, g_c: torch.Tensor
) -> torch.Tensor:
    """Gradient of ``M`` from those of ``U`` and ``C``; see :class:`_Split`."""
    m, lam, w = saved
    keep = g_u.shape[2]
    u, rest = w[..., :keep], w[..., keep:]
    g_m = u @ g_c
    if rest.shape[-1] == 0:  # nothing discarded: U is square and M = U C exactly
        return g_m
    g_ut = g_u + m @ g_c.mT  # total gradient on U (C = Uᵀ M)
    x = rest.mT @ g_ut  # [B, r - k, k]
    f = _lorentz(lam[:, None, :keep] - lam[:, keep:, None], broadening(m.dtype))
    g_g = rest @ (f * x) @ u.mT
    return g_m + (g_g + g_g.mT) @ m


def uses_gram(m: torch.Tensor, max_bond: int | None) -> bool:
    """Whether :func:`split` factors ``m`` through the Gram matrix (see there)."""
    return max_bond is not None and m.dtype == torch.float64 and m.shape[1] <= m.shape[2]


def check_finite(m: torch.Tensor) -> None:
    """Refuse a matrix to be split that holds NaN or infinite values (LAPACK's error is opaque)."""
    if not bool(torch.isfinite(m).all()):
        raise BackendError(
            f"mps: a {tuple(m.shape)} tensor to be split by SVD holds NaN or infinite values "
            "(non-finite parameters, or an overflow); check that the parameters are finite, "
            "or use float64"
        )


class _Split(torch.autograd.Function):
    """``M [B, m, n] -> (U [B, m, D], C [B, D, n], discarded [B])``; see the module doc.

    ``gram`` picks the route: the thin SVD (:func:`svd_parts`, :func:`svd_grad`) or
    ``eigh(M Mᵀ)`` for rows ≤ columns (:func:`gram_parts`, :func:`gram_grad`): ``U`` the top
    eigenvectors, ``C = Uᵀ M``, and a backward by eigenvector perturbation with the
    Lorentzian-guarded ``1/(λ_k - λ_j)`` for kept ``k`` and discarded ``j`` only. Kept-kept
    pairs rotate ``U`` inside its own span (``U -> U O``, ``C -> Oᵀ C``), which no MPS output
    sees: for such outputs ``Uᵀ ∂L/∂U`` is symmetric, their term antisymmetric, and its
    contribution ``g + gᵀ`` is exactly zero, so it is not computed.
    """

    @staticmethod
    def forward(
        ctx: Any, m: torch.Tensor, max_bond: int | None, cutoff: float, gram: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if gram:
            assert max_bond is not None  # uses_gram: the Gram route needs a cap
            u, c, discarded, saved = gram_parts(m, max_bond, cutoff)
        else:
            u, c, discarded, saved = svd_parts(m, max_bond, cutoff)
        ctx.gram = gram
        ctx.save_for_backward(*saved)
        ctx.mark_non_differentiable(discarded)
        return u, c, discarded

    @staticmethod
    def backward(
        ctx: Any, g_u: torch.Tensor, g_c: torch.Tensor, _g_disc: torch.Tensor
    ) -> tuple[torch.Tensor, None, None, None]:
        grad = gram_grad if ctx.gram else svd_grad
        return grad(ctx.saved_tensors, g_u, g_c), None, None, None


def split(
    m: torch.Tensor, max_bond: int | None, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Factor ``M [B, m, n]`` as ``U [B, m, D] @ C [B, D, n]`` keeping ``D`` singular values.

    ``D`` is the largest count of singular values above ``cutoff · s_max`` over the batch,
    capped at ``max_bond``; one ``D`` for the batch keeps the tensors rectangular. Also
    returns the discarded weight ``Σ_{i ≥ D} s_i² / Σ s_i²`` per batch element.

    With a cap in float64 and rows ≤ columns the split goes through ``eigh`` of the Gram
    matrix (:class:`_Split`, ~2.5× cheaper than the SVD on CPU; singular values below
    ``GRAM_FLOOR · s_max`` are dropped and counted as discarded); otherwise the exact SVD.
    """
    return _Split.apply(m, max_bond, cutoff, uses_gram(m, max_bond))

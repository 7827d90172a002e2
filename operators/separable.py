"""Separable operators ``y_c = A_h X_c A_wᵀ`` with small dense 1-D factors (blur, bicubic reduction)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import torch

from .base import (
    DEFAULT_ZERO_TOL,
    OperatorError,
    SVDOperator,
    channel_major_index,
    inverse_permutation,
    rank_major_index,
)


def _fold(x: np.ndarray) -> np.ndarray:
    """Orthogonal split of the rows into (even part, odd part): ``(x_i ± x_{n-1-i})/√2``, middle row even."""
    half, r2 = x.shape[0] // 2, np.sqrt(0.5)
    top, bottom = x[:half], x[::-1][:half]
    return np.concatenate([(top + bottom) * r2, x[half : x.shape[0] - half], (top - bottom) * r2])


def _unfold(y: np.ndarray) -> np.ndarray:
    """Inverse (= transpose) of :func:`_fold` along the rows."""
    n = y.shape[0]
    half, r2 = n // 2, np.sqrt(0.5)
    even, middle, odd = y[:half], y[half : n - half], y[n - half :]
    return np.concatenate([(even + odd) * r2, middle, ((even - odd) * r2)[::-1]])


def _svd_block(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full SVD ``(U, s, Vᵀ)`` of a ``p x q`` block, ``p <= q``; symmetric blocks use the faster ``eigh``."""
    p, q = a.shape
    if p == 0:
        return np.zeros((0, 0)), np.zeros(0), np.eye(q)
    a = np.ascontiguousarray(a)  # LAPACK is ~10x slower on strided views
    if p == q and np.allclose(a, a.T, rtol=0, atol=1e-13 * np.abs(a).max()):
        lam, vec = scipy.linalg.eigh(a, driver="evr")  # MRRR: ~3x faster than the default here
        return vec * np.where(lam < 0, -1.0, 1.0), np.abs(lam), vec.T
    return np.linalg.svd(a)


def svd_1d(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full SVD ``(U, s, Vᵀ)`` of a ``p x q`` (``p <= q``) matrix; the first ``p`` rows of ``Vᵀ`` are measured.

    A centrosymmetric matrix (``A[::-1, ::-1] == A``: symmetric blurs, bicubic reduction) is split by
    :func:`_fold` into two independent half-size blocks (even and odd signals), about 4x cheaper.
    """
    p, q = a.shape
    scale = np.abs(a).max() if a.size else 0.0
    if min(p, q) < 2 or not np.allclose(a, a[::-1, ::-1], rtol=0, atol=1e-13 * scale):
        return np.linalg.svd(a)
    b = _fold(_fold(a).T).T  # block diagonal: (even rows, even cols) and (odd rows, odd cols)
    pe, qe = (p + 1) // 2, (q + 1) // 2
    ue, se, vte = _svd_block(b[:pe, :qe])
    uo, so, vto = _svd_block(b[pe:, qe:])
    u = np.zeros((p, p))
    u[:pe, :pe], u[pe:, pe:] = ue, uo
    vt = np.zeros((q, q))
    vt[:qe, :qe], vt[qe:, qe:] = vte, vto
    # measured right vectors first: even measured, odd measured, then both null spaces
    rows = np.concatenate([np.arange(pe), qe + np.arange(p - pe), np.arange(pe, qe), qe + np.arange(p - pe, q - qe)])
    return _unfold(u), np.concatenate([se, so]), _unfold(vt[rows].T).T


class SeparableSVD(SVDOperator):
    r"""Separable :math:`y_c = A_h X_c A_w^\top`, i.e. :math:`H = I_C \otimes A_h \otimes A_w`.

    With :math:`A_h = U_h S_h V_h^\top` and :math:`A_w = U_w S_w V_w^\top` (``p x H``, ``q x W``,
    ``p <= H``, ``q <= W``), :math:`A_h \otimes A_w = (U_h\otimes U_w)(S_h\otimes S_w)(V_h\otimes V_w)^\top`:
    the spectral coordinate ``(i, j)`` of :math:`V_h^\top X V_w` has singular value
    :math:`s_{h,i}\,s_{w,j}` for ``i < p, j < q`` and lies in the null space otherwise. The
    ``p*q`` measured pairs are sorted by decreasing singular value (each repeated for the ``C``
    channels: spectral index ``rank * C + c``), the null-space pairs follow. ``y`` is an image
    ``(C, p, q)``. Memory: the 1-D factors only (``H² + W² + p² + q²``).
    """

    observation_kind = "image"

    def __init__(
        self,
        image_shape: Sequence[int],
        a_h: np.ndarray,
        a_w: np.ndarray,
        zero_tol: float = DEFAULT_ZERO_TOL,
    ) -> None:
        c, h, w = image_shape
        a_h, a_w = np.asarray(a_h, dtype=np.float64), np.asarray(a_w, dtype=np.float64)
        (p, hh), (q, ww) = a_h.shape, a_w.shape
        if (hh, ww) != (h, w) or p > h or q > w:
            raise OperatorError(f"1-D factors {a_h.shape}, {a_w.shape} do not reduce a {h}x{w} image")
        super().__init__(image_shape, (c, p, q), zero_tol)
        u_h, s_h, vt_h = svd_1d(a_h)
        same = a_h.shape == a_w.shape and np.array_equal(a_h, a_w)
        u_w, s_w, vt_w = (u_h, s_h, vt_h) if same else svd_1d(a_w)
        prod = np.outer(s_h, s_w)  # (p, q): singular value of spectral pair (i, j)
        order = np.argsort(-prod, axis=None, kind="stable")  # measured pairs, flat in (p, q)
        ii, jj = np.unravel_index(order, (p, q))
        grid = np.arange(h * w).reshape(h, w)
        null = np.ones((h, w), dtype=bool)
        null[:p, :q] = False
        perm = np.concatenate([grid[ii, jj], grid[null]])  # flat (H, W) index of each spectral rank
        self.register_buffer("_vh_t", torch.from_numpy(np.ascontiguousarray(vt_h)))
        self.register_buffer("_vh", torch.from_numpy(np.ascontiguousarray(vt_h.T)))
        self.register_buffer("_vw", torch.from_numpy(np.ascontiguousarray(vt_w.T)))
        self.register_buffer("_vw_t", torch.from_numpy(np.ascontiguousarray(vt_w)))
        self.register_buffer("_uh", torch.from_numpy(np.ascontiguousarray(u_h)))
        self.register_buffer("_uh_t", torch.from_numpy(np.ascontiguousarray(u_h.T)))
        self.register_buffer("_uw", torch.from_numpy(np.ascontiguousarray(u_w)))
        self.register_buffer("_uw_t", torch.from_numpy(np.ascontiguousarray(u_w.T)))
        self.register_buffer("_perm", rank_major_index(perm, c, h * w))
        self.register_buffer("_inv_perm", channel_major_index(inverse_permutation(perm), c))
        self.register_buffer("_perm_u", rank_major_index(order, c, p * q))
        self.register_buffer("_inv_perm_u", channel_major_index(inverse_permutation(order), c))
        self._set_singulars(torch.from_numpy(np.repeat(prod.reshape(-1)[order], c)))
        rank = inverse_permutation(order)  # truncated singular values (and inverses) back on the (p, q) grid
        self.register_buffer("_sgrid", torch.from_numpy(self._singulars.numpy()[::c][rank].reshape(p, q)))
        self.register_buffer("_sgrid_inv", torch.from_numpy(self._inv_singulars.numpy()[::c][rank].reshape(p, q)))

    def _to_spectral(self, g: torch.Tensor, perm: str) -> torch.Tensor:
        """Coefficient grid ``(B, C, a, b)`` -> ``(B, n)`` in rank-major, channel-minor order."""
        return g.reshape(g.shape[0], -1).index_select(1, self._buf(perm, g))

    def _from_spectral(self, z: torch.Tensor, inv_perm: str, rows: int, cols: int) -> torch.Tensor:
        return z.index_select(1, self._buf(inv_perm, z)).reshape(z.shape[0], self.image_shape[0], rows, cols)

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.matmul(torch.matmul(self._buf("_vh_t", x), x), self._buf("_vw", x))
        return self._to_spectral(g, "_perm")

    def V(self, z: torch.Tensor) -> torch.Tensor:
        _, h, w = self.image_shape
        g = self._from_spectral(z, "_inv_perm", h, w)
        return torch.matmul(torch.matmul(self._buf("_vh", z), g), self._buf("_vw_t", z))

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        g = torch.matmul(torch.matmul(self._buf("_uh_t", y), y), self._buf("_uw", y))
        return self._to_spectral(g, "_perm_u")

    def U(self, w: torch.Tensor) -> torch.Tensor:
        _, p, q = self.measurement_shape
        g = self._from_spectral(w, "_inv_perm_u", p, q)
        return torch.matmul(torch.matmul(self._buf("_uh", w), g), self._buf("_uw_t", w))

    # U diag(s) Vᵀ on the (p, q) coefficient grid: only the measured columns of V_h, V_w, no permutation.
    def H(self, x: torch.Tensor) -> torch.Tensor:
        """``U_h (S ∘ (V_h[:, :p]ᵀ X V_w[:, :q])) U_wᵀ`` with ``S`` the truncated singular values."""
        self._check(x, self.image_shape, "image")
        _, p, q = self.measurement_shape
        g = torch.matmul(torch.matmul(self._buf("_vh_t", x)[:p], x), self._buf("_vw", x)[:, :q])
        g = g * self._buf("_sgrid", x)
        return torch.matmul(torch.matmul(self._buf("_uh", x), g), self._buf("_uw_t", x))

    def Ht(self, y: torch.Tensor) -> torch.Tensor:
        """``V_h[:, :p] (S ∘ (U_hᵀ Y U_w)) V_w[:, :q]ᵀ``."""
        self._check(y, self.measurement_shape, "measurement")
        return self._back(y, "_sgrid")

    def H_pinv(self, y: torch.Tensor) -> torch.Tensor:
        """``V_h[:, :p] (S⁺ ∘ (U_hᵀ Y U_w)) V_w[:, :q]ᵀ``."""
        self._check(y, self.measurement_shape, "measurement")
        return self._back(y, "_sgrid_inv")

    def _back(self, y: torch.Tensor, scale: str) -> torch.Tensor:
        _, p, q = self.measurement_shape
        g = torch.matmul(torch.matmul(self._buf("_uh_t", y), y), self._buf("_uw", y)) * self._buf(scale, y)
        return torch.matmul(torch.matmul(self._buf("_vh", y)[:, :p], g), self._buf("_vw_t", y)[:q])

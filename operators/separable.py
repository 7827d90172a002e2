"""Separable operators ``y_c = A_h X_c A_wᵀ`` with small dense 1-D factors (blur, bicubic reduction)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .base import DEFAULT_ZERO_TOL, OperatorError, SVDOperator


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
        u_h, s_h, vt_h = np.linalg.svd(a_h)
        u_w, s_w, vt_w = np.linalg.svd(a_w)
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
        self.register_buffer("_perm", torch.from_numpy(perm))
        self.register_buffer("_inv_perm", torch.from_numpy(np.argsort(perm)))
        self.register_buffer("_perm_u", torch.from_numpy(order))
        self.register_buffer("_inv_perm_u", torch.from_numpy(np.argsort(order)))
        self._set_singulars(torch.from_numpy(np.repeat(prod.reshape(-1)[order], c)))
        grid = np.empty(p * q)
        grid[order] = self._singulars.numpy()[::c]  # truncated singular values back on the (p, q) grid
        self.register_buffer("_sgrid", torch.from_numpy(grid.reshape(p, q)))
        self.register_buffer("_sgrid_inv", torch.from_numpy(self._inv_singulars.numpy()[::c][np.argsort(order)].reshape(p, q)))

    def _to_spectral(self, g: torch.Tensor, perm: str) -> torch.Tensor:
        """Coefficient grid ``(B, C, a, b)`` -> ``(B, n)`` in rank-major, channel-minor order."""
        b = g.shape[0]
        t = g.reshape(b, g.shape[1], -1).index_select(2, self._buf(perm, g))
        return t.transpose(1, 2).reshape(b, -1)

    def _from_spectral(self, z: torch.Tensor, inv_perm: str, rows: int, cols: int) -> torch.Tensor:
        b, c = z.shape[0], self.image_shape[0]
        t = z.reshape(b, -1, c).transpose(1, 2).index_select(2, self._buf(inv_perm, z))
        return t.reshape(b, c, rows, cols)

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

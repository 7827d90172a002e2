"""Separable operators ``y_c = A_h X_c A_wᵀ`` with small dense 1-D factors (blur, bicubic reduction)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .base import (
    DEFAULT_ZERO_TOL,
    OperatorError,
    SVDOperator,
    channel_major_index,
    inverse_permutation,
    rank_major_index,
)


def _svd_block(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full SVD ``(U, s, V)`` of a ``p x q`` block, ``p <= q`` (``V``'s first ``p`` columns are the measured ones).

    Symmetric blocks use the faster ``eigh``.
    """
    p, q = a.shape
    if p == 0:
        return np.zeros((0, 0)), np.zeros(0), np.eye(q)
    # torch's LAPACK follows torch.set_num_threads; numpy's threaded BLAS can be 50x slower on a busy CPU
    t = torch.from_numpy(np.ascontiguousarray(a))
    if p == q and np.allclose(a, a.T, rtol=0, atol=1e-13 * np.abs(a).max()):
        lam, vec = (r.numpy() for r in torch.linalg.eigh(t))
        return vec * np.where(lam < 0, -1.0, 1.0), np.abs(lam), vec
    u, s, vt = (r.numpy() for r in torch.linalg.svd(t))
    return u, s, vt.T


class AxisSVD:
    r"""Exact SVD of a ``p x q`` (``p <= q``) 1-D factor ``A``, split in independent blocks.

    A centrosymmetric ``A`` (``A[::-1, ::-1] = A``: symmetric blurs, bicubic reduction) commutes
    with the orthogonal fold :math:`F x = [(x_i + x_{q-1-i})/\sqrt2;\ x_{mid};\ (x_i - x_{q-1-i})/\sqrt2]`:
    :math:`F_p A F_q^\top = \mathrm{diag}(A_e, A_o)` (even and odd signals), so
    :math:`A = F_p^\top \mathrm{diag}(U_e, U_o)\,\mathrm{diag}(S_e, S_o)\,\mathrm{diag}(V_e, V_o)^\top F_q`.
    Half-size blocks make the SVD ~4x and every product ~2x cheaper. Any other ``A`` is one block.
    Coordinates are in *block order*: block 0's ``q_0`` coordinates (measured first), then block 1's.
    """

    def __init__(self, a: np.ndarray) -> None:
        p, q = a.shape
        scale = np.abs(a).max() if a.size else 0.0
        self.p, self.q = p, q
        self.folded = min(p, q) >= 2 and np.allclose(a, a[::-1, ::-1], rtol=0, atol=1e-13 * scale)
        if self.folded:
            b = _fold_rows(_fold_rows(a).T).T
            pe, qe = (p + 1) // 2, (q + 1) // 2
            blocks = [b[:pe, :qe], b[pe:, qe:]]
        else:
            blocks = [a]
        self.u, self.s, self.v = zip(*(_svd_block(blk) for blk in blocks))
        if self.folded:  # fold the 1/√2 of F into the factors: the runtime fold is then x_i ± x_{q-1-i}
            self.u = (_scale_pairs(self.u[0], p), self.u[1] * np.sqrt(0.5))
            self.v = (_scale_pairs(self.v[0], q), self.v[1] * np.sqrt(0.5))
        self.in_sizes = [v.shape[0] for v in self.v]  # q_b
        self.out_sizes = [u.shape[0] for u in self.u]  # p_b (= measured coordinates of block b)

    def measured(self) -> tuple[np.ndarray, np.ndarray]:
        """Block-order index of each measured coordinate (in measurement block order) and its singular value."""
        starts = np.cumsum([0] + self.in_sizes[:-1])
        idx = np.concatenate([st + np.arange(len(sv)) for st, sv in zip(starts, self.s)])
        return idx, np.concatenate(self.s)

    def tensors(self) -> dict[str, list[torch.Tensor]]:
        """The (scaled) block factors ``U_b`` and ``V_b`` as float64 tensors."""
        return {"u": [torch.from_numpy(np.ascontiguousarray(m)) for m in self.u],
                "v": [torch.from_numpy(np.ascontiguousarray(m)) for m in self.v]}


def _fold_rows(x: np.ndarray) -> np.ndarray:
    """:math:`F x` along the rows (orthonormal: the pairs carry ``1/√2``)."""
    half, r2 = x.shape[0] // 2, np.sqrt(0.5)
    top, bottom = x[:half], x[::-1][:half]
    return np.concatenate([(top + bottom) * r2, x[half : x.shape[0] - half], (top - bottom) * r2])


def _scale_pairs(m: np.ndarray, size: int) -> np.ndarray:
    """Scale the first ``size // 2`` rows (the paired ones) of the even block by ``1/√2``."""
    out = m.copy()
    out[: size // 2] *= np.sqrt(0.5)
    return out


def _split(x: torch.Tensor, dim: int, size: int, folded: bool) -> list[torch.Tensor]:
    """Runtime fold along ``dim``: ``[x_i + x_{n-1-i} (+ middle), x_i - x_{n-1-i}]`` (unscaled)."""
    if not folded:
        return [x]
    half = size // 2
    top, bottom = x.narrow(dim, 0, half), x.narrow(dim, size - half, half).flip(dim)
    even = top + bottom
    if size % 2:
        even = torch.cat([even, x.narrow(dim, half, 1)], dim)
    return [even, top - bottom]


def _merge(parts: list[torch.Tensor], dim: int, size: int, folded: bool) -> torch.Tensor:
    """Inverse of :func:`_split` up to the factors' ``1/√2`` scaling."""
    if not folded:
        return parts[0]
    half = size // 2
    even, odd = parts
    pair = even.narrow(dim, 0, half)
    pieces = [pair + odd] + ([even.narrow(dim, half, 1)] if size % 2 else []) + [(pair - odd).flip(dim)]
    return torch.cat(pieces, dim)


def apply_analysis(x: torch.Tensor, dim: int, mats: list[torch.Tensor], size: int, folded: bool,
                   cols: list[int] | None = None) -> torch.Tensor:
    """Block coefficients ``Mᵀ F x`` along ``dim`` (-2 or -1); ``cols`` keeps the first columns of each block."""
    out = []
    for b, (part, m) in enumerate(zip(_split(x, dim, size, folded), mats)):
        if cols is not None:
            m = m[:, : cols[b]]
        out.append(torch.matmul(m.T, part) if dim == -2 else torch.matmul(part, m))
    return torch.cat(out, dim) if len(out) > 1 else out[0]


def apply_synthesis(c: torch.Tensor, dim: int, mats: list[torch.Tensor], sizes: list[int], size: int,
                    folded: bool) -> torch.Tensor:
    """``Fᵀ M c`` along ``dim``: ``c`` holds the blocks' coefficients (``sizes``) in block order."""
    parts = []
    for chunk, m in zip(c.split(sizes, dim), mats):
        m = m[:, : chunk.shape[dim]]
        parts.append(torch.matmul(m, chunk) if dim == -2 else torch.matmul(chunk, m.T))
    return _merge(parts, dim, size, folded)


class SeparableSVD(SVDOperator):
    r"""Separable :math:`y_c = A_h X_c A_w^\top`, i.e. :math:`H = I_C \otimes A_h \otimes A_w`.

    With :math:`A_h = U_h S_h V_h^\top` and :math:`A_w = U_w S_w V_w^\top` (``p x H``, ``q x W``,
    ``p <= H``, ``q <= W``; exact 1-D SVDs, see :class:`AxisSVD`),
    :math:`A_h \otimes A_w = (U_h\otimes U_w)(S_h\otimes S_w)(V_h\otimes V_w)^\top`: the spectral
    coordinate ``(i, j)`` of :math:`V_h^\top X V_w` has singular value :math:`s_{h,i}\,s_{w,j}` when
    both ``i`` and ``j`` are measured coordinates of their axis, and lies in the null space
    otherwise. The ``p*q`` measured pairs are sorted by decreasing singular value (each repeated for
    the ``C`` channels: spectral index ``rank * C + c``), the null-space pairs follow. ``y`` is an
    image ``(C, p, q)``. Memory: the 1-D factors only (at most ``H² + W² + p² + q²``).
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
        self.axis_h = AxisSVD(a_h)
        same = a_h.shape == a_w.shape and np.array_equal(a_h, a_w)
        self.axis_w = self.axis_h if same else AxisSVD(a_w)
        (mh, sh), (mw, sw) = self.axis_h.measured(), self.axis_w.measured()
        prod = np.outer(sh, sw)  # (p, q) in measurement block order
        order = np.argsort(-prod, axis=None, kind="stable")
        ii, jj = np.unravel_index(order, (p, q))
        measured = mh[ii] * w + mw[jj]  # flat cell of the (H, W) coefficient grid (block order)
        null = np.ones(h * w, dtype=bool)
        null[measured] = False
        perm = np.concatenate([measured, np.flatnonzero(null)])
        for name, axis in (("h", self.axis_h), ("w", self.axis_w)):
            for kind, mats in axis.tensors().items():
                for b, m in enumerate(mats):
                    self.register_buffer(f"_{kind}{name}{b}", m)
        self.register_buffer("_perm", rank_major_index(perm, c, h * w))
        self.register_buffer("_inv_perm", channel_major_index(inverse_permutation(perm), c))
        self.register_buffer("_perm_u", rank_major_index(order, c, p * q))
        self.register_buffer("_inv_perm_u", channel_major_index(inverse_permutation(order), c))
        self._set_singulars(torch.from_numpy(np.repeat(prod.reshape(-1)[order], c)))
        #: largest singular value that the zero tolerance removed (0.0 when none)
        self.truncated_max = float(prod[(prod > 0) & (prod <= self.zero_tol * prod.max())].max(initial=0.0))
        rank = inverse_permutation(order)  # truncated singular values (and inverses) back on the (p, q) grid
        self.register_buffer("_sgrid", torch.from_numpy(self._singulars.numpy()[::c][rank].reshape(p, q)))
        self.register_buffer("_sgrid_inv", torch.from_numpy(self._inv_singulars.numpy()[::c][rank].reshape(p, q)))

    def _mats(self, kind: str, axis: str, ref: torch.Tensor) -> list[torch.Tensor]:
        ax = self.axis_h if axis == "h" else self.axis_w
        return [self._buf(f"_{kind}{axis}{b}", ref) for b in range(len(ax.in_sizes))]

    def _analysis(self, t: torch.Tensor, kind: str, measured_only: bool = False) -> torch.Tensor:
        """``Mᵀ_h T M_w`` for ``M = V`` (image side) or ``U`` (measurement side), in block order."""
        for dim, axis, ax in ((-2, "h", self.axis_h), (-1, "w", self.axis_w)):
            size = ax.q if kind == "v" else ax.p
            cols = ax.out_sizes if measured_only else None
            t = apply_analysis(t, dim, self._mats(kind, axis, t), size, ax.folded, cols)
        return t

    def _synthesis(self, g: torch.Tensor, kind: str, measured_only: bool = False) -> torch.Tensor:
        """``M_h G M_wᵀ``: the inverse of :meth:`_analysis` (or its measured-columns part)."""
        for dim, axis, ax in ((-2, "h", self.axis_h), (-1, "w", self.axis_w)):
            sizes = ax.out_sizes if kind == "u" or measured_only else ax.in_sizes
            size = ax.q if kind == "v" else ax.p
            g = apply_synthesis(g, dim, self._mats(kind, axis, g), sizes, size, ax.folded)
        return g

    def _to_spectral(self, g: torch.Tensor, perm: str) -> torch.Tensor:
        """Coefficient grid ``(B, C, a, b)`` -> ``(B, n)`` in rank-major, channel-minor order."""
        return g.reshape(g.shape[0], -1).index_select(1, self._buf(perm, g))

    def _from_spectral(self, z: torch.Tensor, inv_perm: str, rows: int, cols: int) -> torch.Tensor:
        return z.index_select(1, self._buf(inv_perm, z)).reshape(z.shape[0], self.image_shape[0], rows, cols)

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        return self._to_spectral(self._analysis(x, "v"), "_perm")

    def V(self, z: torch.Tensor) -> torch.Tensor:
        _, h, w = self.image_shape
        return self._synthesis(self._from_spectral(z, "_inv_perm", h, w), "v")

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        return self._to_spectral(self._analysis(y, "u"), "_perm_u")

    def U(self, w: torch.Tensor) -> torch.Tensor:
        _, p, q = self.measurement_shape
        return self._synthesis(self._from_spectral(w, "_inv_perm_u", p, q), "u")

    # U diag(s) Vᵀ on the (p, q) grid of measured coordinates: no permutation, no null-space columns.
    def _H(self, x: torch.Tensor) -> torch.Tensor:
        """``U_h (S ∘ (V_h,mᵀ X V_w,m)) U_wᵀ`` with ``V_m`` the measured columns, ``S`` the truncated singulars."""
        return self._synthesis(self._analysis(x, "v", measured_only=True) * self._buf("_sgrid", x), "u")

    def _Ht(self, y: torch.Tensor) -> torch.Tensor:
        """``V_h,m (S ∘ (U_hᵀ Y U_w)) V_w,mᵀ``."""
        return self._synthesis(self._analysis(y, "u") * self._buf("_sgrid", y), "v", measured_only=True)

    def _H_pinv(self, y: torch.Tensor) -> torch.Tensor:
        """``V_h,m (S⁺ ∘ (U_hᵀ Y U_w)) V_w,mᵀ``."""
        return self._synthesis(self._analysis(y, "u") * self._buf("_sgrid_inv", y), "v", measured_only=True)

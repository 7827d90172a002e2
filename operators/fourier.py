"""Deblurring with any 2-D kernel and circular boundary, diagonalised by a real Fourier basis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def _real_fourier_maps(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index maps between the ``(h, w//2+1, 2)`` real view of ``rfft2`` and real orthonormal coordinates.

    Returns ``rep`` (flat real-view entry read by each real coordinate), ``scale`` (1 or √2),
    ``freq`` (flat rfft-grid cell whose eigenvalue the coordinate carries), and for every real
    entry of the grid the coordinate it is rebuilt from (``src``) with its factor (``coef``).
    Columns 0 and (even ``w``) ``w/2`` hold their own conjugates: there ``X[-k1] = conj(X[k1])``,
    so only ``k1 <= (-k1 mod h)`` are coordinates, and self-conjugate cells (DC/Nyquist) give one.
    """
    wr = w // 2 + 1
    k1, k2 = np.meshgrid(np.arange(h), np.arange(wr), indexing="ij")
    special = (k2 == 0) | ((w % 2 == 0) & (k2 == w // 2))
    conj = (-k1) % h
    selfc = (special & (conj == k1)).reshape(-1)
    is_rep = (~special | (k1 <= conj)).reshape(-1)
    cells = np.flatnonzero(is_rep)
    count = np.where(selfc[cells], 1, 2)  # real coordinates per representative cell
    first = np.cumsum(count) - count  # index of each cell's first coordinate
    cell_of = np.repeat(cells, count)
    part = np.arange(count.sum()) - np.repeat(first, count)  # 0 = real part, 1 = imaginary part
    r2 = np.sqrt(2.0)
    scale = np.where(selfc[cell_of], 1.0, r2)
    src = np.zeros((h * wr, 2), dtype=np.int64)
    coef = np.zeros((h * wr, 2))
    src[cells, 0], src[cells, 1] = first, first + (count - 1)
    coef[cells, 0] = np.where(count == 1, 1.0, 1 / r2)
    coef[cells, 1] = np.where(count == 1, 0.0, 1 / r2)  # imaginary part of a self-conjugate cell is 0
    mirrored = np.flatnonzero(~is_rep)  # X[-k1, k2] = conj(X[k1, k2]) in the special columns
    partner = (conj.reshape(-1)[mirrored]) * wr + k2.reshape(-1)[mirrored]
    src[mirrored] = src[partner]
    coef[mirrored] = (1 / r2, -1 / r2)
    return 2 * cell_of + part, scale, cell_of, src.reshape(-1), coef.reshape(-1)


class CircularBlur(SVDOperator):
    r"""Circular convolution :math:`y_c = k \circledast x_c` with any 2-D kernel (true convolution,
    kernel centre at index ``(K_h//2, K_w//2)``; a kernel larger than the image wraps around).

    Circulant :math:`H = F^* \mathrm{diag}(\lambda) F`, :math:`\lambda = \mathrm{DFT}(k)`. In the real
    orthonormal Fourier basis (per frequency pair :math:`\pm f`: :math:`\sqrt2\,\mathrm{Re}\,\hat x_f`,
    :math:`\sqrt2\,\mathrm{Im}\,\hat x_f` with the unitary DFT; one real coordinate for the
    self-conjugate DC/Nyquist frequencies) :math:`H` acts on each pair as :math:`|\lambda_f|\,R(\arg\lambda_f)`,
    so ``V`` = that basis, :math:`s = |\lambda_f|` and ``U = V R`` (``±1`` for self-conjugate ones).
    Coordinates are sorted by decreasing singular value (index ``rank * C + c``); ``m = n``; ``y``
    is an image of the same shape. Any ``H, W`` (odd included); cost two FFTs and a gather.
    """

    observation_kind = "image"

    def __init__(self, image_shape: Sequence[int], kernel: Any, zero_tol: float = DEFAULT_ZERO_TOL) -> None:
        super().__init__(image_shape, image_shape, zero_tol)
        c, h, w = self.image_shape
        k = np.asarray(kernel.detach().cpu() if isinstance(kernel, torch.Tensor) else kernel, dtype=np.float64)
        if k.ndim != 2 or k.size == 0 or not np.isfinite(k).all():
            raise OperatorError(f"deblur needs kernel=<2-D array of finite numbers>, got shape {k.shape}")
        kk = np.zeros((h, w))
        t1, t2 = np.meshgrid(np.arange(k.shape[0]), np.arange(k.shape[1]), indexing="ij")
        np.add.at(kk, ((t1 - k.shape[0] // 2) % h, (t2 - k.shape[1] // 2) % w), k)
        lam = np.fft.fft2(kk)
        lam = 0.5 * (lam + np.conj(np.roll(lam[::-1, ::-1], (1, 1), axis=(0, 1))))  # exactly Hermitian
        lam = lam[:, : w // 2 + 1]
        rep, scale, freq, src, coef = _real_fourier_maps(h, w)
        mag = np.abs(lam).reshape(-1)
        order = np.argsort(-mag[freq], kind="stable")
        rank = inverse_permutation(order)  # unsorted coordinate -> its sorted position
        phase = np.where(np.abs(lam) > 0, lam / np.where(np.abs(lam) > 0, np.abs(lam), 1.0), 1.0)
        selfconj = np.zeros(lam.shape, dtype=bool)
        selfconj[np.ix_([0, h // 2] if h % 2 == 0 else [0], [0, w // 2] if w % 2 == 0 else [0])] = True
        phase[selfconj] = np.where(lam[selfconj].real < 0, -1.0, 1.0)  # real ±1 where λ is real
        self.kernel = k
        cells = 2 * h * (w // 2 + 1)  # real entries of one channel's rfft2 grid
        self.register_buffer("_gather", rank_major_index(rep[order], c, cells))
        self.register_buffer("_scale", torch.from_numpy(np.repeat(scale[order], c)))
        self.register_buffer("_src", channel_major_index(rank[src], c))
        self.register_buffer("_coef", torch.from_numpy(np.tile(coef, c)))
        # stored as a real (..., 2) view: Module.to(dtype) would drop the imaginary part of a complex buffer
        self.register_buffer("_phase", torch.view_as_real(torch.from_numpy(np.ascontiguousarray(phase))).clone())
        self._set_singulars(torch.from_numpy(np.repeat(mag[freq][order], c)))
        cutoff = self.zero_tol * mag.max()
        cell_s = np.where(np.abs(lam) <= cutoff, 0.0, np.abs(lam))  # the same truncation, per frequency
        cell_inv = np.where(cell_s > 0, 1.0 / np.where(cell_s > 0, cell_s, 1.0), 0.0)
        self.register_buffer("_lam", torch.view_as_real(torch.from_numpy(phase * cell_s)).clone())
        self.register_buffer("_lam_pinv", torch.view_as_real(torch.from_numpy(np.conj(phase) * cell_inv)).clone())

    def _coords(self, spec: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Complex ``rfft2`` grid ``(B, C, H, W//2+1)`` -> real coordinates ``(B, n)``."""
        flat = torch.view_as_real(spec).reshape(spec.shape[0], -1)
        return flat.index_select(1, self._buf("_gather", ref)) * self._buf("_scale", ref)

    def _grid(self, z: torch.Tensor) -> torch.Tensor:
        """Real coordinates ``(B, n)`` -> complex ``rfft2`` grid (conjugate cells filled in)."""
        b, (c, h, w) = z.shape[0], self.image_shape
        t = z.index_select(1, self._buf("_src", z)) * self._buf("_coef", z)
        return torch.view_as_complex(t.reshape(b, c, h, w // 2 + 1, 2))

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        return self._coords(torch.fft.rfft2(x, norm="ortho"), x)

    def V(self, z: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(self._grid(z), s=self.image_shape[1:], norm="ortho")

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        spec = torch.fft.rfft2(y, norm="ortho") * torch.view_as_complex(self._buf("_phase", y)).conj()
        return self._coords(spec, y)

    def U(self, w: torch.Tensor) -> torch.Tensor:
        spec = self._grid(w) * torch.view_as_complex(self._buf("_phase", w))
        return torch.fft.irfft2(spec, s=self.image_shape[1:], norm="ortho")

    # U diag(s) Vᵀ is the circulant with eigenvalues λ = phase * s (truncated): two FFTs, no gathers.
    def _H(self, x: torch.Tensor) -> torch.Tensor:
        """``F⁻¹(λ ∘ F x)``."""
        return self._filter(x, "_lam", conj=False)

    def _Ht(self, y: torch.Tensor) -> torch.Tensor:
        """``F⁻¹(conj(λ) ∘ F y)``."""
        return self._filter(y, "_lam", conj=True)

    def _H_pinv(self, y: torch.Tensor) -> torch.Tensor:
        """``F⁻¹(λ⁺ ∘ F y)`` with ``λ⁺ = 1/λ`` where ``s > 0`` and 0 elsewhere."""
        return self._filter(y, "_lam_pinv", conj=False)

    def _filter(self, t: torch.Tensor, name: str, conj: bool) -> torch.Tensor:
        lam = torch.view_as_complex(self._buf(name, t))
        spec = torch.fft.rfft2(t, norm="ortho") * (lam.conj() if conj else lam)
        return torch.fft.irfft2(spec, s=self.image_shape[1:], norm="ortho")


def _deblur(image_shape: tuple[int, int, int], kernel: Any, zero_tol: float = DEFAULT_ZERO_TOL) -> CircularBlur:
    return CircularBlur(image_shape, kernel, zero_tol)

"""Super-resolution by block averaging (``sr2``, ``sr4``, ... : ``avg_pool2d`` with kernel = stride = k)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .base import OperatorError, SVDOperator


def dct_basis(k: int) -> np.ndarray:
    """Orthonormal DCT-II basis as columns (``k x k``, float64); column 0 is the constant ``1/√k``."""
    j = np.arange(k)[:, None] + 0.5
    q = np.arange(k)[None, :]
    basis = np.sqrt(2.0 / k) * np.cos(np.pi * j * q / k)
    basis[:, 0] = 1.0 / np.sqrt(k)
    return basis


class BlockAverage(SVDOperator):
    r"""Block averaging :math:`y_{c,i,j} = \frac{1}{k^2}\sum_{a,b<k} x_{c,ki+a,kj+b}` (``avg_pool2d(x, k)``).

    Per ``k x k`` block the operator is the row :math:`\frac1{k^2}\mathbf 1^\top = \frac1k\,(\mathbf 1/k)^\top`:
    one singular value :math:`1/k` with right vector :math:`\mathbf 1/k`. ``V`` applies, per block,
    the separable orthonormal basis :math:`Q\otimes Q` with :math:`Q` the ``k``-point DCT-II (whose
    first vector is constant), so ``V``/``Vt`` cost :math:`O(nk)` and no ``k²x k²`` matrix is used.
    Spectral layout ``(p, q, c, i, j)``: the first :math:`m = C\,(H/k)(W/k)` entries are the block
    means' coefficients in ``(c, i, j)`` order, so ``U = I``. Needs ``H`` and ``W`` divisible by ``k``.
    """

    observation_kind = "image"

    def __init__(self, image_shape: Sequence[int], factor: int) -> None:
        c, h, w = image_shape
        k = int(factor)
        if k < 1:
            raise OperatorError(f"super-resolution factor must be >= 1, got {factor}")
        if h % k or w % k:
            raise OperatorError(
                f"sr{k} needs height and width divisible by {k}, got {h}x{w}; crop or pad the image first"
            )
        super().__init__(image_shape, (c, h // k, w // k))
        self.factor = k
        self.register_buffer("_q", torch.from_numpy(dct_basis(k)))
        self.register_buffer("_qt", torch.from_numpy(np.ascontiguousarray(dct_basis(k).T)))
        self._set_singulars(torch.full((c * (h // k) * (w // k),), 1.0 / k, dtype=torch.float64))

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        b, k, (c, hk, wk) = x.shape[0], self.factor, self.measurement_shape
        qt = self._buf("_qt", x)
        t = x.reshape(b, c, hk, k, wk, k).permute(0, 3, 5, 1, 2, 4).reshape(b, k, k, c * hk * wk)
        t = torch.matmul(qt, t)  # along the in-block column index
        t = torch.matmul(qt, t.reshape(b, k, -1))  # along the in-block row index
        return t.reshape(b, self.n)

    def V(self, z: torch.Tensor) -> torch.Tensor:
        b, k, (c, hk, wk) = z.shape[0], self.factor, self.measurement_shape
        q = self._buf("_q", z)
        t = torch.matmul(q, torch.matmul(q, z.reshape(b, k, -1)).reshape(b, k, k, -1))
        return t.reshape(b, k, k, c, hk, wk).permute(0, 3, 4, 1, 5, 2).reshape(b, *self.image_shape)

    def U(self, w: torch.Tensor) -> torch.Tensor:
        return w.reshape(w.shape[0], *self.measurement_shape)

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(y.shape[0], -1)

    # Closed forms of U diag(s) Vᵀ (all s = 1/k, no truncation), without the full spectral transform.
    def _H(self, x: torch.Tensor) -> torch.Tensor:
        """Block means, ``avg_pool2d(x, k)``."""
        return F.avg_pool2d(x, self.factor)

    def _Ht(self, y: torch.Tensor) -> torch.Tensor:
        """Each block filled with ``y / k²``."""
        return self._upsample(y / self.factor**2)

    def _H_pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Each block filled with ``y`` (nearest-neighbour upsampling)."""
        return self._upsample(y)

    def _upsample(self, y: torch.Tensor) -> torch.Tensor:
        b, (c, h, w), k = y.shape[0], self.image_shape, self.factor
        return y[:, :, :, None, :, None].expand(b, c, h // k, k, w // k, k).reshape(b, c, h, w)


def _sr(image_shape: tuple[int, int, int], k: str) -> BlockAverage:
    return BlockAverage(image_shape, int(k))



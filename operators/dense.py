"""Any explicit matrix as an SVD operator (small images, custom operators, tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .base import DEFAULT_ZERO_TOL, OperatorError, SVDOperator


class DenseSVD(SVDOperator):
    r"""An explicit ``M x n`` matrix :math:`A = U\,\mathrm{diag}(s)\,V^\top` (``torch.linalg.svd``, float64).

    ``n = C*H*W`` (row-major flattening of the image). ``V`` is the full ``n x n`` orthogonal
    factor; ``m = min(M, n)`` singular values (descending). For ``M <= n``, ``U`` is ``M x M``
    orthogonal; for a tall matrix (``M > n``) ``U`` is the thin ``M x n`` factor, so ``U(Ut(y)) = y``
    only for ``y`` in the range of ``A``. ``y`` is a vector of shape ``(M,)``. Memory is
    :math:`O(n^2)`: meant for small images.
    """

    observation_kind = "vector"

    def __init__(self, matrix: Any, image_shape: Sequence[int], zero_tol: float = DEFAULT_ZERO_TOL) -> None:
        a = torch.as_tensor(np.asarray(matrix.detach().cpu()) if isinstance(matrix, torch.Tensor) else matrix)
        a = a.to(torch.float64)
        super().__init__(image_shape, (a.shape[0],) if a.ndim == 2 else (0,), zero_tol)
        if a.ndim != 2 or a.shape[1] != self.n:
            raise OperatorError(
                f"DenseSVD needs an M x {self.n} matrix for image_shape {self.image_shape}, got {tuple(a.shape)}"
            )
        if not bool(torch.isfinite(a).all()):
            raise OperatorError("DenseSVD matrix contains inf or NaN")
        u, s, vh = torch.linalg.svd(a, full_matrices=True)
        if a.shape[0] > self.n:
            u = u[:, : self.n]
        self.register_buffer("_u", u.contiguous())
        self.register_buffer("_vh", vh.contiguous())
        self._set_singulars(s)

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1) @ self._buf("_vh", x).T

    def V(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self._buf("_vh", z)).reshape(z.shape[0], *self.image_shape)

    def U(self, w: torch.Tensor) -> torch.Tensor:
        return w @ self._buf("_u", w).T

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self._buf("_u", y)

"""Colourisation: observe the grey level of an RGB image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .base import OperatorError, SVDOperator


def _colour_basis(weights: np.ndarray) -> np.ndarray:
    """Rows ``w/|w|``, then two orthonormal chroma directions (``[1,-1,0]/√2``, ``[1,1,-2]/√6`` for equal ``w``)."""
    v1 = weights / np.linalg.norm(weights)
    rows = [v1]
    for e in (np.array([1.0, -1.0, 0.0]), np.array([1.0, 1.0, -2.0]), np.eye(3)[0], np.eye(3)[1]):
        r = e - sum(np.dot(e, b) * b for b in rows)  # Gram-Schmidt against the rows so far
        if np.linalg.norm(r) > 1e-8:
            rows.append(r / np.linalg.norm(r))
        if len(rows) == 3:
            break
    return np.stack(rows)


class Colorization(SVDOperator):
    r"""Grey level :math:`y_{ij} = \sum_c w_c\, x_{c,ij}` (default :math:`w = (1/3, 1/3, 1/3)`, the mean of RGB).

    Per pixel ``H`` is the row :math:`w^\top = |w|\,(w/|w|)^\top`: singular value :math:`|w|`
    (:math:`1/\sqrt3` for the mean), ``U = I`` and ``V`` the orthonormal 3x3 basis whose first
    vector is :math:`w/|w|` (``[1,1,1]/√3``) and the other two span the chroma plane
    (``[1,-1,0]/√2``, ``[1,1,-2]/√6``). Spectral layout ``(k, h, w)``: the first ``H*W`` entries are
    the grey coefficients. ``y`` is a 1-channel image ``(1, H, W)``. Needs ``C = 3``.
    """

    observation_kind = "image"

    def __init__(self, image_shape: Sequence[int], weights: Sequence[float] = (1 / 3, 1 / 3, 1 / 3)) -> None:
        c, h, w = image_shape
        if c != 3:
            raise OperatorError(f"color needs a 3-channel (RGB) image, got {c} channel(s)")
        wts = np.asarray(weights, dtype=np.float64)
        if wts.shape != (3,) or not np.linalg.norm(wts) > 0:
            raise OperatorError(f"color weights must be 3 numbers, not all zero, got {weights!r}")
        super().__init__(image_shape, (1, h, w))
        basis = _colour_basis(wts)
        self.register_buffer("_basis", torch.from_numpy(basis))  # rows = spectral directions
        self.register_buffer("_basis_t", torch.from_numpy(np.ascontiguousarray(basis.T)))
        self.register_buffer("_weights", torch.from_numpy(wts).reshape(1, 3, 1, 1))
        self.register_buffer("_pinv_weights", torch.from_numpy(wts / np.dot(wts, wts)).reshape(1, 3, 1, 1))
        self._set_singulars(torch.full((h * w,), float(np.linalg.norm(wts)), dtype=torch.float64))

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self._buf("_basis", x), x.reshape(x.shape[0], 3, -1)).reshape(x.shape[0], -1)

    def V(self, z: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(self._buf("_basis_t", z), z.reshape(z.shape[0], 3, -1))
        return out.reshape(z.shape[0], *self.image_shape)

    def U(self, w: torch.Tensor) -> torch.Tensor:
        return w.reshape(w.shape[0], *self.measurement_shape)

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(y.shape[0], -1)

    # Closed forms of U diag(s) Vᵀ (one singular value |w| per pixel, no truncation).
    def _H(self, x: torch.Tensor) -> torch.Tensor:
        """``Σ_c w_c x_c``."""
        return (x * self._buf("_weights", x)).sum(dim=1, keepdim=True)

    def _Ht(self, y: torch.Tensor) -> torch.Tensor:
        """``w_c y`` per channel."""
        return y * self._buf("_weights", y)

    def _H_pinv(self, y: torch.Tensor) -> torch.Tensor:
        """``w_c y / |w|²`` per channel."""
        return y * self._buf("_pinv_weights", y)


def _color(image_shape: tuple[int, int, int], weights: Sequence[float] = (1 / 3, 1 / 3, 1 / 3)) -> Colorization:
    return Colorization(image_shape, weights)

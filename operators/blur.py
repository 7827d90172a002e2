"""Separable deblurring: zero-padded "same" convolution with 1-D kernels along height and width."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .base import DEFAULT_ZERO_TOL, OperatorError
from .separable import SeparableSVD



def conv_matrix(kernel: Sequence[float], size: int) -> np.ndarray:
    """``size x size`` matrix of ``conv1d(x, kernel, padding='same')`` (cross-correlation, zero padding).

    ``y_i = Σ_t k_t x_{i + t - l}`` with ``l = (K-1)//2`` (PyTorch's 'same'); every tap is kept,
    taps falling outside the signal multiply zeros.
    """
    k = np.asarray(kernel, dtype=np.float64).reshape(-1)
    left = (k.size - 1) // 2
    a = np.zeros((size, size))
    rows = np.arange(size)
    for t, kt in enumerate(k):
        cols = rows + t - left
        ok = (cols >= 0) & (cols < size)
        a[rows[ok], cols[ok]] += kt
    return a


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Normalised samples of ``exp(-x²/2σ²)`` at the ``size`` integer offsets centred on 0 (the papers' kernels)."""
    if size < 1 or not sigma > 0:
        raise OperatorError(f"Gaussian blur needs kernel_size >= 1 and sigma > 0, got {size}, {sigma}")
    x = np.arange(size) - (size - 1) / 2.0
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class SeparableBlur(SeparableSVD):
    r"""Separable blur :math:`y = k_h \star_{\text{rows}} (k_w \star_{\text{cols}} x)`, zero padding, same size.

    :math:`H = I_C \otimes A_h \otimes A_w` with :math:`A` the banded Toeplitz matrix of
    ``conv1d(·, k, padding='same')`` (all taps kept). Its SVD is the Kronecker product of the exact
    1-D SVDs with each singular value :math:`s_{h,i}s_{w,j}` paired with its own spectral coordinate
    ``(i, j)`` of :math:`V_h^\top X V_w` (see :class:`SeparableSVD`), sorted decreasing; ``m = n``
    with zero singular values at the end. Equal to ``conv2d(x, k_h k_wᵀ, padding='same')``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        kernel_h: Sequence[float],
        kernel_w: Sequence[float],
        zero_tol: float = DEFAULT_ZERO_TOL,
    ) -> None:
        c, h, w = image_shape
        super().__init__(image_shape, conv_matrix(kernel_h, h), conv_matrix(kernel_w, w), zero_tol)
        self.kernel_h = np.asarray(kernel_h, dtype=np.float64).reshape(-1)
        self.kernel_w = np.asarray(kernel_w, dtype=np.float64).reshape(-1)
        # When the tolerance removed nothing above round-off, U diag(s) Vᵀ *is* the convolution: H and Hᵀ
        # then run as two depthwise 1-D convolutions, O(n K) instead of the dense 1-D factors.
        self.direct = self.truncated_max <= 1e-10 * float(self._singulars.max())
        kh, kw = torch.from_numpy(self.kernel_h), torch.from_numpy(self.kernel_w)
        self.register_buffer("_kh", kh.reshape(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous())
        self.register_buffer("_kw", kw.reshape(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous())

    def _conv(self, x: torch.Tensor, adjoint: bool) -> torch.Tensor:
        """``conv2d(x, k_h k_wᵀ, padding='same')`` (zero padding), or its adjoint (flipped kernel, mirrored pad)."""
        kh, kw = self._buf("_kh", x), self._buf("_kw", x)
        if adjoint:
            kh, kw = kh.flip(2), kw.flip(3)
        c = self.image_shape[0]
        for k, dim in ((kh, 2), (kw, 3)):
            size = k.shape[dim]
            left = size // 2 if adjoint else (size - 1) // 2
            pad = (left, size - 1 - left, 0, 0) if dim == 3 else (0, 0, left, size - 1 - left)
            x = F.conv2d(F.pad(x, pad), k, groups=c)
        return x

    def _H(self, x: torch.Tensor) -> torch.Tensor:
        """The blur (direct convolution when nothing was truncated, else ``U diag(s) Vᵀ``)."""
        return self._conv(x, adjoint=False) if self.direct else super()._H(x)

    def _Ht(self, y: torch.Tensor) -> torch.Tensor:
        """The adjoint blur (direct when nothing was truncated, else ``V diag(s) Uᵀ``)."""
        return self._conv(y, adjoint=True) if self.direct else super()._Ht(y)


def _deblur_uni(image_shape: tuple[int, int, int], kernel_size: int = 9, zero_tol: float = DEFAULT_ZERO_TOL):
    if kernel_size < 1:
        raise OperatorError(f"deblur_uni needs kernel_size >= 1, got {kernel_size}")
    k = np.full(int(kernel_size), 1.0 / kernel_size)
    return SeparableBlur(image_shape, k, k, zero_tol)


def _deblur_gauss(
    image_shape: tuple[int, int, int], kernel_size: int = 5, sigma: float = 10.0, zero_tol: float = DEFAULT_ZERO_TOL
):
    k = gaussian_kernel(int(kernel_size), float(sigma))
    return SeparableBlur(image_shape, k, k, zero_tol)


def _deblur_aniso(
    image_shape: tuple[int, int, int],
    kernel_size: int = 9,
    sigma_h: float = 1.0,
    sigma_w: float = 20.0,
    zero_tol: float = DEFAULT_ZERO_TOL,
):
    size = int(kernel_size)
    return SeparableBlur(image_shape, gaussian_kernel(size, sigma_h), gaussian_kernel(size, sigma_w), zero_tol)

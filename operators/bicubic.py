"""Bicubic super-resolution: PIL-style anti-aliased bicubic reduction by an integer factor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import DEFAULT_ZERO_TOL, OperatorError
from .separable import SeparableSVD


def keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (support 2), ``a = -0.5`` as in PIL's BICUBIC."""
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def reflect_index(j: np.ndarray, size: int) -> np.ndarray:
    """Mirror indices into ``[0, size)`` without repeating the edge (numpy/torch 'reflect')."""
    if size == 1:
        return np.zeros_like(j)
    period = 2 * (size - 1)
    j = np.mod(j, period)
    return np.where(j < size, j, period - j)


def bicubic_matrix(size: int, factor: int) -> np.ndarray:
    """``(size/factor) x size`` matrix of PIL's anti-aliased BICUBIC reduction, reflect at the borders.

    Output sample ``i`` is centred at ``(i + 1/2) k`` in input pixels; input pixel ``j`` gets weight
    ``cubic((j + 1/2 - centre)/k)`` (the kernel widened by ``k``, support ``2k``), normalised to sum 1.
    Taps outside the signal are mirrored back in (PIL instead drops them and renormalises, so
    the two agree away from the borders).
    """
    out = size // factor
    a = np.zeros((out, size))
    centre = (np.arange(out) + 0.5) * factor
    taps = np.arange(-2 * factor, 2 * factor + 1)
    for i in range(out):
        j = np.floor(centre[i]).astype(int) + taps
        wts = keys_cubic((j + 0.5 - centre[i]) / factor)
        np.add.at(a[i], reflect_index(j, size), wts / wts.sum())
    return a


class BicubicDownsample(SeparableSVD):
    r"""Anti-aliased bicubic reduction by ``k``: :math:`y_c = B_h X_c B_w^\top`.

    :math:`B` is :func:`bicubic_matrix` (PIL ``BICUBIC``: Keys :math:`a=-1/2`, kernel widened by
    ``k``, reflect borders); the SVD is that of :class:`SeparableSVD` from the exact SVDs of the
    two 1-D matrices. ``y`` is an image ``(C, H/k, W/k)``; ``H`` and ``W`` must be divisible by ``k``.
    """

    def __init__(self, image_shape: Sequence[int], factor: int, zero_tol: float = DEFAULT_ZERO_TOL) -> None:
        _, h, w = image_shape
        k = int(factor)
        if k < 1 or h % k or w % k:
            raise OperatorError(
                f"sr_bicubic{k} needs height and width divisible by {k}, got {h}x{w}; crop or pad the image first"
            )
        super().__init__(image_shape, bicubic_matrix(h, k), bicubic_matrix(w, k), zero_tol)
        self.factor = k


def _sr_bicubic(image_shape: tuple[int, int, int], k: str, zero_tol: float = DEFAULT_ZERO_TOL) -> BicubicDownsample:
    return BicubicDownsample(image_shape, int(k), zero_tol)

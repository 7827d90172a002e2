"""Denoising: the identity operator."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import SVDOperator
from .registry import register


class Identity(SVDOperator):
    r"""Denoising, :math:`H = I_n`: ``U = V = I`` and every singular value is 1.

    ``y`` is an image of the same shape as ``x``.
    """

    observation_kind = "image"

    def __init__(self, image_shape: Sequence[int]) -> None:
        super().__init__(image_shape, image_shape)
        self._set_singulars(torch.ones(self.n, dtype=torch.float64))

    def V(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(z.shape[0], *self.image_shape)

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    def U(self, w: torch.Tensor) -> torch.Tensor:
        return w.reshape(w.shape[0], *self.measurement_shape)

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(y.shape[0], -1)


@register("deno", description="denoising only (H = identity)")
def _deno(image_shape: tuple[int, int, int]) -> Identity:
    return Identity(image_shape)

"""Denoising: the identity operator."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import SVDOperator


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


def _deno(image_shape: tuple[int, int, int]) -> Identity:
    return Identity(image_shape)


class NoMeasurement(SVDOperator):
    r"""No measurement, :math:`H` with zero rows (:math:`m = 0`): every spectral entry is null space.

    DDRM with this operator draws unconditional samples from the prior (``ddrm sample``); ``y``
    is an empty ``(B, 0)`` tensor (:meth:`empty_measurement`).

    Parameters:
        image_shape: ``(C, H, W)`` of the samples.

    Example:
        >>> op = NoMeasurement((3, 8, 8))
        >>> op.m, op.empty_measurement(2).shape
        (0, torch.Size([2, 0]))
    """

    observation_kind = "vector"

    def __init__(self, image_shape: Sequence[int]) -> None:
        super().__init__(image_shape, (0,))
        self._set_singulars(torch.zeros(0, dtype=torch.float64))

    def V(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(z.shape[0], *self.image_shape)

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    def U(self, w: torch.Tensor) -> torch.Tensor:
        return w.reshape(w.shape[0], 0)

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(y.shape[0], 0)

    def empty_measurement(self, batch: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The ``(batch, 0)`` observation DDRM takes with this operator."""
        return torch.zeros(batch, 0, device=device)

"""Uniform quantisation of [-1, 1] to ``2^bits`` levels: the dequantisation task of DDRM-JPEG."""

from __future__ import annotations

from typing import Sequence

import torch

from .codec import CodecOperator
from .errors import OperatorError, check_image_shape

__all__ = ["Quantize"]


class Quantize(CodecOperator):
    r"""Uniform quantiser: :math:`\mathrm{encode}(x) = \mathrm{clamp}(\lfloor (x + 1) L / 2 \rfloor, 0, L - 1)`,
    :math:`\mathrm{decode}(k) = -1 + (2k + 1) / L`, with :math:`L = 2^{bits}`.

    The L bins of width ``2 / L`` tile [-1, 1]; decoding returns the bin centres, so
    ``J = decode∘encode`` is an exact projection (idempotent). The centres are exact in float32
    (at most 17 significant bits), so ``J`` returns them in the dtype of its input without rounding.

    Parameters:
        bits: bits per sample, 1..16.
        image_shape: ``(C, H, W)`` checked on every input; ``None`` accepts any size
            (:func:`ddrm_kit.ddrm` then takes the size from ``y``).

    Example:
        >>> import torch
        >>> op = Quantize(2)
        >>> op.J(torch.tensor([[[[-1.0, -0.3, 0.2, 1.0]]]]))
        tensor([[[[-0.7500, -0.2500,  0.2500,  0.7500]]]])
    """

    def __init__(self, bits: int, image_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
            raise OperatorError(f"quantisation bits must be an integer in 1..16, got {bits!r}")
        self.bits = bits
        self.levels = 2**bits
        self.image_shape = None if image_shape is None else check_image_shape(image_shape)  # type: ignore[assignment]

    def extra_repr(self) -> str:
        return f"bits={self.bits}, image_shape={self.image_shape}"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Bin index in ``0 .. 2^bits - 1`` (int64) of each entry of ``x``."""
        if self.image_shape is not None and tuple(x.shape[-3:]) != self.image_shape:
            raise OperatorError(f"this quantiser is for images {self.image_shape}, got {tuple(x.shape[-3:])}")
        k = torch.floor((x + 1) * (self.levels / 2))
        return k.clamp(0, self.levels - 1).to(torch.int64)

    def decode(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Bin centres ``-1 + (2k + 1) / 2^bits`` (float32, exact)."""
        return ((2 * coeffs.to(torch.float64) + 1) / self.levels - 1).to(torch.float32)

    def J(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))`` in the dtype of ``x`` (float32 for integer inputs)."""
        return self.decode(self.encode(x)).to(x.dtype if x.dtype.is_floating_point else torch.float32)


def _quant(image_shape: tuple[int, int, int], bits: str) -> Quantize:
    return Quantize(int(bits), image_shape=image_shape)

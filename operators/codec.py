"""Non-linear "codec" operators y = decode(encode(x)), driven by the DDRM-JPEG update."""

from __future__ import annotations

import torch


class CodecOperator(torch.nn.Module):
    """Base of non-linear operators ``h`` with a decoder ``h†``: ``J(x) = decode(encode(x))``.

    Subclasses implement ``encode(x)`` (image in [-1, 1] -> coefficients) and ``decode(c)``
    (coefficients -> image in [-1, 1], shape ``image_shape``).  The sampler only needs ``J``.
    """

    image_shape: tuple[int, int, int]

    def encode(self, x: torch.Tensor):
        raise NotImplementedError

    def decode(self, coeffs) -> torch.Tensor:
        raise NotImplementedError

    def J(self, x: torch.Tensor) -> torch.Tensor:
        """The projection ``decode(encode(x))``; idempotent."""
        return self.decode(self.encode(x))

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


class GreyCodec(CodecOperator):
    r"""A grey codec seen from RGB images: :math:`J(x) = J_{grey}(\bar{x})` repeated on 3 channels.

    :math:`\bar{x}` is the mean of the three channels. This lets a colour prior restore a grey
    JPEG file: the prior sees RGB, the codec constrains only the grey level.

    Parameters:
        inner: the grey (1-channel) codec, e.g. ``JPEG.from_file("grey.jpg")``.

    Example:
        >>> import torch, operators
        >>> op = GreyCodec(operators.JPEG(quality=10, image_shape=(1, 16, 16)))
        >>> op.J(torch.zeros(1, 3, 16, 16)).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(self, inner: CodecOperator) -> None:
        super().__init__()
        shape = getattr(inner, "image_shape", None)
        if shape is not None and tuple(shape)[0] != 1:
            raise ValueError(f"GreyCodec wraps a 1-channel codec, got image_shape {tuple(shape)}")
        self.inner = inner
        # A codec built for any size (image_shape None) stays so: the sampler takes the size from y.
        self.image_shape = None if shape is None else (3, *tuple(shape)[1:])

    def encode(self, x: torch.Tensor):
        return self.inner.encode(x.mean(1, keepdim=True))

    def decode(self, coeffs) -> torch.Tensor:
        return self.inner.decode(coeffs).expand(-1, 3, -1, -1)

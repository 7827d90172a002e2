"""The operators' user error and the image-shape check every constructor shares (torch-free)."""

from __future__ import annotations

from collections.abc import Sequence


class OperatorError(ValueError):
    """A user mistake with an operator (name, parameter, image size, mask); the message says what to do."""


def check_image_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    """Validate ``(C, H, W)`` and return it as a tuple of ints."""
    try:
        shape = tuple(int(d) for d in image_shape)
    except (TypeError, ValueError):
        raise OperatorError(f"image_shape must be (C, H, W) integers, got {image_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise OperatorError(f"image_shape must be (C, H, W) with positive sizes, got {image_shape!r}")
    return shape  # type: ignore[return-value]

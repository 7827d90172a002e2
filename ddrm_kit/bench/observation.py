"""The bench's observations as ``--observation`` stores them: exact floats, or 8-bit images as a file holds them.

With ``uint8`` (the default) the simulated observation of a linear operator whose ``y`` is an image
(``observation_kind`` ``image`` or ``full_image``) is rounded to 8 bits, as ``ddrm degrade``'s file
holds it, and the sampler's ``sigma_y`` is raised to that rounding noise exactly as ``ddrm solve``
raises it for 8-bit files; ``y`` then equals what ``ddrm solve`` reads from the degraded file.
Codecs (their output is already on the 8-bit grid) and vector observations are never rounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from operators.registry import OperatorSpec

#: ``--observation`` values: the realistic 8-bit files first (the default), then exact floats.
OBSERVATIONS = ("uint8", "float")


def rounds(spec: "OperatorSpec", observation: str) -> bool:
    """Whether this run rounds the operator's observations to 8 bits."""
    return observation == "uint8" and spec.kind == "linear" and spec.observation_kind in ("image", "full_image")


def as_8bit(y: "torch.Tensor") -> "torch.Tensor":
    """``y`` in [-1, 1] written to and read back from an 8-bit file, value for value.

    The arithmetic is ``imageio.to_uint8``'s (float32, round half to even, clamp) and then
    ``imageio.load_image``'s (float64 ``v / 255``, float32 ``2 v - 1``); it works entry by entry, so
    it also rounds the kept-pixel vector of a mask exactly as the masked file rounds those pixels.
    """
    import torch

    v = ((y.to(torch.float32) + 1.0) * 127.5).round().clamp(0, 255)
    return (v.to(torch.float64) / 255.0).to(torch.float32) * 2.0 - 1.0


def sampler_sigma(sigma_y: float, rounded: bool) -> float:
    """The sampler's ``sigma_y`` in [-1, 1] units for ``--sigma-y`` (pixel units) and 8-bit or float ``y``."""
    from ddrm_kit.imageio import ImageInfo, quantisation_sigma

    # The floor `ddrm solve` applies to the 8-bit file this observation stands for.
    floor = quantisation_sigma(ImageInfo(Path("y.png"), "RGB", 0, 0, 3, 8)) if rounded else 0.0
    return 2.0 * max(sigma_y, floor)  # [0, 1] pixel units -> the [-1, 1] API

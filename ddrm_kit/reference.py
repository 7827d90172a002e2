"""Published DDRM numbers that `ddrm bench --reference` prints next to a run.

Only values checked against the paper's tables are listed; rows we could not verify are left
out rather than guessed. The DDRM-JPEG paper (Kawar, Song, Ermon & Elad 2022, arXiv 2209.11888)
is not listed for that reason.

Noise levels: DDRM adds ``sigma_y`` to measurements of images in [-1, 1] (its code does
``y = H(x) + sigma_0 * randn`` after mapping data to [-1, 1]), so the paper's ``sigma_y = 0.05``
is ``--sigma-y 0.025`` in this tool's [0, 1] pixel units.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Published", "PUBLISHED", "published_for"]

DDRM_PAPER = "Kawar, Elad, Ermon & Song, Denoising Diffusion Restoration Models, NeurIPS 2022 (arXiv 2201.11793)"
DDRM_SETUP = (
    "ImageNet 1K validation (1000 images, one per class) at 256x256, unconditional guided-diffusion "
    "ImageNet 256 prior (Dhariwal & Nichol 2021), 20 steps, eta 0.85, eta_b 1"
)


@dataclass(frozen=True)
class Published:
    """One published table cell: a method's mean PSNR (and KID x 1e3 where given) for an operator."""

    op: str  # this tool's operator name for the paper's degradation
    sigma_y_pixel: float  # noise std in [0, 1] pixel units (this tool's --sigma-y)
    method: str
    psnr: float
    kid: float | None
    source: str  # paper and table
    setup: str  # data set and prior


PUBLISHED: tuple[Published, ...] = (
    # Table 1 (noiseless): 4x super-resolution by block averaging, 9x9 uniform deblurring.
    Published("sr4", 0.0, "DDRM", 26.55, 7.22, f"{DDRM_PAPER}, Table 1", DDRM_SETUP),
    Published("deblur_uni", 0.0, "DDRM", 35.64, 0.71, f"{DDRM_PAPER}, Table 1", DDRM_SETUP),
    # Table 2 (sigma_y = 0.05 on [-1, 1] images).
    Published("sr4", 0.025, "DDRM", 25.21, 12.43, f"{DDRM_PAPER}, Table 2", DDRM_SETUP),
    Published("deblur_uni", 0.025, "DDRM", 25.45, None, f"{DDRM_PAPER}, Table 2", DDRM_SETUP),
)


def published_for(op: str) -> list[Published]:
    """The published rows for operator ``op`` (every noise level), in table order."""
    return [p for p in PUBLISHED if p.op == op]

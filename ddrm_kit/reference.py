"""Published DDRM numbers that `ddrm bench --reference` prints next to a run.

Listed: the unconditional DDRM cells of the DDRM paper's ImageNet tables (Table 1 noiseless,
Table 2 noisy), whose prior and data README's "Reproducing the papers" loads and lists. Left out:
the DDRM-CC rows (a class-conditional prior with classifier guidance and each image's true class,
which ddrm-kit does not do), the baselines' rows, and every other table, DDRM-JPEG's
(Kawar, Song, Ermon & Elad 2022, arXiv 2209.11888) included, because their values could not be
checked against the papers' text; rows we could not verify are left out rather than guessed.

Noise levels: the official DDRM code doubles its ``--sigma_0`` before adding it to images mapped
to [-1, 1] ("to account for scaling to [-1,1]", runners/diffusion.py), so its runs with
``--sigma_0 0.05``, the paper's sigma_y = 0.05, add noise of std 0.05 in [0, 1] pixel units:
``--sigma-y 0.05`` here, which ddrm-kit doubles the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Published", "PUBLISHED", "published_for"]

DDRM_PAPER = "Kawar, Elad, Ermon & Song, Denoising Diffusion Restoration Models, NeurIPS 2022 (arXiv 2201.11793)"
DDRM_SETUP = (
    "ImageNet 1K: the 1000 ILSVRC2012 validation images of DGP's imagenet_val_1k.txt (one per class) at 256x256; "
    "prior: guided-diffusion's unconditional 256x256_diffusion_uncond.pt (--model-config imagenet_256); "
    "20 steps, eta 0.85, eta_b 1"
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
    # Table 2 (sigma_y = 0.05: the official code's --sigma_0 0.05).
    Published("sr4", 0.05, "DDRM", 25.21, 12.43, f"{DDRM_PAPER}, Table 2", DDRM_SETUP),
    Published("deblur_uni", 0.05, "DDRM", 25.45, None, f"{DDRM_PAPER}, Table 2", DDRM_SETUP),
)


def published_for(op: str) -> list[Published]:
    """The published rows for operator ``op`` (every noise level), in table order."""
    return [p for p in PUBLISHED if p.op == op]

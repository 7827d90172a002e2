"""4x super-resolution end to end with a tiny UNet saved the diffusers way.

Builds a small ``UNet2DModel`` + ``DDPMScheduler``, saves them with ``save_pretrained``, loads
them back with ``ddrm_kit.load_prior`` (the same path a hub or local checkpoint takes), then
restores a 4x block-averaged synthetic image with ``ddrm_kit.ddrm``.

The UNet's weights are random (training one takes far longer than an example should), so the
null space (the detail sr4 removes) is noise and the picture is not a restoration: the script
shows the plumbing and DDRM's data consistency, ``H(x̂0) ≈ y`` for the last clean prediction.
Use a trained prior for real restorations: ``load_prior()`` (the built-in one) or
``load_prior("google/ddpm-celebahq-256")``.

    python examples/sr4_tiny_unet.py [output_folder]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

import operators
from ddrm_kit import ddrm, load_prior


def synthetic_image(size: int = 32) -> torch.Tensor:
    """A smooth colour gradient with a disc, in [-1, 1], shape (1, 3, size, size)."""
    r = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    disc = ((xx - 0.2) ** 2 + (yy + 0.1) ** 2 < 0.3).float()
    img = torch.stack([0.6 * xx, 0.6 * yy, 0.8 * disc - 0.4])
    return img.clamp(-1, 1)[None]


def save_tiny_prior(folder: Path) -> None:
    torch.manual_seed(0)  # diffusers draws the initial weights from the global generator
    unet = UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, layers_per_block=1, norm_num_groups=8,
        block_out_channels=(16, 32, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )
    unet.save_pretrained(folder)
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear").save_pretrained(folder)


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    mse = ((x - ref) / 2).pow(2).mean().item()
    return 10 * torch.log10(torch.tensor(1.0 / mse)).item()


def main(folder: str | Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(folder) if folder is not None else Path(tmp)
        save_tiny_prior(folder)
        prior = load_prior(folder, device="cpu")
        x = synthetic_image()
        op = operators.get_operator("sr4", tuple(x.shape[1:]))
        y = op.H(x)  # (1, 3, 8, 8)
        preds: list[torch.Tensor] = []
        out = ddrm(prior, op, y, steps=20, generator=torch.Generator().manual_seed(0), progress=False,
                   callback=lambda i, t, x0: preds.append(x0))
    # The returned image is clamped to [-1, 1]; the consistency check uses the raw last prediction.
    results = {
        "psnr_pinv": psnr(op.H_pinv(y).clamp(-1, 1), x),
        "psnr_ddrm": psnr(out, x),
        "consistency": (op.H(preds[-1]) - y).abs().max().item(),
    }
    print(f"sr4 {tuple(x.shape[2:])} from {tuple(y.shape[2:])} with an untrained UNet: PSNR H_pinv(y) "
          f"{results['psnr_pinv']:.2f} dB, DDRM {results['psnr_ddrm']:.2f} dB, "
          f"max |H(x̂0) - y| {results['consistency']:.4f}")
    return results


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)

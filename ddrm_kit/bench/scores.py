"""The bench's per-image scores: :func:`ddrm_kit.restore.score` plus LPIPS from local weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddrm_kit.errors import BenchDataNotFoundError, BenchError

if TYPE_CHECKING:
    import torch

# torchvision's AlexNet weights, the backbone of LPIPS (lpips ships its own linear layers).
LPIPS_BACKBONE = Path("checkpoints") / "alexnet-owt-7be5be79.pth"


def lpips_model(weights: Path, device: "torch.device"):
    """LPIPS (Zhang et al. 2018, AlexNet) from local weights only; a clean error otherwise."""
    import importlib.util

    import torch

    if not weights.is_dir():
        raise BenchDataNotFoundError(f"--metric-weights {weights}: no such folder")
    if importlib.util.find_spec("lpips") is None:
        raise BenchError("--metric-weights needs the optional package `lpips` (pip install lpips); or drop the option")
    if not (weights / LPIPS_BACKBONE).is_file():
        raise BenchDataNotFoundError(
            f"--metric-weights {weights}: put torchvision's AlexNet weights at {weights / LPIPS_BACKBONE} "
            "(nothing is downloaded)"
        )
    import lpips

    old = torch.hub.get_dir()
    torch.hub.set_dir(str(weights))  # torchvision finds the backbone there and does not download
    try:
        model = lpips.LPIPS(net="alex", verbose=False)
    finally:
        torch.hub.set_dir(old)
    return model.to(device).eval()


def score_rows(x: "torch.Tensor", ref: "torch.Tensor", lpips=None) -> list[dict[str, Any]]:
    """One dict per image: ``psnr``, ``psnr_uint8``, ``ssim`` and ``lpips`` (``""`` without a model)."""
    import torch

    from ddrm_kit.restore import score

    s = score(x, ref)
    lp: list[Any] = [""] * x.shape[0]
    if lpips is not None:
        with torch.no_grad():
            lp = lpips(x.clamp(-1, 1).float(), ref.float()).flatten().double().cpu().tolist()
    return [
        {"psnr": s["psnr"][i], "psnr_uint8": s["psnr_uint8"][i], "ssim": s["ssim"][i], "lpips": lp[i]}
        for i in range(x.shape[0])
    ]

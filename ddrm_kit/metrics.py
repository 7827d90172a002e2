"""Image quality metrics, computed per image the way the DDRM papers report them.

All functions take batches ``(B, C, H, W)`` (or a single ``(C, H, W)`` image) of tensors in
the library's [-1, 1] range and return one value per image as a float64 tensor of shape ``(B,)``.
Averaging over a data set is left to the caller (the papers average per-image PSNRs).
"""

from __future__ import annotations

import torch

__all__ = ["psnr", "psnr_uint8", "ssim"]

# Wang et al. (2004), "Image quality assessment: from error visibility to structural similarity".
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def _pair(x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if ref.dim() == 3:
        ref = ref.unsqueeze(0)
    if x.dim() != 4 or x.shape != ref.shape:
        raise ValueError(
            f"metrics need two images of the same shape (B, C, H, W), got {tuple(x.shape)} and {tuple(ref.shape)}"
        )
    return x, ref


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped, in float64 so that rounding in the metric itself is negligible."""
    return ((x.detach().to(torch.float64) + 1.0) / 2.0).clamp(0.0, 1.0)


def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """PSNR in dB, ``10 log10(1 / MSE)`` on images mapped to [0, 1] and clamped (DDRM's evaluation).

    Identical images give ``inf``.
    """
    x, ref = _pair(x, ref)
    mse = (_to_unit(x) - _to_unit(ref)).pow(2).flatten(1).mean(1)
    return -10.0 * torch.log10(mse)


def psnr_uint8(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """PSNR in dB after both images are rounded to 8 bits, ``10 log10(255² / MSE)`` (what a saved PNG scores)."""
    x, ref = _pair(x, ref)
    a = torch.round(_to_unit(x) * 255.0)
    b = torch.round(_to_unit(ref) * 255.0)
    mse = (a - b).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(255.0**2 / mse)


def _gaussian_1d(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """SSIM of Wang et al. (2004), computed per colour channel and averaged over channels.

    Images are mapped to [0, 1] and clamped (data range 1); an 11x11 Gaussian window with
    sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, population (not sample) statistics, and the mean of
    the SSIM map over the "valid" region (no padding), as Wang's reference MATLAB code. This equals
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=0)``. RGB images are scored on R, G and
    B (not on luma), so grey and colour results are comparable with other per-channel tools.
    """
    x, ref = _pair(x, ref)
    b, c, h, w = x.shape
    if h < _SSIM_WINDOW or w < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels, got {h}x{w}")
    a = _to_unit(x).reshape(b * c, 1, h, w)
    r = _to_unit(ref).reshape(b * c, 1, h, w)
    g = _gaussian_1d(_SSIM_WINDOW, _SSIM_SIGMA, a.dtype, a.device)

    def filt(t: torch.Tensor) -> torch.Tensor:
        # The 2-D Gaussian is separable: two 1-D valid convolutions.
        t = torch.nn.functional.conv2d(t, g.view(1, 1, -1, 1))
        return torch.nn.functional.conv2d(t, g.view(1, 1, 1, -1))

    mu_a, mu_r = filt(a), filt(r)
    var_a = filt(a * a) - mu_a**2
    var_r = filt(r * r) - mu_r**2
    cov = filt(a * r) - mu_a * mu_r
    c1, c2 = _SSIM_K1**2, _SSIM_K2**2
    smap = ((2 * mu_a * mu_r + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_r**2 + c1) * (var_a + var_r + c2))
    return smap.reshape(b, -1).mean(1)


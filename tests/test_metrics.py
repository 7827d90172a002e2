"""Metrics against closed forms and against scikit-image's reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddrm_kit.metrics import psnr, psnr_uint8, ssim


def _rand(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * 2 - 1


def test_psnr_closed_form_constant_offset():
    ref = torch.zeros(2, 3, 8, 9)
    # An offset of d in [-1, 1] units is d/2 in [0, 1] units: PSNR = -20 log10(d/2).
    x = ref + torch.tensor([0.2, 0.02]).view(2, 1, 1, 1)
    got = psnr(x, ref)
    assert got.shape == (2,)
    assert got[0].item() == pytest.approx(-20 * math.log10(0.1), abs=1e-6)
    assert got[1].item() == pytest.approx(-20 * math.log10(0.01), abs=1e-6)


def test_psnr_clamps_to_unit_range_and_identical_is_inf():
    ref = torch.full((1, 1, 4, 4), 1.0)
    over = torch.full((1, 1, 4, 4), 3.0)  # clamped to 1 -> identical to ref
    assert math.isinf(psnr(over, ref).item())
    assert math.isinf(psnr(ref, ref).item())


def test_psnr_accepts_single_image_and_rejects_shape_mismatch():
    a = _rand((3, 5, 5), 0)
    # a (C, H, W) image is a batch of one; x - ref = -a/2 in [-1, 1] units is -a/4 in [0, 1] units
    got = psnr(a * 0.5, a)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(-10 * math.log10(float((a.double() / 4).pow(2).mean())), abs=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, _rand((3, 5, 6), 1))


def test_psnr_uint8_closed_form():
    ref = torch.full((1, 1, 4, 4), -1.0)  # 0 in 8 bits
    x = torch.full((1, 1, 4, 4), -1.0 + 2 * 10 / 255)  # exactly 10 in 8 bits
    assert psnr_uint8(x, ref).item() == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)
    # Differences below half a grey level vanish after rounding.
    assert math.isinf(psnr_uint8(ref + 0.3 / 255, ref).item())


def test_ssim_identical_is_one_and_constant_closed_form():
    a = _rand((2, 3, 16, 17), 2)
    assert torch.allclose(ssim(a, a), torch.ones(2, dtype=torch.float64))
    # Constant images: no variance, so SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
    ma, mb = 0.25, 0.75
    x = torch.full((1, 1, 12, 12), 2 * ma - 1)
    y = torch.full((1, 1, 12, 12), 2 * mb - 1)
    c1 = 0.01**2
    assert ssim(x, y).item() == pytest.approx((2 * ma * mb + c1) / (ma**2 + mb**2 + c1), rel=1e-9)


def test_ssim_rejects_images_smaller_than_window():
    a = _rand((1, 1, 10, 20), 3)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a, a)


def test_against_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    ref = _rand((2, 3, 23, 31), 4)
    x = (ref + 0.3 * _rand((2, 3, 23, 31), 5)).clamp(-1, 1)
    ours_psnr, ours_ssim = psnr(x, ref), ssim(x, ref)
    for i in range(2):
        a = ((x[i].numpy().astype(np.float64)) + 1) / 2
        r = ((ref[i].numpy().astype(np.float64)) + 1) / 2
        assert ours_psnr[i].item() == pytest.approx(skm.peak_signal_noise_ratio(r, a, data_range=1.0), abs=1e-9)
        want = skm.structural_similarity(
            r, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=0
        )
        assert ours_ssim[i].item() == pytest.approx(want, abs=1e-9)
        a8 = np.round(a * 255).astype(np.uint8)
        r8 = np.round(r * 255).astype(np.uint8)
        assert psnr_uint8(x, ref)[i].item() == pytest.approx(skm.peak_signal_noise_ratio(r8, a8), abs=1e-9)

"""Speed options of the prior: channels_last (the default) changes results only by float rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from diffusers import DDPMScheduler
from PIL import Image

import operators
from conftest import tiny_unet
from ddrm_kit import ddrm, load_prior
from ddrm_kit.cli import main


@pytest.fixture(scope="module")
def tiny_prior_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_prior")
    tiny_unet(out_channels=6, sample_size=8).save_pretrained(folder)
    DDPMScheduler(num_train_timesteps=100, prediction_type="v_prediction").save_pretrained(folder)
    return folder


def test_channels_last_is_the_default_and_matches_contiguous(tiny_prior_dir):
    nhwc = load_prior(tiny_prior_dir, device="cpu")
    nchw = load_prior(tiny_prior_dir, device="cpu", channels_last=False)
    conv = nhwc.eps.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    # An odd size (padded, cropped) and a learned-variance output (channel slice): eps stays plain NCHW.
    x = torch.randn(2, 3, 7, 9, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10, 90])
    a, b = nhwc(x, t), nchw(x, t)
    assert a.shape == (2, 3, 7, 9) and a.is_contiguous() and b.is_contiguous()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    op = operators.get_operator("sr2", (3, 8, 8))
    y = op.H(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1)
    outs = [ddrm(p, op, y, steps=5, sigma_y=0.1, generator=torch.Generator().manual_seed(2), progress=False)
            for p in (nhwc, nchw)]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-4)


def test_cli_channels_last_flag(tiny_prior_dir, tmp_path):
    obs = tmp_path / "lr.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)).save(obs)
    results = []
    for flag in ("--channels-last", "--no-channels-last"):
        out = tmp_path / f"sr{flag}.png"
        res = CliRunner().invoke(main, ["solve", "--op", "sr2", "--model", str(tiny_prior_dir), "--device", "cpu",
                                        "--steps", "3", "--no-progress", flag, "-o", str(out), str(obs)])
        assert res.exit_code == 0, res.output
        results.append(np.asarray(Image.open(out), dtype=int))
    assert results[0].shape == (8, 10, 3)
    assert np.abs(results[0] - results[1]).max() <= 1  # float rounding may flip one 8-bit level

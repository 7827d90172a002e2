"""The restoration pipeline (ddrm_kit.restore): seeds, observations, K-sample averages, scores."""

from __future__ import annotations

import pytest
import torch

import operators
from ddrm_kit import Prior, ddrm
from ddrm_kit.errors import DDRMError
from ddrm_kit.restore import (NOISE, SAMPLER, Settings, generators, image_seed, observe, restore,
                              sample_generators, score)

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 4, 4)


def test_image_seed_is_a_function_of_seed_key_and_stream_only():
    assert image_seed(0, "kodim03.png", SAMPLER) == 128182925289931721  # pinned: a change re-seeds every run
    seeds = {image_seed(s, k, st) for s in (0, 1) for k in ("a.png", "b.png") for st in (SAMPLER, NOISE)}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)
    a = torch.randn(3, generator=generators(7, ["a.png", "b.png"], NOISE)[0])
    assert torch.equal(a, torch.randn(3, generator=generators(7, ["a.png"], NOISE)[0]))


def test_observe_adds_noise_from_each_images_generator(gaussian_prior):
    op = operators.get_operator("sr2", SHAPE)
    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(0))
    y = observe(op, x, 0.1, generators(0, ["a", "b"], NOISE))
    z = torch.randn(op.measurement_shape, generator=generators(0, ["b"], NOISE)[0])
    torch.testing.assert_close(y[1], op.H(x)[1] + 0.1 * z)
    with pytest.raises(DDRMError, match="one generator per image"):
        observe(op, x, 0.1, None)
    with pytest.raises(DDRMError, match="codec"):
        observe(operators.get_operator("quant3", SHAPE), x, 0.1, None)


@pytest.fixture
def case(gaussian_prior):
    op = operators.get_operator("inp_random50", SHAPE)
    x = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(1)) * 0.4 - 0.2
    y = observe(op, x, 0.05, generators(0, ["a", "b", "c"], NOISE))
    return Prior(gaussian_prior, gaussian_prior.ac), op, y


def test_average_of_k_is_the_mean_of_k_draws_each_with_its_own_generator(case):
    prior, op, y = case
    settings = Settings(steps=6, average=3)
    mean = restore(prior, op, y, settings, 0.05, generators(4, ["a", "b", "c"], SAMPLER), progress=False)
    gens = sample_generators(generators(4, ["a", "b", "c"], SAMPLER), 3)
    draws = [ddrm(prior, op, y, steps=6, sigma_y=0.05, generator=gens[3 * k: 3 * k + 3], progress=False)
             for k in range(3)]
    torch.testing.assert_close(mean, sum(draws) / 3)
    first = restore(prior, op, y, Settings(steps=6), 0.05, generators(4, ["a", "b", "c"], SAMPLER), progress=False)
    torch.testing.assert_close(first, draws[0])
    assert not torch.allclose(draws[0], draws[1])


def test_an_images_average_does_not_depend_on_the_batch(case):
    prior, op, y = case
    settings = Settings(steps=6, average=4)
    batch = restore(prior, op, y, settings, 0.05, generators(4, ["a", "b", "c"], SAMPLER), progress=False)
    alone = restore(prior, op, y[1:2], settings, 0.05, generators(4, ["b"], SAMPLER), progress=False)
    torch.testing.assert_close(batch[1:2], alone)


def test_one_shared_generator_draws_the_samples_in_turn(case):
    prior, op, y = case
    mean = restore(prior, op, y, Settings(steps=6, average=2), 0.05, torch.Generator().manual_seed(3), progress=False)
    g = torch.Generator().manual_seed(3)
    draws = [ddrm(prior, op, y, steps=6, sigma_y=0.05, generator=g, progress=False) for _ in range(2)]
    torch.testing.assert_close(mean, (draws[0] + draws[1]) / 2)


def test_score_matches_the_metrics_and_marks_ssim_of_tiny_images():
    ref = torch.zeros(1, 3, 16, 16)
    out = score(ref + 0.02, ref)  # MSE on [0, 1] images: 0.01**2
    assert out["psnr"] == [pytest.approx(40.0)] and out["ssim"][0] < 1
    tiny = score(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    assert tiny["psnr"] == [float("inf")] and tiny["ssim"][0] != tiny["ssim"][0]
    with pytest.raises(DDRMError, match="average must be a positive integer"):
        Settings(average=0)
